"""A short fit writes the scalars and images the TensorBoard callbacks promise; the event files are read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO_ROOT
from tests.integration.test_cli import tiny_args
from unipixel_pl.cli import run_cli
from unipixel_pl.datamodules.synthetic_shards import write_synthetic

# Non-default weights of the SAM 2 terms, so the test sees they reach the logged mask loss.
TERM_WEIGHTS = {"focal": 50.0, "dice": 2.0, "iou": 3.0, "object_score": 7.0}


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["unipixel"])


def test_fit_logs_scalars_and_overlays(tmp_path: Path) -> None:
    args = tiny_args(
        tmp_path, "--trainer.max_steps=6", "--trainer.val_check_interval=6", "--trainer.log_every_n_steps=1"
    )
    args += ["--data.init_args.tasks=[seg]", "--data.init_args.val_samples=2", "--data.init_args.video_frames=3"]
    args += [f"--model.config.loss.{name}={weight}" for name, weight in TERM_WEIGHTS.items()]
    run_cli(["fit", *args])
    (event_file,) = tmp_path.rglob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {"train/loss", "train/lm_loss", "train/mask_loss", "val/loss", "val/ciou", "grad_norm/total"}
    assert expected <= scalars, expected - scalars
    assert "grad_norm/mask_decoder" in scalars
    assert {"val/ciou/seg", "val/answer_acc/seg"} <= scalars  # per-task metrics
    assert any(tag.startswith("lr-AdamW") for tag in scalars)
    assert any(tag.endswith("samples_per_sec") for tag in scalars)
    assert {"val_overlays/0", "val_overlays/1"} <= set(events.Tags()["images"])
    image = events.Images("val_overlays/0")[-1]
    assert image.height == 128 and image.width % image.height == 0  # frames side by side at SAM 2 resolution
    for stage in ("train", "val"):
        _assert_mask_terms_sum_to_mask_loss(events, stage)


def test_validation_on_shards_logs_metrics_per_source(tmp_path: Path) -> None:
    """Two validation shard sets: each one's cIoU and answer accuracy under its ``{source}/{split}`` name."""
    for split in ("train", "val"):
        write_synthetic(tmp_path / split, 4, split, image_size=64, video_frames=2)
    train, val = tmp_path / "train", tmp_path / "val"
    args = ["--config", str(REPO_ROOT / "configs/model/unipixel-tiny.yaml")]
    args += ["--config", str(REPO_ROOT / "configs/data/synthetic-shards.yaml")]
    args += ["--config", str(REPO_ROOT / "configs/trainer/cpu.yaml")]
    args += [
        f"--data.init_args.train=[{{path: {train}}}]",
        f"--data.init_args.val=[{{path: {train}}}, {{path: {val}}}]",
    ]
    args += [
        "--data.init_args.num_workers=0",
        "--data.init_args.sample_frames=2",
        "--data.init_args.eval_sample_frames=2",
    ]
    args += ["--trainer.max_steps=1", "--trainer.val_check_interval=1", "--trainer.enable_progress_bar=false"]
    args += [f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    run_cli(["fit", *args])
    (event_file,) = tmp_path.rglob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    per_source = {
        f"val/{kind}/source/synthetic/{split}" for kind in ("ciou", "answer_acc") for split in ("train", "val")
    }
    assert per_source <= scalars, per_source - scalars


def _assert_mask_terms_sum_to_mask_loss(events: EventAccumulator, stage: str) -> None:
    """Each logged unweighted term is there, and their weighted sum is the logged mask loss at every step."""
    terms = {name: {e.step: e.value for e in events.Scalars(f"{stage}/mask_{name}")} for name in TERM_WEIGHTS}
    mask_loss = {e.step: e.value for e in events.Scalars(f"{stage}/mask_loss")}
    assert mask_loss and all(set(values) == set(mask_loss) for values in terms.values()), stage
    for step, logged in mask_loss.items():
        weighted = sum(weight * terms[name][step] for name, weight in TERM_WEIGHTS.items())
        assert weighted == pytest.approx(logged, rel=1e-5), (stage, step)
    assert all(value > 0 for values in terms.values() for value in values.values()), stage
