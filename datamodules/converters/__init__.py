"""Converters from the original annotation formats of the UniPixel corpora to shard sets (DATA.md §8).

Each converter reads the corpus' files as distributed and yields ``ShardSample``s (original media bytes, masks as
COCO RLE) or ``Drop``s for records an offline filter removes (counted in the manifest).
"""

from __future__ import annotations

from pathlib import Path

from unipixel_pl.datamodules.converters import (
    inst_it,
    llava,
    mvbench,
    osprey,
    reason_seg,
    ref_sav,
    refer,
    rvos,
    videorefer,
    videorefer_bench,
)
from unipixel_pl.datamodules.converters.common import ConversionError, Converter, ConverterOutput, Drop
from unipixel_pl.datamodules.manifest import Manifest
from unipixel_pl.datamodules.writer import ShardSetWriter


def _refer(dataset: str) -> Converter:
    def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
        return refer.convert(root, split, dataset=dataset, **options)

    return convert


CONVERTERS: dict[str, Converter] = {
    **{name: _refer(name) for name in refer.DATASETS},
    "reason_seg": reason_seg.convert,
    **{name: rvos.converter(name) for name in ("ref_youtube_vos", "ref_davis17", "mevis", "revos", "lvvis")},
    "ref_sav": ref_sav.convert,
    "videorefer": videorefer.convert,
    "osprey": osprey.convert,
    "inst_it": inst_it.convert,
    "llava": llava.convert,
    "mvbench": mvbench.convert,
    "videorefer_q": videorefer_bench.convert_q,
    "pixelqa": videorefer_bench.convert_pixelqa,
}
"""Corpus or benchmark name -> converter; ``unipixel shards convert <name>``."""


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
