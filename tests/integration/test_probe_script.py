"""The SAM 2 binding probe behind docs/DEMO.md runs and reports its four measures."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_probe_prints_the_measures_for_an_identity_prompt_single_mask_run() -> None:
    command = [
        sys.executable, "scripts/probe_seg_binding.py", "--steps", "2", "--every", "1", "--test-images", "2",
        "--identity-prompt", "--answer", "It is the {name} {seg}.", "--single-mask", "--sam-width", "64",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=env, check=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("step")]
    assert [int(line.split()[1]) for line in lines] == [1, 2]
    for line in lines:
        scores = dict(re.findall(r"(\w+)=([0-9.]+)", line))
        assert set(scores) == {"loss", "ciou", "best_of_M", "area", "union_iou"}
        assert all(0.0 <= float(scores[name]) <= 1.0 for name in ("ciou", "best_of_M", "area", "union_iou"))
