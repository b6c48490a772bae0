"""Shared fixtures of the data tests: a tiny synthetic shard corpus and a tiny-model sample processor."""

from __future__ import annotations

from pathlib import Path

import pytest

from unipixel_pl.config import preset
from unipixel_pl.datamodules.encode import SampleEncoder
from unipixel_pl.datamodules.synthetic_shards import write_synthetic
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import build_tiny_tokenizer

CORPUS_SIZE, IMAGE_SIZE, VIDEO_FRAMES = 30, 48, 3


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train`` (30 records in 4 shards) and ``val`` (13 records in 3 shards) synthetic shard sets."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root / "train", CORPUS_SIZE, "train", IMAGE_SIZE, VIDEO_FRAMES, samples_per_shard=8)
    write_synthetic(root / "val", 13, "val", IMAGE_SIZE, VIDEO_FRAMES, samples_per_shard=5)
    return root


@pytest.fixture(scope="session")
def encoder() -> SampleEncoder:
    config = preset("unipixel-tiny")
    processor = UniPixelProcessor.from_config(build_tiny_tokenizer(), config.backbone)
    return SampleEncoder(processor, config.mask_decoder.image_size)
