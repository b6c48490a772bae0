"""Test-only pieces for the distributed and resume tests, importable by ``unipixel fit`` subprocesses.

``RankBlockSyntheticDataModule`` is the synthetic corpus with task blocks of ``batch_size x world_size`` samples,
dealt by an unshuffled ``DistributedSampler`` (index ``i`` to rank ``i % world_size``; run the Trainer with
``use_distributed_sampler=False``, since Lightning's own training sampler always shuffles). Each step's
``world_size x batch_size`` consecutive samples then share one task on every rank, and a step holds the same
samples whether one process takes them all or several split them. Its loader is a ``ResumableDataLoader``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, DistributedSampler

from unipixel_pl.datamodules.collate import Collator
from unipixel_pl.datamodules.synthetic import SyntheticDataModule, SyntheticDataset
from unipixel_pl.resumable_loader import ResumableDataLoader


class RankBlockSyntheticDataModule(SyntheticDataModule):
    """``SyntheticDataModule`` whose training task blocks span all ranks of a step, with a resumable loader."""

    def train_dataloader(self) -> DataLoader:
        world_size = self.trainer.world_size if self.trainer is not None else 1
        dataset = SyntheticDataset(
            self.encoder,
            self.sizes["fit"],
            self.tasks,
            block=self.batch_size * world_size,
            video_frames=self.video_frames,
            height=self.image_size,
            width=self.image_size,
            seed=self.seed,
        )
        collate = Collator(self.model_config.backbone.tokens.endoftext)
        sampler = None
        if world_size > 1:
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=self.trainer.global_rank, shuffle=False)
        return ResumableDataLoader(dataset, batch_size=self.batch_size, sampler=sampler, collate_fn=collate)


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
