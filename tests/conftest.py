"""Shared test setup: single-threaded torch, offline hubs, markers, and the optional shared fixtures path."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture
def reference_tiny() -> Path:
    """The official tiny parity fixture (``../shared/fixtures/reference-tiny``); skips when absent."""
    path = SHARED / "fixtures" / "reference-tiny"
    if not path.is_dir():
        pytest.skip(f"reference fixture not found at {path} (only present beside the development repo)")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
