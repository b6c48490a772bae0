"""The ``unipixel`` CLI end to end on the tiny preset and synthetic data: fit, validate, test, predict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT
from unipixel_pl.cli import run_cli

CONFIGS = [
    "--config",
    str(REPO_ROOT / "configs/model/unipixel-tiny.yaml"),
    "--config",
    str(REPO_ROOT / "configs/data/synthetic.yaml"),
    "--config",
    str(REPO_ROOT / "configs/trainer/cpu.yaml"),
]


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when pytest's own arguments sit in ``sys.argv`` beside ``args``."""
    monkeypatch.setattr("sys.argv", ["unipixel"])


def tiny_args(root: Path, *extra: str) -> list[str]:
    return [
        *CONFIGS,
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.save_dir={root}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--data.init_args.train_samples=4",
        "--data.init_args.test_samples=4",
        "--data.init_args.val_samples=2",
        "--data.init_args.image_size=64",
        *extra,
    ]


def fit_once(root: Path) -> tuple[float, Path]:
    cli = run_cli(["fit", *tiny_args(root, "--trainer.max_steps=1", "--trainer.val_check_interval=1")])
    loss = float(cli.trainer.callback_metrics["train/loss"])
    return loss, Path(cli.trainer.checkpoint_callback.last_model_path)


def test_fit_then_test_and_predict(tmp_path: Path) -> None:
    loss, checkpoint = fit_once(tmp_path / "a")
    assert checkpoint.is_file() and torch.isfinite(torch.tensor(loss))
    events = list((tmp_path / "a").rglob("events.out.tfevents.*"))
    assert events, "TensorBoard event file missing"

    cli = run_cli(["test", *tiny_args(tmp_path / "a"), f"--ckpt_path={checkpoint}"])
    metrics = cli.trainer.callback_metrics
    assert {"test/loss", "test/lm_loss", "test/mask_loss", "test/ciou"} <= set(metrics)

    cli = run_cli(
        ["predict", *tiny_args(tmp_path / "a", "--model.generation.max_new_tokens=3"), f"--ckpt_path={checkpoint}"]
    )
    predictions = [output for batch in cli.trainer.predict_loop.predictions for output in batch]
    assert len(predictions) == 4 and all(p.sequences.shape[1] <= 3 for p in predictions)


def test_same_seed_gives_the_same_fit_loss(tmp_path: Path) -> None:
    first, _ = fit_once(tmp_path / "a")
    second, _ = fit_once(tmp_path / "b")
    assert first == second


def test_unknown_config_key_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli(["fit", *tiny_args(tmp_path, "--model.config.backbone.hidden_sise=8")])
    assert "hidden_sise" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["convert", "shards"])
def test_extra_subcommands_are_dispatched(command: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "unipixel_pl.cli", command, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: unipixel {command}")
