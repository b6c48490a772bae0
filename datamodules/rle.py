"""COCO run-length encoding of masks: encode with pycocotools, validate and decode in numpy.

Shards store masks as COCO *compressed* RLE (``{"size": [H, W], "counts": str}``, column-major runs starting with
background). Decoding is done here rather than by pycocotools because its C decoder trusts the run lengths: a
corrupt ``counts`` string writes past the mask buffer. Every decoded RLE is checked first (characters in range,
non-negative runs summing to ``H * W``) and a bad one raises ``InvalidRLEError`` naming the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

RLE = dict[str, Any]
"""A COCO RLE: ``{"size": [H, W], "counts": str | list[int]}``."""


class InvalidRLEError(ValueError):
    """An RLE that cannot describe a mask of its size."""


def encode_mask(mask: np.ndarray) -> RLE:
    """Compressed RLE of an ``(H, W)`` bool mask, ``counts`` as a str (JSON-ready)."""
    if mask.ndim != 2:
        raise ValueError(f"encode_mask takes one (H, W) mask, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


MAX_CODE_CHARS = 12
"""Characters of one run length at most (60 bits; a 4K mask needs 5)."""


def parse_counts(counts: str) -> list[int]:
    """Run lengths of a compressed ``counts`` string (LEB128-like, 5 bits per char, runs > 2 delta-coded).

    Vectorised: each number is the sum of its characters' 5-bit groups, negated when its last character has bit
    ``0x10``; runs ``m > 2`` add run ``m - 2``, i.e. cumulative sums over the odd runs and the even runs from 2 on.

    Raises:
        InvalidRLEError: a character outside the alphabet, a string ending inside a number, or a number longer than
            ``MAX_CODE_CHARS`` characters.
    """
    codes = np.frombuffer(counts.encode("utf-32-le"), dtype=np.uint32).astype(np.int64) - 48
    outside = (codes < 0) | (codes >= 64)
    if outside.any():
        position = int(outside.argmax())
        raise InvalidRLEError(
            f"RLE counts has character {counts[position]!r} at {position}; valid characters are '0'..'o'"
        )
    ends = (codes & 0x20) == 0
    if codes.size and not ends[-1]:
        raise InvalidRLEError("RLE counts string ends inside a number (truncated)")
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]])) if codes.size else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.append(starts, codes.size))
    if lengths.size and lengths.max() > MAX_CODE_CHARS:
        raise InvalidRLEError(f"RLE counts has a number of {lengths.max()} characters (at most {MAX_CODE_CHARS})")
    shifts = 5 * (np.arange(codes.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((codes & 0x1F) << shifts, starts) if codes.size else codes
    values = values - ((codes[ends] & 0x10) > 0) * (1 << (5 * lengths))
    values[1::2] = np.cumsum(values[1::2])
    values[2::2] = np.cumsum(values[2::2])
    return values.tolist()


def check_runs(runs: Sequence[int], height: int, width: int) -> None:
    """Raise ``InvalidRLEError`` unless ``runs`` are non-negative and cover exactly ``height * width`` pixels."""
    values = np.asarray(runs, dtype=np.int64)
    if values.size and values.min() < 0:
        raise InvalidRLEError(f"RLE has a negative run length ({values.min()})")
    if int(values.sum()) != height * width:
        raise InvalidRLEError(
            f"RLE runs cover {values.sum()} pixels but its size {height}x{width} has {height * width}"
        )


def rle_runs(rle: RLE) -> tuple[list[int], int, int]:
    """Validated ``(runs, H, W)`` of a compressed or uncompressed RLE dict."""
    if not isinstance(rle, dict):
        raise InvalidRLEError(f"an RLE must be a dict with 'size' and 'counts', got {type(rle).__name__}")
    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise InvalidRLEError(f"RLE size must be [H, W] positive integers, got {size!r}")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        runs = parse_counts(counts)
    elif isinstance(counts, list) and all(isinstance(v, int) for v in counts):
        runs = counts
    else:
        raise InvalidRLEError(f"RLE counts must be a string or a list of ints, got {type(counts).__name__}")
    check_runs(runs, size[0], size[1])
    return runs, size[0], size[1]


def decode_rle(rle: RLE) -> np.ndarray:
    """``(H, W)`` bool mask of a validated RLE.

    Raises:
        InvalidRLEError: malformed size or counts, or runs that do not cover the mask exactly.
    """
    runs, height, width = rle_runs(rle)
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(width, height).T


def union_rles(parts: Sequence[RLE | None], height: int, width: int) -> RLE | None:
    """One compressed RLE for the union of ``parts`` (None parts skipped); None when all are None."""
    masks = [decode_rle(part) for part in parts if part is not None]
    if not masks:
        return None
    for mask in masks:
        if mask.shape != (height, width):
            raise InvalidRLEError(f"RLE part of size {mask.shape} cannot be merged into a {height}x{width} mask")
    return encode_mask(np.logical_or.reduce(masks))


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool union of COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` rasterised by pycocotools."""
    valid = [list(map(float, poly)) for poly in polygons if len(poly) >= 6]
    if not valid:
        return np.zeros((height, width), dtype=bool)
    merged = coco_mask.merge(coco_mask.frPyObjects(valid, height, width))
    return decode_rle({"size": [height, width], "counts": merged["counts"]})


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool mask of any COCO ``segmentation``: polygon list, compressed or uncompressed RLE."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict):
        return decode_rle(segmentation)
    raise InvalidRLEError(f"COCO segmentation must be a polygon list or an RLE dict, got {type(segmentation).__name__}")


class MaskTable:
    """Masks of a sample's objects on every frame: the ``masks.json`` / ``refer.json`` / ``ignore.json`` layout.

    Serialised as ``{"size": [H, W], "objects": [[rle or null per frame] per object]}``; null is an empty mask.

    Args:
        height, width: frame size of every mask.
        objects: per object, one compressed RLE (or None) per frame.
    """

    def __init__(self, height: int, width: int, objects: list[list[RLE | None]]) -> None:
        self.height, self.width, self.objects = height, width, objects

    @classmethod
    def from_masks(cls, masks: np.ndarray) -> MaskTable:
        """Encode ``(O, T, H, W)`` bool masks (empty frames become null)."""
        if masks.ndim != 4:
            raise ValueError(f"MaskTable.from_masks takes (O, T, H, W) masks, got shape {masks.shape}")
        rows = [[encode_mask(frame) if frame.any() else None for frame in obj] for obj in masks]
        return cls(int(masks.shape[2]), int(masks.shape[3]), rows)

    @classmethod
    def from_json(cls, document: Any) -> MaskTable:
        """Parse the JSON layout; raises ``InvalidRLEError`` when it is not ``{"size": [H, W], "objects": [...]}``."""
        size = document.get("size") if isinstance(document, dict) else None
        objects = document.get("objects") if isinstance(document, dict) else None
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise InvalidRLEError(f"mask table size must be [H, W] positive integers, got {size!r}")
        if not (isinstance(objects, list) and all(isinstance(row, list) for row in objects)):
            raise InvalidRLEError("mask table 'objects' must be a list (objects) of lists (frames) of RLE or null")
        return cls(size[0], size[1], objects)

    def to_json(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "objects": self.objects}

    @property
    def num_frames(self) -> set[int]:
        """The distinct per-object frame counts (one value in a consistent table)."""
        return {len(row) for row in self.objects}

    def decode(self, rows: Sequence[int], frames: Sequence[int]) -> np.ndarray:
        """``(T, O, H, W)`` bool masks of objects ``rows`` at frame indices ``frames``.

        Raises:
            InvalidRLEError: an RLE is malformed or its size differs from the table's.
        """
        masks = np.zeros((len(frames), len(rows), self.height, self.width), dtype=bool)
        for o, row in enumerate(rows):
            for t, frame in enumerate(frames):
                rle = self.objects[row][frame]
                if rle is None:
                    continue
                mask = decode_rle(rle)
                if mask.shape != (self.height, self.width):
                    raise InvalidRLEError(
                        f"RLE of object {row} frame {frame} is {mask.shape[0]}x{mask.shape[1]}, "
                        f"the table is {self.height}x{self.width}"
                    )
                masks[t, o] = mask
        return masks
