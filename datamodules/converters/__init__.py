"""Converters from the original annotation formats of the UniPixel corpora to shard sets (DATA.md §8).

Each converter reads the corpus' files as distributed and yields ``ShardSample``s (original media bytes, masks as
COCO RLE) or ``Drop``s for records an offline filter removes (counted in the manifest).
"""

from __future__ import annotations

from pathlib import Path

from unipixel_pl.datamodules.converters.common import ConversionError, Converter, Drop
from unipixel_pl.datamodules.manifest import Manifest
from unipixel_pl.datamodules.writer import ShardSetWriter

CONVERTERS: dict[str, Converter] = {}


def run_converter(
    corpus: str, root: Path, out: Path, split: str, samples_per_shard: int = 1000, options: dict[str, str] | None = None
) -> Manifest:
    """Convert one corpus split into a shard set in ``out``; returns its manifest.

    Raises:
        ConversionError: unknown corpus or option, missing annotation files.
    """
    if corpus not in CONVERTERS:
        raise ConversionError(f"unknown corpus {corpus!r}; converters exist for {sorted(CONVERTERS)}")
    source, items = CONVERTERS[corpus](Path(root), split, **(options or {}))
    with ShardSetWriter(out, source, split, samples_per_shard) as writer:
        for item in items:
            if isinstance(item, Drop):
                writer.drop(item.reason)
            else:
                writer.write(item)
    return writer.manifest


__all__ = ["CONVERTERS", "ConversionError", "Drop", "run_converter"]
