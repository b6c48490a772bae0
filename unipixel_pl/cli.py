"""The ``unipixel`` console script: LightningCLI's fit/validate/test/predict on ``LitUniPixel``.

Configs compose by stacking: ``unipixel fit --config configs/model/unipixel-tiny.yaml --config
configs/data/synthetic.yaml --config configs/trainer/cpu.yaml``. The model config is linked into the datamodule so
token ids and image sizes always agree.
"""

from __future__ import annotations

import importlib
import os
import sys

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI


class UniPixelCLI(LightningCLI):
    """LightningCLI with the model config linked into the datamodule."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.config", "data.init_args.model_config", apply_on="parse")


def run_cli(args: list[str] | None = None) -> UniPixelCLI:
    """Parse ``args`` (default: ``sys.argv``) and run the subcommand; returns the CLI for inspection."""
    from unipixel_pl.models.lit_unipixel import LitUniPixel  # heavy: transformers + sam2

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return UniPixelCLI(
        LitUniPixel,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,
    )


# Subcommands beyond the Trainer's: name -> "module:function" taking argv (after the name) and returning an exit code.
EXTRA_COMMANDS = {
    "convert": "unipixel_pl.convert_cli:convert_main",
    "shards": "unipixel_pl.datamodules.shards_cli:shards_main",
    "infer": "unipixel_pl.inference.cli:infer_main",
}


def main() -> None:
    """Entry point of the ``unipixel`` console script: Trainer subcommands via LightningCLI, plus EXTRA_COMMANDS."""
    if len(sys.argv) > 1 and sys.argv[1] in EXTRA_COMMANDS:
        module, function = EXTRA_COMMANDS[sys.argv[1]].split(":")
        sys.exit(getattr(importlib.import_module(module), function)(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(f"extra subcommands: {', '.join(EXTRA_COMMANDS)} (unipixel <subcommand> --help)\n")
    run_cli()


if __name__ == "__main__":
    main()
