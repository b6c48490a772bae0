"""Exact resume: a run SIGKILLed mid-epoch and resumed from its last checkpoint equals an uninterrupted run.

CPU, deterministic. The model trains LoRA adapters with dropout (so the random state of each step matters) plus
the pointer head; validation runs every 4 steps, a checkpoint is written every 2. The killed run dies after step 5, i.e.
mid-epoch with step 5 unsaved; the resumed run restarts from the step-4 checkpoint. Losses, batch fingerprints
(the data position), validation metrics and every tensor of the final checkpoint must be identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO_ROOT
from unipixel_pl.cli import run_cli

KILL_AFTER_STEP = 5
STEPS_PER_EPOCH = 6


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["unipixel"])


def write_trainer(root: Path, kill: bool) -> Path:
    """A trainer config: 2 epochs of 6 steps, validation every 4 and a checkpoint every 2 steps, records in root."""
    callbacks = [
        {
            "class_path": "tests.integration.distributed_support.StepRecorder",
            "init_args": {"path": str(root / "steps.json")},
        },
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {
                "dirpath": str(root / "checkpoints"),
                "every_n_train_steps": 2,
                "save_last": True,
                "save_top_k": 0,
            },
        },
    ]
    if kill:
        callbacks.insert(
            1,
            {"class_path": "tests.integration.distributed_support.KillAtStep", "init_args": {"step": KILL_AFTER_STEP}},
        )
    trainer = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "max_epochs": 2,
            "val_check_interval": 4,
            "check_val_every_n_epoch": None,
            "num_sanity_val_steps": 0,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(root),
            "callbacks": callbacks,
        },
    }
    path = root / "trainer.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(trainer))
    return path


def fit_args(root: Path, kill: bool = False) -> list[str]:
    return [
        "fit",
        "--config",
        str(REPO_ROOT / "configs/model/unipixel-tiny.yaml"),
        "--config",
        str(REPO_ROOT / "configs/data/synthetic.yaml"),
        "--config",
        str(write_trainer(root, kill)),
        "--data.class_path=unipixel_pl.datamodules.synthetic.SyntheticDataModule",
        f"--data.init_args.train_samples={2 * STEPS_PER_EPOCH}",
        "--data.init_args.val_samples=2",
        "--data.init_args.image_size=64",
        "--data.init_args.tasks=[mem_point, seg, ref_box]",
        "--model.lora.r=4",
        "--model.lora.alpha=8",
        "--model.lora.dropout=0.2",
        "--model.optimizer.lr=1e-3",
        "--model.optimizer.trainable=[seg_head, ref_proj]",
    ]


def records(root: Path) -> list[dict]:
    return json.loads((root / "steps.json").read_text())


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    full, broken = tmp_path / "full", tmp_path / "broken"
    run_cli(fit_args(full))

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-m", "unipixel_pl.cli", *fit_args(broken, kill=True)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-3000:]
    before_kill = records(broken)
    assert [r["step"] for r in before_kill if "loss" in r] == [1, 2, 3, 4, 5]
    checkpoint = broken / "checkpoints/last.ckpt"
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 4  # step 5 was lost with the process

    (broken / "steps.json").unlink()
    run_cli([*fit_args(broken), f"--ckpt_path={checkpoint}"])
    resumed, reference = records(broken), records(full)
    assert [r for r in reference if r["step"] > 4] == resumed
    assert [r for r in reference if r["step"] <= 5] == before_kill  # the killed run agreed up to its death
    assert any("val" in r and "val/ciou" in r["val"] for r in resumed)

    final_full = torch.load(full / "checkpoints/last.ckpt", weights_only=False)
    final_resumed = torch.load(checkpoint, weights_only=False)
    assert final_full["global_step"] == final_resumed["global_step"] == 2 * STEPS_PER_EPOCH
    for key, value in final_full["state_dict"].items():
        assert torch.equal(final_resumed["state_dict"][key], value), key
    assert _optimizer_tensors(final_full) == _optimizer_tensors(final_resumed)


def _optimizer_tensors(checkpoint: dict) -> list[bytes]:
    state = checkpoint["optimizer_states"][0]["state"]
    return [tensor.numpy().tobytes() for index in sorted(state) for tensor in state[index].values()]
