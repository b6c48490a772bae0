"""Shared fixtures of the checkpoint tests: a tiny model and its official checkpoint directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import Tensor

from tests.unit.checkpoints.synthetic import bf16_model, tiny_config, write_official_checkpoint
from unipixel_pl.models.lit_unipixel import LitUniPixel


@pytest.fixture(scope="session")
def source_model() -> LitUniPixel:
    """A random tiny model (tied embeddings, bf16-exact values)."""
    return bf16_model(tiny_config(tie=True))


@pytest.fixture(scope="session")
def official_checkpoint(
    source_model: LitUniPixel, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Tensor]]:
    """``source_model`` written as an official checkpoint directory, and the tensors in it (official names)."""
    path = tmp_path_factory.mktemp("official")
    return path, write_official_checkpoint(path, source_model)
