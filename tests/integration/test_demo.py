"""The demo shortened: shards, `unipixel fit/test --config configs/demo.yaml`, the metrics JSON and the report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from unipixel_pl.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["unipixel"])


def _demo_args(data: Path, out: Path) -> list[str]:
    return [
        "--config",
        str(ROOT / "configs/demo.yaml"),
        f"--data.init_args.train=[{{path: {data / 'train'}}}]",
        f"--data.init_args.val=[{{path: {data / 'val'}}}]",
        f"--data.init_args.test=[{{path: {data / 'test'}}}]",
        "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0",
        "--trainer.max_steps=2",
        "--trainer.val_check_interval=2",
        "--trainer.log_every_n_steps=1",
        f"--trainer.default_root_dir={out}",
        f"--trainer.logger.init_args.save_dir={out}",
    ]


def test_demo_fits_tests_and_reports(tmp_path: Path) -> None:
    shards = _script("demo_shards")
    for split, count in (("train", 6), ("val", 6), ("test", 12)):  # 12 test records cover all six record kinds
        shards.write_split(tmp_path / "data", split, count, image_size=112, video_frames=4)
    args = _demo_args(tmp_path / "data", tmp_path / "runs")
    run_cli(["fit", *args])
    (checkpoint,) = (tmp_path / "runs").rglob("last.ckpt")
    run_cli(["test", *args, f"--ckpt_path={checkpoint}"])

    (metrics_file,) = (tmp_path / "runs").rglob("held_out_metrics.json")
    report = json.loads(metrics_file.read_text())
    for key in ("ciou", "video_jf", "mc_accuracy", "region_accuracy"):
        assert report[key] is not None and 0.0 <= report[key] <= 1.0, key
    assert report["ciou"] == report["metrics"]["test/ciou/seg_image"]
    assert report["mc_accuracy"] == report["metrics"]["test/answer_acc/multimodal"]

    events = EventAccumulator(str(metrics_file.parent), size_guidance={"scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"test/video_jf", "test/ciou/seg_image", "test/answer_acc/multimodal", "final/mc_accuracy"} <= scalars
    assert events.PluginTagToContent("hparams")  # hyper-parameters with the final metrics

    printed = subprocess.run(
        [sys.executable, str(ROOT / "scripts/demo_report.py"), str(metrics_file), f"--checkpoint={checkpoint}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "cIoU, image referring segmentation" in printed and str(checkpoint) in printed
    assert "ciou/seg_image" in printed  # the validation curve of the fit run
