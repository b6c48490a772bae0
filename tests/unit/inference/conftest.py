"""Session fixtures of the inference tests: a tiny checkpoint in our format and a predictor loaded from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.inference.helpers import write_tiny_checkpoint
from unipixel_pl.inference.predictor import InferenceSettings, Predictor


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("inference") / "tiny")


@pytest.fixture(scope="session")
def predictor(tiny_checkpoint: Path) -> Predictor:
    return Predictor.from_pretrained(tiny_checkpoint, "cpu", settings=InferenceSettings(max_new_tokens=6))
