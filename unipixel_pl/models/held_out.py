"""Held-out metrics beyond the overall cIoU: per-task cIoU, video J&F and answer accuracy per task.

Answers are scored by teacher-forced exact match: a sample is correct when every supervised token is the argmax
of the logits before it. For a single-turn answer this equals "greedy decoding returns exactly the reference
answer" (greedy emits the reference iff each of its steps picks the reference token), without a generation loop.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

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


class HeldOutMetrics(nn.Module):
    """cIoU per task (image and video masks), J&F over video objects, and their epoch-end values.

    Metric states are not persistent, so these modules add nothing to checkpoints. They are never synced across
    ranks (each rank may meet different tasks, and a sync every rank does not reach would hang): under DDP the values
    are rank 0's share of the data.
    """

    def __init__(self) -> None:
        super().__init__()
        self.task_iou = nn.ModuleDict()
        self.video_jf = VideoJF(sync_on_compute=False)

    def update(self, batch: UniPixelBatch, masks: list[Tensor | None]) -> None:
        """Add each sample's predicted ``(O, T, S, S)`` masks against its ``(T, O, S, S)`` targets."""
        for b, (pred, target) in enumerate(zip(masks, batch.target_masks, strict=True)):
            if pred is None or target is None:
                continue
            task = batch.task[b] if b < len(batch.task) else "unknown"
            if task not in self.task_iou:
                self.task_iou[task] = CIoU(sync_on_compute=False).to(pred.device)
            self.task_iou[task].update(pred.flatten(0, 1), target.transpose(0, 1).flatten(0, 1))
            if target.shape[0] > 1:
                for obj in range(pred.shape[0]):
                    self.video_jf.update(pred[obj], target[:, obj])

    def compute_and_reset(self) -> dict[str, Tensor]:
        """``{"ciou/<task>": ..., "video_J": ..., "video_F": ..., "video_jf": ...}`` for what was updated."""
        scores = {f"ciou/{task}": metric.compute() for task, metric in self.task_iou.items() if metric.update_count}
        if self.video_jf.update_count:
            jf = self.video_jf.compute()
            scores |= {"video_J": jf["J"], "video_F": jf["F"], "video_jf": jf["JF"]}
        for metric in [*self.task_iou.values(), self.video_jf]:
            metric.reset()
        return scores


def log_answer_accuracy(module: L.LightningModule, stage: str, batch: UniPixelBatch, logits: Tensor | None) -> None:
    """Log ``{stage}/answer_acc/<task>`` (batch-weighted over the epoch) for samples with supervised tokens.

    Not synced across ranks: ranks may meet different tasks, and a reduction some rank never joins would hang.
    """
    if logits is None or batch.labels is None:
        return
    correct = answer_exact_match(logits, batch.labels)
    supervised = (batch.labels[:, 1:] != IGNORE_INDEX).any(dim=1)
    tasks = batch.task or ["unknown"] * batch.batch_size
    for task in sorted(set(tasks)):
        rows = torch.tensor([t == task for t in tasks], device=correct.device) & supervised
        if rows.any():
            value = correct[rows].float().mean()
            module.log(f"{stage}/answer_acc/{task}", value, batch_size=int(rows.sum()))
