"""PixelQA mask quality: per-object volume J and pixel F1 (``reference/EVAL.md`` §2.5)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from unipixel_pl.metrics.fixed_point import fixed_point_sum, from_fixed_point
from unipixel_pl.metrics.functional import volume_jf


class VolumeJF(Metric):
    """PixelQA J, F and J&F: each object's masks over the sampled frames scored as one volume, then averaged
    over all objects of all questions.

    J scores an empty prediction on an empty target 0 and F is the pixel F1 (see
    :func:`~unipixel_pl.metrics.functional.volume_jf`): not the DAVIS J and F of :class:`VideoJF`. Answer
    accuracy is :class:`MultipleChoiceAccuracy`. Values are fractions; NaN before any object.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("j_sum", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")  # fixed point
        self.add_state("f_sum", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")  # fixed point
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor) -> None:
        """Add the objects of one question.

        Args:
            pred: ``(N, T, H, W)`` predicted masks of N objects on the sampled frames.
            gt: same shape; empty on frames where an object is not annotated.
        """
        region, f1 = volume_jf(pred, gt)
        self.j_sum += fixed_point_sum(region)
        self.f_sum += fixed_point_sum(f1)
        self.count += region.numel()

    def compute(self) -> dict[str, Tensor]:
        """``{"J", "F", "JF"}``."""
        region, f1 = from_fixed_point(self.j_sum) / self.count, from_fixed_point(self.f_sum) / self.count
        return {"J": region, "F": f1, "JF": (region + f1) / 2}
