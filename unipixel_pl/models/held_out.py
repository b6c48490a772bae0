"""Held-out metrics beyond the overall cIoU: cIoU and answer accuracy per task and per data source, video J&F.

Answers are scored by teacher-forced exact match: a sample is correct when every supervised token is the argmax
of the logits before it. For a single-turn answer this equals "greedy decoding returns exactly the reference
answer" (greedy emits the reference iff each of its steps picks the reference token), without a generation loop.

Every value is a torchmetrics metric with sum-reduced states, so under DDP it is the value of the whole held-out
set, identical to a single process. Ranks may meet different tasks and sources: at the epoch end their names are
gathered first and every rank computes the same metrics in the same order, so no rank waits on a sync another never
joins.
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
    """cIoU and answer accuracy per task and per data source, J&F over video objects.

    A batch gives each sample's source when it carries ``sources`` (the data module's ``ShardBatch`` does: the
    shard set's ``{source}/{split}``); other batches only count per task. Metric states are not persistent, so
    these modules add nothing to checkpoints.
    """

    def __init__(self) -> None:
        super().__init__()
        self.task_iou = nn.ModuleDict()
        self.answer_acc = nn.ModuleDict()
        self.source_iou = nn.ModuleDict()
        self.source_answer_acc = nn.ModuleDict()
        self.video_jf = VideoJF()

    def update(self, batch: UniPixelBatch, masks: list[Tensor | None]) -> None:
        """Add each sample's predicted ``(O, T, S, S)`` masks against its ``(T, O, S, S)`` targets."""
        tasks, sources = _tasks(batch), _sources(batch)
        for b, (pred, target) in enumerate(zip(masks, batch.target_masks, strict=True)):
            if pred is None or target is None:
                continue
            flat_pred, flat_target = pred.flatten(0, 1), target.transpose(0, 1).flatten(0, 1)
            self._metric(self.task_iou, tasks[b], CIoU).update(flat_pred, flat_target)
            if sources is not None:
                self._metric(self.source_iou, sources[b], CIoU).update(flat_pred, flat_target)
            if target.shape[0] > 1:
                for obj in range(pred.shape[0]):
                    self.video_jf.update(pred[obj], target[:, obj])

    def update_answers(self, batch: UniPixelBatch, logits: Tensor | None) -> None:
        """Add the teacher-forced exact match of every sample with supervised tokens, per task and source."""
        if logits is None or batch.labels is None:
            return
        correct = answer_exact_match(logits, batch.labels)
        supervised = (batch.labels[:, 1:] != IGNORE_INDEX).any(dim=1)
        self._update_hit_rates(self.answer_acc, _tasks(batch), correct, supervised)
        sources = _sources(batch)
        if sources is not None:
            self._update_hit_rates(self.source_answer_acc, sources, correct, supervised)

    def compute_and_reset(self) -> dict[str, Tensor]:
        """``{"ciou/<task>", "answer_acc/<task>", "ciou/source/<source>", "answer_acc/source/<source>", "video_J",
        "video_F", "video_jf"}`` over every rank's data, for what any rank updated. Under DDP every rank must call
        this (it communicates)."""
        self._align_groups()
        with warnings.catch_warnings():  # a rank without samples of a group computes it too (its sums are 0)
            warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
            scores = {
                f"{prefix}{name}": table[name].compute()
                for prefix, table, _ in self._tables()
                for name in sorted(table)
            }
            jf = self.video_jf.compute()
        scores |= {"video_J": jf["J"], "video_F": jf["F"], "video_jf": jf["JF"]}
        for _, table, _ in self._tables():
            for metric in table.values():
                metric.reset()
        self.video_jf.reset()
        return {name: value for name, value in scores.items() if not torch.isnan(value)}  # NaN: nothing anywhere

    def _tables(self) -> list[tuple[str, nn.ModuleDict, type[Metric]]]:
        """Each per-group metric table with its score-name prefix and metric kind, in a fixed order."""
        return [
            ("ciou/", self.task_iou, CIoU),
            ("answer_acc/", self.answer_acc, HitRate),
            ("ciou/source/", self.source_iou, CIoU),
            ("answer_acc/source/", self.source_answer_acc, HitRate),
        ]

    def _update_hit_rates(self, table: nn.ModuleDict, groups: list[str], correct: Tensor, supervised: Tensor) -> None:
        """Add the ``(B,)`` ``correct`` outcomes of ``supervised`` samples to the hit rate of each one's group."""
        for group in sorted(set(groups)):
            rows = torch.tensor([g == group for g in groups], device=correct.device) & supervised
            if rows.any():
                self._metric(table, group, HitRate).update(correct[rows])

    def _metric(self, table: nn.ModuleDict, group: str, kind: type[Metric]) -> Metric:
        if group not in table:
            table[group] = kind().to(self.video_jf.count.device)
        return table[group]  # type: ignore[return-value]

    def _align_groups(self) -> None:
        """Create, on every rank, the per-task and per-source metrics any rank has, so all ranks sync the same."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        names: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(names, [sorted(table) for _, table, _ in self._tables()])
        for rank_names in names:
            for (_, table, kind), groups in zip(self._tables(), rank_names, strict=True):
                for group in groups:
                    self._metric(table, group, kind)


def _tasks(batch: UniPixelBatch) -> list[str]:
    """Per sample its task, ``unknown`` where the batch names none."""
    return [batch.task[b] if b < len(batch.task) else "unknown" for b in range(batch.batch_size)]


def _sources(batch: UniPixelBatch) -> list[str] | None:
    """Per sample its data source when the batch carries ``sources`` for every sample, else None."""
    sources = getattr(batch, "sources", None)
    return sources if sources and len(sources) == batch.batch_size else None
