"""``unipixel convert``: checkpoint conversions (also ``python -m unipixel_pl.convert_cli``).

    unipixel convert official-to-ours SRC DST        # PolyU-ChenLab/UniPixel-3B/7B directory -> ours
    unipixel convert ours-to-official SRC DST        # ours, a .ckpt or a sharded training checkpoint -> official
    unipixel convert ckpt-to-ours SRC DST --tokenizer tiny   # a .ckpt or a sharded training checkpoint -> ours
    unipixel convert qwen-sam2 QWEN_DIR SAM2_PT DST  # Qwen2.5-VL-Instruct + SAM 2.1 .pt -> ours, ready for stage 1

Every conversion checks each key and shape and names what does not fit. Weights are read from safetensors, SAM 2
files with ``torch.load(weights_only=True)``, training checkpoints with restricted unpicklers.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from unipixel_pl.checkpoints.lightning_ckpt import is_lightning_checkpoint, read_lightning_checkpoint
from unipixel_pl.checkpoints.official import read_official, write_official
from unipixel_pl.checkpoints.ours import is_ours, read_ours, save_ours, write_ours
from unipixel_pl.checkpoints.qwen_sam2 import build_from_qwen_sam2
from unipixel_pl.checkpoints.safetensors_io import cast_floating
from unipixel_pl.checkpoints.sam2_yaml import parse_sam2_yaml
from unipixel_pl.config import MaskDecoderConfig, UniPixelConfig
from unipixel_pl.tokenizer import build_tiny_tokenizer, load_tokenizer
from unipixel_pl.vision_patchify import BUDGET_FRAMES, MAX_PIXELS, MIN_PIXELS

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "keep": None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unipixel convert", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    official = commands.add_parser("official-to-ours", help="official UniPixel checkpoint directory -> ours")
    official.add_argument("src", type=Path, help="directory with config.json, safetensors weights, tokenizer")
    official.add_argument("dst", type=Path, help="output directory (must not exist or be empty)")
    official.add_argument(
        "--corrected", action="store_true", help="corrected quirk switches instead of the reference ones (MODEL.md §11)"
    )
    ours = commands.add_parser("ours-to-official", help="our checkpoint or a training checkpoint -> official layout")
    ours.add_argument("src", type=Path, help="our checkpoint directory, a Lightning .ckpt, or a sharded checkpoint")
    ours.add_argument("dst", type=Path, help="output directory (must not exist or be empty)")
    ours.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16", help="weight dtype (published: bfloat16)")
    ours.add_argument(
        "--tokenizer", help="tokenizer directory, or 'tiny', for training checkpoints (they hold no tokenizer)"
    )
    ours.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard, e.g. 5GB")
    ckpt = commands.add_parser("ckpt-to-ours", help="training checkpoint -> our checkpoint (for unipixel infer)")
    ckpt.add_argument("src", type=Path, help="a Lightning .ckpt file or a sharded training checkpoint directory")
    ckpt.add_argument("dst", type=Path, help="output directory (must not exist or be empty)")
    ckpt.add_argument("--tokenizer", required=True, help="the training tokenizer: a directory, or 'tiny'")
    qwen = commands.add_parser("qwen-sam2", help="Qwen2.5-VL-Instruct + SAM 2.1 .pt -> our checkpoint for stage 1")
    qwen.add_argument("qwen_dir", type=Path, help="Qwen2.5-VL-3B/7B-Instruct directory")
    qwen.add_argument("sam2_pt", type=Path, help="SAM 2.1 checkpoint in Meta's format, e.g. sam2.1_hiera_base_plus.pt")
    qwen.add_argument("dst", type=Path, help="output directory (must not exist or be empty)")
    qwen.add_argument("--image-size", type=int, default=768, help="SAM 2 input size (UniPixel: 768)")
    qwen.add_argument(
        "--sam2-config", type=Path, help="SAM 2 hydra YAML with the .pt's sizes (default: SAM 2.1 Hiera-B+)"
    )
    qwen.add_argument("--reference", action="store_true", help="reference quirk switches (default: corrected)")
    qwen.add_argument("--seed", type=int, default=0, help="seed of the new heads and random-Fourier matrices")
    return parser


def official_to_ours(src: Path, dst: Path, corrected: bool = False) -> None:
    """Convert an official checkpoint directory to ours, tensors unchanged (dtype kept)."""
    config, state, tokenizer = read_official(src, reference=not corrected)
    settings = {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "budget_frames": BUDGET_FRAMES}
    write_ours(config, state, tokenizer, dst, settings)


def ckpt_to_ours(src: Path, dst: Path, tokenizer: str) -> None:
    """Save a Lightning training checkpoint as our checkpoint directory, loadable by ``unipixel infer``.

    The processor settings are the defaults, those of ``UniPixelDataModule`` evaluation.

    Raises:
        FileNotFoundError: ``src`` is neither a ``.ckpt`` file nor a sharded checkpoint.
    """
    config, state, loaded = _read_training_checkpoint(src, tokenizer)
    settings = {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "budget_frames": BUDGET_FRAMES}
    write_ours(config, state, loaded, dst, settings)


def ours_to_official(
    src: Path,
    dst: Path,
    dtype: torch.dtype | None = torch.bfloat16,
    tokenizer: str | None = None,
    max_shard_size: str = "5GB",
) -> None:
    """Export our checkpoint directory, or a Lightning training checkpoint, as an official checkpoint directory.

    Raises:
        ValueError: a training checkpoint without ``tokenizer``.
        FileNotFoundError: ``src`` is none of the accepted layouts.
    """
    if is_ours(src):
        config, state, loaded, _ = read_ours(src)
    elif is_lightning_checkpoint(src):
        if tokenizer is None:
            raise ValueError(f"{str(src)!r} is a training checkpoint and holds no tokenizer: pass --tokenizer DIR")
        config, state, loaded = _read_training_checkpoint(src, tokenizer)
    else:
        raise FileNotFoundError(
            f"{str(src)!r} is not a unipixel-pl checkpoint (unipixel.json), a .ckpt file or a sharded checkpoint"
        )
    write_official(config, cast_floating(state, dtype), loaded, dst, max_shard_size)


def _read_training_checkpoint(
    src: Path, tokenizer: str
) -> tuple[UniPixelConfig, dict[str, Tensor], PreTrainedTokenizerFast]:
    """Config and weights of a training checkpoint, and the tokenizer named by ``tokenizer`` (a directory or
    ``tiny``)."""
    config, state = read_lightning_checkpoint(src)
    return config, state, build_tiny_tokenizer() if tokenizer == "tiny" else load_tokenizer(tokenizer)


def qwen_sam2(
    qwen_dir: Path,
    sam2_pt: Path,
    dst: Path,
    image_size: int = 768,
    sam2_config: Path | None = None,
    reference: bool = False,
    seed: int = 0,
) -> None:
    """Build a stage-1 model from Qwen2.5-VL-Instruct and SAM 2.1 weights and save it in our format."""
    if sam2_config is None:
        mask_decoder = MaskDecoderConfig(image_size=image_size)
    else:
        mask_decoder = parse_sam2_yaml(OmegaConf.to_container(OmegaConf.load(sam2_config), resolve=True), image_size)
    model, processor = build_from_qwen_sam2(qwen_dir, sam2_pt, mask_decoder, reference=reference, seed=seed)
    save_ours(model, processor, dst)


def convert_main(argv: list[str] | None = None) -> int:
    """Run ``unipixel convert`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        _check_output(args.dst)
        if args.command == "official-to-ours":
            official_to_ours(args.src, args.dst, args.corrected)
        elif args.command == "ours-to-official":
            ours_to_official(args.src, args.dst, DTYPES[args.dtype], args.tokenizer, args.max_shard_size)
        elif args.command == "ckpt-to-ours":
            ckpt_to_ours(args.src, args.dst, args.tokenizer)
        else:
            qwen_sam2(
                args.qwen_dir, args.sam2_pt, args.dst, args.image_size, args.sam2_config, args.reference, args.seed
            )
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, pickle.UnpicklingError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"unipixel convert {args.command}: error: {message}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}")
    return 0


def _check_output(dst: Path) -> None:
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"output {str(dst)!r} already exists and is not an empty directory; choose a new path")


if __name__ == "__main__":
    sys.exit(convert_main())
