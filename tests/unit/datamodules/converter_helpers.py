"""Helpers of the converter tests: tiny originals in their formats, and reading converted shards back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from unipixel_pl.datamodules.build import BuildConfig, build_sample
from unipixel_pl.datamodules.converters import run_converter
from unipixel_pl.datamodules.manifest import Manifest, load_manifest
from unipixel_pl.datamodules.reader import Record, decode_record, expand, iter_tar
from unipixel_pl.datamodules.rle import encode_mask


def write_jpeg(path: Path, height: int, width: int, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path, format="JPEG")
    return path


def box_mask(height: int, width: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rle(mask: np.ndarray) -> dict:
    return encode_mask(mask)


def convert(corpus: str, root: Path, out: Path, split: str = "train", **options: str) -> tuple[Manifest, list[Record]]:
    """Run the converter and read every record back (checked by ``decode_record``)."""
    run_converter(corpus, root, out, split, options=options)
    manifest, directory = load_manifest(out)
    records = [decode_record(raw) for shard in manifest.shards for raw in iter_tar(directory / shard.name)]
    return manifest, records


def build_every_unit(records: list[Record]) -> list:
    """Build every online sample in training and evaluation mode (raises on any problem)."""
    built = []
    for train in (True, False):
        config = BuildConfig(sample_frames=4, frame_sampler="random" if train else "uniform", train=train)
        built += [build_sample(unit, config, np.random.default_rng(0)) for r in records for unit in expand(r)]
    return built
