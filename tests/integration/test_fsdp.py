"""Distributed training on CPU with gloo: FSDP2 and DDP equal one process; sharded checkpoints; two "nodes".

Every run trains the tiny model on one epoch of 6 steps of a global batch of 4 (one process x 4, or two x 2) in
fp32 with gradient clipping at 1.0. Each step's 4 samples share a task on every rank and are the same samples in
every layout (the synthetic corpus deals task blocks across ranks); the LM loss is the per-sample mean (the
reference's), so the mean of the two ranks' losses is the one-process loss. Two-process runs start under
``torchrun`` and stop after 3 steps (mid-epoch, keeping the 6-step schedule); the FSDP2 one is then resumed from
its sharded checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO_ROOT
from unipixel_pl.checkpoints.key_map import OURS_LM_HEAD
from unipixel_pl.checkpoints.lightning_ckpt import read_lightning_checkpoint
from unipixel_pl.checkpoints.official import read_official
from unipixel_pl.cli import run_cli
from unipixel_pl.convert_cli import ours_to_official
from unipixel_pl.models.lora import merge_lora_state

pytestmark = pytest.mark.multiprocess

GLOBAL_BATCH, STEPS, STOP_AT, LORA_RANK = 4, 6, 3, 4
TOLERANCE = 1e-5
SUPPORT = "tests.integration.distributed_support"
FOURIER_BUFFERS = (
    "prompt_encoder.tem_pe.positional_encoding_gaussian_matrix",
    "prompt_encoder.ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
)


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["unipixel"])


def write_trainer(root: Path, strategy: dict | None, end: str | None) -> Path:
    """A trainer config; ``end``: None runs the epoch, ``"stop"`` stops after ``STOP_AT`` steps, ``"kill"``
    SIGKILLs every rank after step ``STOP_AT + 1`` (a graceful stop would mark the epoch finished)."""
    checkpoint = {"dirpath": str(root / "checkpoints"), "every_n_train_steps": STOP_AT, "save_last": True}
    callbacks = [
        {"class_path": f"{SUPPORT}.StepRecorder", "init_args": {"path": str(root / "steps-{rank}.json")}},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {**checkpoint, "save_top_k": 0}},
    ]
    if end is not None:
        callback = "StopAtStep" if end == "stop" else "KillAtStep"
        step = STOP_AT if end == "stop" else STOP_AT + 1
        callbacks.insert(1, {"class_path": f"{SUPPORT}.{callback}", "init_args": {"step": step}})
    trainer = {
        "accelerator": "cpu",
        "precision": "32-true",
        "max_epochs": 1,
        "gradient_clip_val": 1.0,
        "use_distributed_sampler": False,  # the datamodule deals samples to ranks itself
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(root),
        "callbacks": callbacks,
        **({"strategy": strategy} if strategy else {}),
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "trainer.yaml"
    path.write_text(yaml.safe_dump({"seed_everything": 0, "trainer": trainer}))
    return path


def fit_args(root: Path, processes: int, strategy: dict | None = None, end: str | None = None) -> list[str]:
    return [
        "fit",
        "--config",
        str(REPO_ROOT / "configs/model/unipixel-tiny.yaml"),
        "--config",
        str(REPO_ROOT / "configs/data/synthetic.yaml"),
        "--config",
        str(write_trainer(root, strategy, end)),
        "--data.class_path=unipixel_pl.datamodules.synthetic.SyntheticDataModule",
        f"--data.init_args.train_samples={GLOBAL_BATCH * STEPS}",
        f"--data.init_args.batch_size={GLOBAL_BATCH // processes}",
        "--data.init_args.image_size=64",
        "--data.init_args.tasks=[mem_point, seg]",
        "--model.config.loss.lm_reduction=sample",
        "--model.config.temporal_features=16",  # SAM 2 width / 2, as the official format implies
        "--model.config.backbone.gradient_checkpointing=true",
        "--model.optimizer.lr=1e-3",
        "--model.optimizer.trainable=[embed_tokens, ref_proj, msk_proj, seg_head, sam2]",
        f"--model.lora.r={LORA_RANK}",
        f"--model.lora.alpha={2 * LORA_RANK}",
        "--model.lora.dropout=0.0",  # dropout masks differ between one and two processes
        f"--trainer.devices={processes}",  # per node; CPU "auto" would be 1
    ]


FSDP2 = {"class_path": "unipixel_pl.distributed.FSDP2Strategy", "init_args": {"save_distributed_checkpoint": True}}
DDP = {"class_path": "lightning.pytorch.strategies.DDPStrategy", "init_args": {"find_unused_parameters": True}}
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


def torchrun(args: list[str], succeed: bool = True) -> None:
    """Run ``unipixel fit`` in two processes under torchrun; fail with the log tail on an unexpected outcome."""
    launcher = ["--standalone", "--nproc-per-node=2"]
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "unipixel_pl.cli", *args]
    done = subprocess.run(command, cwd=REPO_ROOT, env=SUBPROCESS_ENV, capture_output=True, timeout=300)
    assert (done.returncode == 0) == succeed, done.stderr.decode()[-4000:]


def mean_losses(root: Path, ranks: int, steps: int | None = None) -> list[float]:
    """Per step (the first ``steps``), the mean over ranks of the rank's loss: the global-batch loss."""
    per_rank = [json.loads((root / f"steps-{rank}.json").read_text())[:steps] for rank in range(ranks)]
    assert len({tuple(record["step"] for record in records) for records in per_rank}) == 1
    return [sum(records[i]["loss"] for records in per_rank) / ranks for i in range(len(per_rank[0]))]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[float], dict[str, torch.Tensor]]:
    """One process, the whole epoch: per-step losses and final weights (LoRA merged, no tied-head alias)."""
    root = tmp_path_factory.mktemp("single")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", ["unipixel"])
        run_cli(fit_args(root, processes=1))
    state = torch.load(root / "checkpoints/last.ckpt", weights_only=False)["state_dict"]
    merged = merge_lora_state(state, scaling=2.0)
    merged.pop(OURS_LM_HEAD)
    return mean_losses(root, 1), merged


@pytest.fixture(scope="module")
def fsdp_killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FSDP2 on two processes, SIGKILLed mid-epoch after step 4, its sharded step-3 checkpoint on disk."""
    root = tmp_path_factory.mktemp("fsdp")
    torchrun(fit_args(root, 2, FSDP2, end="kill"), succeed=False)
    return root


def test_fsdp2_on_two_processes_gives_the_one_process_loss(single, fsdp_killed: Path) -> None:
    assert mean_losses(fsdp_killed, 2, STOP_AT) == pytest.approx(single[0][:STOP_AT], abs=TOLERANCE)


def test_fsdp2_resumes_from_its_sharded_checkpoint(single, fsdp_killed: Path) -> None:
    checkpoint = fsdp_killed / "checkpoints/last.ckpt"
    assert sorted(path.name for path in checkpoint.iterdir()) == [
        ".metadata",
        "__0_0.distcp",
        "__1_0.distcp",
        "meta.pt",
    ]
    for rank in (0, 1):
        (fsdp_killed / f"steps-{rank}.json").unlink()
    torchrun([*fit_args(fsdp_killed, 2, FSDP2), f"--ckpt_path={checkpoint}"])
    assert mean_losses(fsdp_killed, 2) == pytest.approx(single[0][STOP_AT:], abs=TOLERANCE)
    _, state = read_lightning_checkpoint(checkpoint)  # gathered into full tensors, LoRA merged
    assert state.keys() == single[1].keys()
    for key, value in state.items():
        torch.testing.assert_close(value, single[1][key], rtol=0, atol=1e-4, msg=key)
    for buffer in FOURIER_BUFFERS:
        assert torch.equal(state[buffer], single[1][buffer])


def test_sharded_lora_checkpoint_exports_to_the_official_format(fsdp_killed: Path, tmp_path: Path) -> None:
    """The consolidated export (``unipixel convert ours-to-official``) reads the sharded directory directly."""
    checkpoint = fsdp_killed / "checkpoints/last.ckpt"
    ours_to_official(checkpoint, tmp_path / "official", dtype=torch.float32, tokenizer="tiny")
    _, exported, _ = read_official(tmp_path / "official")
    _, state = read_lightning_checkpoint(checkpoint)
    assert exported.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(exported[key], value), key


def test_ddp_on_two_processes_gives_the_one_process_loss(single, tmp_path: Path) -> None:
    torchrun(fit_args(tmp_path, 2, DDP, end="stop"))
    assert mean_losses(tmp_path, 2) == pytest.approx(single[0][:STOP_AT], abs=TOLERANCE)


def test_two_nodes_on_loopback_run_fit_to_completion(single, tmp_path: Path) -> None:
    """Two torchrun agents, one process each, rendezvous over c10d on 127.0.0.1 like two machines would."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [*fit_args(tmp_path, 2, FSDP2), "--trainer.num_nodes=2", "--trainer.devices=1"]
    launcher = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}"]
    nodes = [
        subprocess.Popen(
            # On one machine only the first agent may host the rendezvous store (on a cluster: the master node).
            [sys.executable, "-m", "torch.distributed.run", *launcher, f"--rdzv-conf=is_host={host}"]
            + ["-m", "unipixel_pl.cli", *args],
            cwd=REPO_ROOT,
            env=SUBPROCESS_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for host in ("true", "false")
    ]
    errors = [node.communicate(timeout=300)[1].decode()[-3000:] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], errors
    assert mean_losses(tmp_path, 2) == pytest.approx(single[0], abs=TOLERANCE)
    assert (tmp_path / "checkpoints/last.ckpt").is_dir()
