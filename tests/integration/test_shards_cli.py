"""``unipixel shards`` end to end: write the synthetic corpus, verify it, then train and validate on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO_ROOT
from unipixel_pl.cli import run_cli
from unipixel_pl.datamodules.manifest import Manifest, load_manifest
from unipixel_pl.datamodules.reader import decode_record, iter_tar
from unipixel_pl.datamodules.shards_cli import shards_main
from unipixel_pl.datamodules.writer import ShardSample, ShardSetWriter


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


def _fit_args(train: Path, val: Path | None, root: Path, *extra: str) -> list[str]:
    return [
        "fit",
        *("--config", str(REPO_ROOT / "configs/model/unipixel-tiny.yaml")),
        *("--config", str(REPO_ROOT / "configs/data/synthetic-shards.yaml")),
        *("--config", str(REPO_ROOT / "configs/trainer/cpu.yaml")),
        f"--data.init_args.train=[{{path: {train}}}]",
        f"--data.init_args.val={'[]' if val is None else f'[{{path: {val}}}]'}",
        "--data.init_args.num_workers=0",
        "--data.init_args.sample_frames=2",
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.save_dir={root}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


def test_fit_and_validate_on_shards(shards: Path, tmp_path: Path) -> None:
    extra = ("--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=2")
    cli = run_cli(_fit_args(shards / "train", shards / "val", tmp_path, *extra))
    assert cli.trainer.global_step == 2
    assert {"train/loss", "val/loss"} <= set(cli.trainer.callback_metrics)


def test_bad_training_samples_are_skipped_and_logged_as_metrics(shards: Path, tmp_path: Path) -> None:
    """Records of four data types (each keeps other, readable records) get a corrupt first frame; training runs
    on, the skips are counted and TensorBoard shows them."""
    clean = tmp_path / "clean"
    shards_main(["synthetic", "--out", str(clean), "--num-samples", "24", "--image-size", "48", "--video-frames", "3"])
    manifest, directory = load_manifest(clean)
    broken = tmp_path / "broken"
    with ShardSetWriter(broken, "synthetic", "train", samples_per_shard=100) as writer:
        for index, sample in enumerate(_samples(directory, manifest)):
            if index in (0, 5, 6, 9):  # seg_image, multimodal, seg_video, region_video
                sample.frames[0] = b"not a jpeg"
            writer.write(sample)
    cli = run_cli(_fit_args(broken, None, tmp_path, "--trainer.max_steps=6", "--trainer.val_check_interval=6"))
    assert cli.trainer.global_step == 6
    assert cli.datamodule.skipped().get("corrupt_image", 0) >= 1
    (event_file,) = (tmp_path / "tensorboard").rglob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    events.Reload()
    assert {"data/skipped", "data/skipped/corrupt_image"} <= set(events.Tags()["scalars"])


def _samples(directory: Path, manifest: Manifest) -> list[ShardSample]:
    """The shard set's records as writable samples (frames, masks and meta as read back)."""
    samples = []
    for shard in manifest.shards:
        for raw in iter_tar(directory / shard.name):
            record = decode_record(raw)
            frames = [record.members[name] for name in record.meta.media.frame_names]
            samples.append(ShardSample(record.meta, frames, masks=record.masks))
    return samples
