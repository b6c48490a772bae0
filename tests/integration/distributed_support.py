"""Test-only pieces for the distributed and resume tests, importable by ``unipixel fit`` subprocesses.

The synthetic corpus deals training task blocks of ``batch_size x world_size`` samples through an unshuffled
``DistributedSampler``, so each step's samples share one task on every rank and a step holds the same samples
whether one process takes them all or several split them; its loader is a ``ResumableDataLoader``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class StepRecorder(Callback):
    """Writes, per rank, every training step's loss and batch fingerprint and every validation's metrics (JSON).

    Args:
        path: output file; ``{rank}`` is replaced by the global rank.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        fingerprint = [int(batch.input_ids.sum()), *batch.input_ids.shape]
        loss = float(outputs["loss"])
        self.records.append(
            {"step": trainer.global_step, "loss": loss, "batch": fingerprint, "epoch": trainer.current_epoch}
        )
        self._write(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.records.append({"step": trainer.global_step, "val": metrics})
        self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        Path(self.path.format(rank=trainer.global_rank)).write_text(json.dumps(self.records))


class KillAtStep(Callback):
    """SIGKILLs its own process once ``step`` optimizer steps are done (after this step's other callbacks ran
    except checkpointing, which Lightning runs last: the step is lost, as in a real crash).

    Args:
        step: global step after which to die.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class StopAtStep(Callback):
    """Ends training gracefully (last checkpoint written) once ``step`` optimizer steps are done, mid-epoch.

    Args:
        step: global step after which to stop.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True
