"""``unipixel infer``: answer questions about an image, a video or a frame folder, with masks (also ``python -m``).

    unipixel infer photo.jpg "Please segment the dog in this image." --ckpt UniPixel-3B
    unipixel infer clip.mp4 "What is [0] <|ref|> doing?" --point 320,180@0 --ckpt UniPixel-3B --out out/
    unipixel infer frames/ "What is [0] doing?" --mask first.png@0 --ckpt UniPixel-3B
    unipixel infer clip.mp4 "Segment the man." "Segment the car." --ckpt UniPixel-3B   # two requests, batched

Every PROMPT is one request on MEDIA with the same visual prompts; the requests are decoded in one batch and SAM 2
tracks all their objects in one pass over the frames. Bad input is reported in one line with exit code 1 (2 for
malformed options).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from unipixel_pl.inference.media import MediaError, open_media
from unipixel_pl.inference.outputs import ANIMATIONS, write_outputs
from unipixel_pl.inference.predictor import CheckpointError, InferenceSettings, Predictor
from unipixel_pl.inference.requests import (
    RegionPrompt,
    Request,
    RequestError,
    check_request,
    parse_box,
    parse_mask,
    parse_point,
)

DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _option(parse: Callable[[str], RegionPrompt]) -> Callable[[str], RegionPrompt]:
    """An argparse type that reports the parser's own message."""

    def convert(text: str) -> RegionPrompt:
        try:
            return parse(text)
        except RequestError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    return convert


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    defaults = InferenceSettings()
    parser = argparse.ArgumentParser(prog="unipixel infer", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "media", type=Path, metavar="MEDIA", help="image, video file (mp4, mov, mkv, ...) or folder of frames"
    )
    parser.add_argument("prompts", nargs="+", metavar="PROMPT", help="question(s); one request each")
    parser.add_argument("--ckpt", type=Path, required=True, help="UniPixel checkpoint directory (ours or official)")
    regions = parser.add_argument_group("visual prompts (original pixels; FRAME is a media frame index, default 0)")
    regions.add_argument(
        "--point",
        dest="regions",
        action="append",
        default=[],
        type=_option(parse_point),
        metavar="X,Y[@FRAME]",
        help="a point for the next <|ref|> of the prompt",
    )
    regions.add_argument(
        "--box",
        dest="regions",
        action="append",
        type=_option(parse_box),
        metavar="X1,Y1,X2,Y2[@FRAME]",
        help="a box for the next <|ref|> of the prompt",
    )
    regions.add_argument(
        "--mask",
        dest="masks",
        action="append",
        default=[],
        metavar="PNG[@FRAME]",
        help="an object mask (non-zero pixels); the k-th --mask is [k] in the prompt",
    )
    parser.add_argument("--out", type=Path, default=Path("unipixel-infer"), help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output directory")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="auto", help="auto: bfloat16 on CUDA, else float32")
    parser.add_argument("--max-new-tokens", type=_positive, default=defaults.max_new_tokens, help="answer length")
    parser.add_argument(
        "--max-input-tokens", type=_positive, default=defaults.max_input_tokens, help="refuse longer inputs"
    )
    parser.add_argument("--llm-frames", type=_positive, default=defaults.llm_frames, help="frames sampled for the LLM")
    parser.add_argument("--batch-size", type=_positive, default=defaults.batch_size, help="requests per LLM batch")
    parser.add_argument("--animation", choices=ANIMATIONS, default="gif", help="overlay animation of videos")
    parser.add_argument("--overlay-size", type=_positive, default=480, help="longest side of animation frames")
    return parser


def infer_main(argv: list[str] | None = None) -> int:
    """Run ``unipixel infer`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        _check_output(args.out, args.overwrite)
        _check_device(args.device)
        media = open_media(args.media)
        masks = [parse_mask(text) for text in args.masks]
        requests = [Request(media, prompt, list(args.regions), masks) for prompt in args.prompts]
        for request in requests:  # before the (slow) model load
            check_request(request, media)
        settings = InferenceSettings(
            max_new_tokens=args.max_new_tokens,
            max_input_tokens=args.max_input_tokens,
            llm_frames=args.llm_frames,
            batch_size=args.batch_size,
        )
        predictor = Predictor.from_pretrained(args.ckpt, args.device, DTYPES[args.dtype], settings)
        stream = predictor.stream(requests)
        summary = write_outputs(args.out, stream, requests, args.animation, args.overlay_size, {"ckpt": str(args.ckpt)})
    except (MediaError, RequestError, CheckpointError, FileExistsError) as error:
        print(f"unipixel infer: error: {error}", file=sys.stderr)
        return 1
    for index, entry in enumerate(summary["requests"]):
        print(entry["answer"] if len(requests) == 1 else f"[{index}] {entry['answer']}")
    print(f"wrote {args.out / 'summary.json'}")
    return 0


def _check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise FileExistsError(f"output {str(out)!r} exists and is not empty; choose a new --out or pass --overwrite")


def _check_device(device: str | None) -> None:
    if device and device.startswith("cuda") and not torch.cuda.is_available():
        raise RequestError(f"--device {device} was asked for but CUDA is not available; use --device cpu")


if __name__ == "__main__":
    sys.exit(infer_main())
