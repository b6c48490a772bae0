"""Cumulative IoU (cIoU) over masks, sum-reduced so it is exact across processes."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class MaskIoU(Metric):
    """cIoU = total intersection / total union over every (object, frame) seen."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("intersection", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("union", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, targets: Tensor) -> None:
        """Accumulate bool masks of identical shape ``(..., H, W)``."""
        if preds.shape != targets.shape:
            raise ValueError(f"predicted masks {tuple(preds.shape)} and targets {tuple(targets.shape)} differ")
        preds, targets = preds.bool(), targets.bool()
        self.intersection += (preds & targets).sum()
        self.union += (preds | targets).sum()

    def compute(self) -> Tensor:
        return (self.intersection / self.union.clamp(min=1)).float()
