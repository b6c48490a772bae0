"""``unipixel shards``: write, convert, verify and inspect shard sets.

    unipixel shards synthetic --out data/synthetic/train --num-samples 2000
    unipixel shards convert refcoco --root data/lisa/refer_seg --out data/refcoco/train --split train \\
        --option dataset=refcoco --option images=data/coco/train2014
    unipixel shards convert pixelqa --root data/videorefer --out data/pixelqa/box --split test --option prompt=box
    unipixel shards verify data/refcoco/train --deep
    unipixel shards info data/refcoco/train

Also runnable as ``python -m unipixel_pl.datamodules.shards_cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from unipixel_pl.datamodules.converters import CONVERTERS, run_converter
from unipixel_pl.datamodules.health import BadSample, BadSampleError
from unipixel_pl.datamodules.manifest import load_manifest, verify_shards
from unipixel_pl.datamodules.reader import check_masks_decodable, decode_record, iter_tar
from unipixel_pl.datamodules.synthetic_shards import SPLIT_SEEDS, write_synthetic


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unipixel shards", description="Write, convert and check shard sets.")
    commands = parser.add_subparsers(dest="command", required=True)
    synthetic = commands.add_parser("synthetic", help="write the synthetic shapes corpus")
    synthetic.add_argument("--out", required=True, type=Path, help="output shard directory")
    synthetic.add_argument("--split", default="train", choices=sorted(SPLIT_SEEDS))
    synthetic.add_argument("--num-samples", type=int, default=1000)
    synthetic.add_argument("--image-size", type=int, default=448, help="side of the square frames in pixels")
    synthetic.add_argument("--video-frames", type=int, default=12, help="frames of a video scene (1: images only)")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--samples-per-shard", type=int, default=100)
    convert = commands.add_parser("convert", help="convert an original annotation format")
    convert.add_argument("corpus", choices=sorted(CONVERTERS))
    convert.add_argument("--root", required=True, type=Path, help="the corpus' original directory")
    convert.add_argument("--out", required=True, type=Path, help="output shard directory")
    convert.add_argument("--split", default="train")
    convert.add_argument("--samples-per-shard", type=int, default=1000)
    convert.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="converter option")
    verify = commands.add_parser("verify", help="check checksums (and with --deep, every record)")
    verify.add_argument("directory", type=Path)
    verify.add_argument("--deep", action="store_true", help="also parse every record and decode every mask")
    info = commands.add_parser("info", help="print a shard set's manifest")
    info.add_argument("directory", type=Path)
    return parser


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--option expects KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


def _deep_problems(directory: Path) -> list[str]:
    manifest, root = load_manifest(directory)
    problems = []
    for shard in manifest.shards:
        for item in iter_tar(root / shard.name, shard.num_records):
            if isinstance(item, BadSample):
                problems.append(str(item))
                continue
            try:
                check_masks_decodable(decode_record(item))
            except BadSampleError as error:
                problems.append(str(error))
    return problems


def shards_main(argv: Sequence[str] | None = None) -> int:
    """Run one ``unipixel shards`` command; returns the exit status (1 when ``verify`` finds problems)."""
    args = _parser().parse_args(argv)
    if args.command == "synthetic":
        sizes = (args.image_size, args.video_frames, args.seed, args.samples_per_shard)
        manifest = write_synthetic(args.out, args.num_samples, args.split, *sizes)
    elif args.command == "convert":
        options = _options(args.option)
        manifest = run_converter(args.corpus, args.root, args.out, args.split, args.samples_per_shard, options)
    elif args.command == "info":
        manifest = load_manifest(args.directory)[0]
    else:
        problems = verify_shards(args.directory) + (_deep_problems(args.directory) if args.deep else [])
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{args.directory}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    print(json.dumps(asdict(manifest), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(shards_main())
