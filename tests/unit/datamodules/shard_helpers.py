"""Helpers of the data tests: sample processors and raw tar writing for fault injection."""

from __future__ import annotations

from pathlib import Path

import webdataset as wds

from unipixel_pl.datamodules.build import BuildConfig
from unipixel_pl.datamodules.encode import SampleEncoder
from unipixel_pl.datamodules.pipeline import SampleProcessor
from unipixel_pl.datamodules.reader import iter_tar


def make_processor(encoder: SampleEncoder, train: bool = True, **kwargs: object) -> SampleProcessor:
    config = BuildConfig(sam_image_size=encoder.sam_image_size, train=train, **kwargs)  # type: ignore[arg-type]
    return SampleProcessor(encoder, config)


def read_raw(path: Path) -> list[dict]:
    """Every record of a shard as a member dict (``__key__`` kept, ``__url__`` dropped)."""
    return [{k: v for k, v in record.items() if k != "__url__"} for record in iter_tar(path)]


def write_raw(path: Path, records: list[dict]) -> None:
    """Write member dicts as a tar shard, bypassing the checks of ``ShardSetWriter``."""
    with wds.TarWriter(str(path), encoder=False, mtime=0) as writer:
        for record in records:
            writer.write(record)
