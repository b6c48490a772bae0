"""Referring image segmentation metrics: cIoU and gIoU (``reference/EVAL.md`` §2.4).

Both accumulate per query; a query is one (prediction, ground truth) pair, scored only outside its ignore mask.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from unipixel_pl.metrics.fixed_point import fixed_point_sum, from_fixed_point
from unipixel_pl.metrics.functional import intersection_and_union, query_iou


class CIoU(Metric):
    """Cumulative IoU: ``Σ intersection / Σ union`` over every query (NaN while the union sum is 0).

    States are int64 pixel counts summed across processes, so the result is exact for any split of the queries.
    LISA adds 1e-10 to the denominator; that changes nothing but the all-empty case (0 there, NaN here).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("intersection", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("union", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor, ignore: Tensor | None = None) -> None:
        """Add queries.

        Args:
            pred: ``(H, W)`` or ``(N, H, W)`` predicted masks.
            gt: ground truth masks, same shape.
            ignore: same shape, true on pixels not scored, or None.
        """
        intersection, union = intersection_and_union(pred, gt, ignore)
        self.intersection += intersection.sum()
        self.union += union.sum()

    def compute(self) -> Tensor:
        return self.intersection.double() / self.union.double()  # 0 / 0 is NaN


class GIoU(Metric):
    """Mean per-query IoU, where an empty prediction on an empty target counts 1 (NaN before any query).

    Args:
        union_eps: added to each union: 0 is UniPixel's protocol (the default), 1e-5 is LISA's.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, union_eps: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.union_eps = union_eps
        self.add_state("iou_sum", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")  # fixed point
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor, ignore: Tensor | None = None) -> None:
        """Add queries.

        Args:
            pred: ``(H, W)`` or ``(N, H, W)`` predicted masks.
            gt: ground truth masks, same shape.
            ignore: same shape, true on pixels not scored, or None.
        """
        iou = query_iou(*intersection_and_union(pred, gt, ignore), union_eps=self.union_eps)
        self.iou_sum += fixed_point_sum(iou)
        self.count += iou.numel()

    def compute(self) -> Tensor:
        return from_fixed_point(self.iou_sum) / self.count  # 0 / 0 is NaN
