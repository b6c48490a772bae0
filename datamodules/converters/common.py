"""Shared pieces of the converters: drops, frame media, mask unions and the converter signature."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from unipixel_pl.datamodules.rle import RLE, MaskTable, encode_mask, segmentation_to_mask
from unipixel_pl.datamodules.schema import Media, frame_member
from unipixel_pl.datamodules.writer import ShardSample


class ConversionError(ValueError):
    """The original files cannot be converted as given (missing file, wrong option)."""


@dataclass(frozen=True)
class Drop:
    """An original sample left out by an offline filter; ``reason`` is counted in the manifest."""

    reason: str


ConverterOutput = Iterable[ShardSample | Drop]


class Converter(Protocol):
    """``convert(root, split, **options) -> (source name, samples and drops)``."""

    def __call__(self, root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]: ...


def load_json(path: Path) -> Any:
    if not path.is_file():
        raise ConversionError(f"annotation file not found: {path}")
    return json.loads(path.read_text())


def load_pickle(path: Path) -> Any:
    if not path.is_file():
        raise ConversionError(f"annotation file not found: {path}")
    with open(path, "rb") as stream:
        return pickle.load(stream)  # noqa: S301 - the corpora ship their annotations as pickles


def image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file (reads the header only)."""
    with Image.open(path) as image:
        return image.height, image.width


def frames_media(paths: Sequence[Path], orig_indices: Sequence[int] | None = None) -> tuple[Media, list[bytes]]:
    """``Media`` and the original bytes of frame files (an image when there is one path).

    Raises:
        ConversionError: a missing frame file.
    """
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise ConversionError(f"frame file(s) not found: {missing[:3]}")
    height, width = image_size(paths[0])
    names = [frame_member(i, path.suffix or ".jpg") for i, path in enumerate(paths)]
    media = Media(
        kind="image" if len(paths) == 1 else "frames",
        num_frames=len(paths),
        height=height,
        width=width,
        frame_names=names,
        orig_frame_indices=list(orig_indices if orig_indices is not None else range(len(paths))),
    )
    return media, [path.read_bytes() for path in paths]


def union_mask(parts: Iterable[Any] | None, height: int, width: int) -> np.ndarray | None:
    """``(H, W)`` union of COCO segmentation parts (RLE dicts, polygon lists; None parts skipped); None if empty."""
    masks = [segmentation_to_mask(part, height, width) for part in (parts or []) if part is not None]
    masks = [mask for mask in masks if mask.any()]
    if not masks:
        return None
    for mask in masks:
        if mask.shape != (height, width):
            raise ConversionError(f"a mask of size {mask.shape} does not fit frames of {height}x{width}")
    return np.logical_or.reduce(masks)


def union_rle(parts: Iterable[Any] | None, height: int, width: int) -> RLE | None:
    """Compressed RLE of ``union_mask`` (a single compressed RLE part is kept as is)."""
    parts = [part for part in (parts or []) if part is not None]
    if len(parts) == 1 and isinstance(parts[0], dict) and isinstance(parts[0].get("counts"), str):
        if list(parts[0]["size"]) != [height, width]:
            raise ConversionError(f"a mask of size {parts[0]['size']} does not fit frames of {height}x{width}")
        return {"size": [height, width], "counts": parts[0]["counts"]}
    mask = union_mask(parts, height, width)
    return None if mask is None else encode_mask(mask)


def mask_table(objects: Sequence[Sequence[Iterable[Any] | None]], height: int, width: int) -> MaskTable:
    """Table from ``objects[o][frame]`` = segmentation parts (or None), unioned per cell."""
    return MaskTable(height, width, [[union_rle(cell, height, width) for cell in row] for row in objects])


def strip_media_marker(text: str) -> str:
    """Remove a leading or trailing ``<image>``/``<video>`` marker (and its newline) from a first turn."""
    return re.sub(r"^\s*<(image|video)>\s*|\s*<(image|video)>\s*$", "", text).strip()


def numbered(paths: Iterable[Path]) -> list[Path]:
    """Frame files sorted by the number in their name (``img_2.jpg`` before ``img_10.jpg``)."""
    return sorted(paths, key=lambda path: int(re.sub(r"^\D*", "", path.stem) or 0))


def require(options: dict[str, str], allowed: Sequence[str], corpus: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConversionError(f"unknown option(s) {unknown} for {corpus}; it takes {sorted(allowed)}")
