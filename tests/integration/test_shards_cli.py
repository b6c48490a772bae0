"""``unipixel shards`` end to end: write the synthetic corpus, verify it, then train and validate on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from unipixel_pl.cli import run_cli
from unipixel_pl.datamodules.shards_cli import shards_main


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when pytest's own arguments sit in ``sys.argv`` beside ``args``."""
    monkeypatch.setattr("sys.argv", ["unipixel"])


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    common = ["--image-size", "48", "--video-frames", "3", "--samples-per-shard", "4"]
    assert shards_main(["synthetic", "--out", str(root / "train"), "--num-samples", "12", *common]) == 0
    assert shards_main(["synthetic", "--out", str(root / "val"), "--split", "val", "--num-samples", "6", *common]) == 0
    return root


def test_verify_accepts_intact_shards_and_names_a_broken_one(shards: Path, tmp_path: Path, capsys) -> None:
    assert shards_main(["verify", str(shards / "train"), "--deep"]) == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in (shards / "val").iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    shard = broken / "synthetic-val-000001.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    capsys.readouterr()
    assert shards_main(["verify", str(broken), "--deep"]) == 1
    errors = capsys.readouterr().err
    assert "synthetic-val-000001.tar: 3000 bytes" in errors and "truncated_tar" in errors


def test_module_entry_point_prints_the_manifest(shards: Path) -> None:
    command = [sys.executable, "-m", "unipixel_pl.datamodules.shards_cli", "info", str(shards / "train")]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    manifest = json.loads(result.stdout)
    assert manifest["num_records"] == 12 and manifest["source"] == "synthetic" and len(manifest["shards"]) == 3


def test_fit_and_validate_on_shards(shards: Path, tmp_path: Path) -> None:
    args = [
        "fit",
        *("--config", str(REPO_ROOT / "configs/model/unipixel-tiny.yaml")),
        *("--config", str(REPO_ROOT / "configs/data/synthetic-shards.yaml")),
        *("--config", str(REPO_ROOT / "configs/trainer/cpu.yaml")),
        f"--data.init_args.train=[{{path: {shards / 'train'}}}]",
        f"--data.init_args.val=[{{path: {shards / 'val'}}}]",
        "--data.init_args.num_workers=0",
        "--data.init_args.sample_frames=2",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.max_steps=2",
        "--trainer.val_check_interval=2",
        "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    cli = run_cli(args)
    assert cli.trainer.global_step == 2
    assert {"train/loss", "val/loss"} <= set(cli.trainer.callback_metrics)
