"""Held-out metrics beyond the overall cIoU: per-task cIoU, video J&F and answer accuracy per task.

Answers are scored by teacher-forced exact match: a sample is correct when every supervised token is the argmax
of the logits before it. For a single-turn answer this equals "greedy decoding returns exactly the reference
answer" (greedy emits the reference iff each of its steps picks the reference token), without a generation loop.

Every value is a torchmetrics metric with sum-reduced states, so under DDP it is the value of the whole held-out
set, identical to a single process. Ranks may meet different tasks: at the epoch end the task names are gathered
first and every rank computes the same metrics in the same order, so no rank waits on a sync another never joins.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torchmetrics import Metric

from unipixel_pl.config import IGNORE_INDEX
from unipixel_pl.metrics import CIoU, VideoJF
from unipixel_pl.types import UniPixelBatch


def answer_exact_match(logits: Tensor, labels: Tensor) -> Tensor:
    """Whether each sample's supervised tokens are all the teacher-forced argmax.

    Args:
        logits: ``(B, L, V)`` next-token logits.
        labels: ``(B, L)`` targets aligned with the inputs, ``IGNORE_INDEX`` where unsupervised.

    Returns:
        ``(B,)`` bool; False for samples without supervised tokens.
    """
    targets = labels[:, 1:]
    supervised = targets != IGNORE_INDEX
    wrong = (logits[:, :-1].argmax(-1) != targets) & supervised
    return supervised.any(dim=1) & ~wrong.any(dim=1)


class HitRate(Metric):
    """Fraction of hits over all updates, as int64 counts (exact across processes); NaN before any."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("hits", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, hits: Tensor) -> None:
        """Add ``(N,)`` bool outcomes."""
        self.hits += hits.sum()
        self.total += hits.numel()

    def compute(self) -> Tensor:
        return self.hits.double() / self.total


class HeldOutMetrics(nn.Module):
    """cIoU per task (image and video masks), J&F over video objects, answer accuracy per task.

    Metric states are not persistent, so these modules add nothing to checkpoints.
    """

    def __init__(self) -> None:
        super().__init__()
        self.task_iou = nn.ModuleDict()
        self.answer_acc = nn.ModuleDict()
        self.video_jf = VideoJF()

    def update(self, batch: UniPixelBatch, masks: list[Tensor | None]) -> None:
        """Add each sample's predicted ``(O, T, S, S)`` masks against its ``(T, O, S, S)`` targets."""
        for b, (pred, target) in enumerate(zip(masks, batch.target_masks, strict=True)):
            if pred is None or target is None:
                continue
            task = batch.task[b] if b < len(batch.task) else "unknown"
            self._metric(self.task_iou, task, CIoU).update(pred.flatten(0, 1), target.transpose(0, 1).flatten(0, 1))
            if target.shape[0] > 1:
                for obj in range(pred.shape[0]):
                    self.video_jf.update(pred[obj], target[:, obj])

    def update_answers(self, batch: UniPixelBatch, logits: Tensor | None) -> None:
        """Add the teacher-forced exact match of every sample with supervised tokens, per task."""
        if logits is None or batch.labels is None:
            return
        correct = answer_exact_match(logits, batch.labels)
        supervised = (batch.labels[:, 1:] != IGNORE_INDEX).any(dim=1)
        tasks = batch.task or ["unknown"] * batch.batch_size
        for task in sorted(set(tasks)):
            rows = torch.tensor([t == task for t in tasks], device=correct.device) & supervised
            if rows.any():
                self._metric(self.answer_acc, task, HitRate).update(correct[rows])

    def compute_and_reset(self) -> dict[str, Tensor]:
        """``{"ciou/<task>", "answer_acc/<task>", "video_J", "video_F", "video_jf"}`` over every rank's data, for
        what any rank updated. Under DDP every rank must call this (it communicates)."""
        self._align_tasks()
        with warnings.catch_warnings():  # a rank without samples of a task computes it too (its sums are 0)
            warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
            scores = {f"ciou/{task}": self.task_iou[task].compute() for task in sorted(self.task_iou)}
            scores |= {f"answer_acc/{task}": self.answer_acc[task].compute() for task in sorted(self.answer_acc)}
            jf = self.video_jf.compute()
        scores |= {"video_J": jf["J"], "video_F": jf["F"], "video_jf": jf["JF"]}
        for metric in [*self.task_iou.values(), *self.answer_acc.values(), self.video_jf]:
            metric.reset()
        return {name: value for name, value in scores.items() if not torch.isnan(value)}  # NaN: nothing anywhere

    def _metric(self, table: nn.ModuleDict, task: str, kind: type[Metric]) -> Metric:
        if task not in table:
            table[task] = kind().to(self.video_jf.count.device)
        return table[task]  # type: ignore[return-value]

    def _align_tasks(self) -> None:
        """Create, on every rank, the per-task metrics any rank has, so all ranks sync the same ones."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        names: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(names, (sorted(self.task_iou), sorted(self.answer_acc)))
        for iou_tasks, answer_tasks in names:
            for task in iou_tasks:
                self._metric(self.task_iou, task, CIoU)
            for task in answer_tasks:
                self._metric(self.answer_acc, task, HitRate)
