"""The ``unipixel`` console script: LightningCLI's fit/validate/test/predict on ``LitUniPixel``.

Configs compose by stacking: ``unipixel fit --config configs/model/unipixel-tiny.yaml --config
configs/data/synthetic.yaml --config configs/trainer/cpu.yaml``. The model config is linked into the datamodule so
token ids and image sizes always agree.
"""

from __future__ import annotations

import os

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from unipixel_pl.models.lit_unipixel import LitUniPixel


class UniPixelCLI(LightningCLI):
    """LightningCLI with the model config linked into the datamodule."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.config", "data.init_args.model_config", apply_on="parse")


def run_cli(args: list[str] | None = None) -> UniPixelCLI:
    """Parse ``args`` (default: ``sys.argv``) and run the subcommand; returns the CLI for inspection."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return UniPixelCLI(
        LitUniPixel,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,
    )


def main() -> None:
    """Entry point of the ``unipixel`` console script."""
    run_cli()


if __name__ == "__main__":
    main()
