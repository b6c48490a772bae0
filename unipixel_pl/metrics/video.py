"""Video object segmentation metrics J, F and J&F with the expression as the unit (``reference/EVAL.md`` §2.3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric

from unipixel_pl.metrics.fixed_point import fixed_point_sum, from_fixed_point
from unipixel_pl.metrics.functional import boundary_f_per_frame, region_j_per_frame


class VideoJF(Metric):
    """Region J, boundary F and J&F, averaged over frames per expression, then over expressions.

    Each ``update`` is one expression: its masks on every frame, the ground truth being the union of its objects.
    ``J_e`` and ``F_e`` are the means over all frames of the DAVIS per-frame J and F; J and F are means of
    ``J_e`` and ``F_e`` and ``J&F = (J + F) / 2``. This is UniPixel's protocol for MeViS, Ref-DAVIS17 (VISA style,
    not ReferFormer's per-annotator one), Ref-SAV and Ref-YouTube-VOS. Values are fractions (not ×100); a group
    without expressions reads NaN.

    Args:
        group_names: names of the expression groups (``update``'s ``group`` indexes them); none means one group.
        overall: ``"pooled"``, the mean over all expressions, or ``"mean_of_groups"``, the mean of the group means
            (over groups that have expressions).
        round_per_expression: round ``J_e`` and ``F_e`` to 2 decimals of a percent before averaging (ReVOS).
        bound_th: boundary tolerance, a fraction of the frame diagonal.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        group_names: Sequence[str] = (),
        overall: Literal["pooled", "mean_of_groups"] = "pooled",
        round_per_expression: bool = False,
        bound_th: float = 0.008,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if overall not in ("pooled", "mean_of_groups"):
            raise ValueError(f"overall={overall!r} is not one of 'pooled', 'mean_of_groups'")
        self.group_names = tuple(group_names)
        self.overall = overall
        self.round_per_expression = round_per_expression
        self.bound_th = bound_th
        groups = max(len(self.group_names), 1)
        self.add_state("j_sum", torch.zeros(groups, dtype=torch.int64), dist_reduce_fx="sum")  # fixed point
        self.add_state("f_sum", torch.zeros(groups, dtype=torch.int64), dist_reduce_fx="sum")  # fixed point
        self.add_state("count", torch.zeros(groups, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor, group: int = 0) -> None:
        """Add one expression.

        Args:
            pred: ``(T, H, W)`` predicted masks on every frame, at the ground truth's resolution.
            gt: ``(T, H, W)`` ground truth, the union of the expression's objects.
            group: index into ``group_names`` (e.g. ReVOS ``type_id``).
        """
        if not 0 <= group < len(self.count):
            raise ValueError(f"group={group} is outside the {len(self.count)} group(s) {self.group_names}")
        region = region_j_per_frame(pred, gt).mean()
        boundary = boundary_f_per_frame(pred, gt, self.bound_th).mean()
        if self.round_per_expression:
            region, boundary = _round_percent(region), _round_percent(boundary)
        self.j_sum[group] += fixed_point_sum(region)
        self.f_sum[group] += fixed_point_sum(boundary)
        self.count[group] += 1

    def compute(self) -> dict[str, Tensor]:
        """``{"J", "F", "JF"}`` overall, plus ``"{group}/J"`` etc. per named group."""
        region, boundary = from_fixed_point(self.j_sum) / self.count, from_fixed_point(self.f_sum) / self.count
        if self.overall == "pooled":
            total = self.count.sum()
            scores = _jf(from_fixed_point(self.j_sum.sum()) / total, from_fixed_point(self.f_sum.sum()) / total)
        else:
            present = self.count > 0
            scores = _jf(region[present].mean(), boundary[present].mean())
        for index, name in enumerate(self.group_names):
            scores |= {f"{name}/{key}": value for key, value in _jf(region[index], boundary[index]).items()}
        return scores


class ReVOSJF(VideoJF):
    """ReVOS as ``eval_revos.py`` scores it: per-expression values rounded to 0.01 %, means over referring
    (``type_id`` 0) and reasoning (``type_id`` 1) expressions, overall = the mean of the two; other types ignored.

    Args:
        bound_th: boundary tolerance, a fraction of the frame diagonal.
    """

    def __init__(self, bound_th: float = 0.008, **kwargs: Any) -> None:
        super().__init__(
            group_names=("referring", "reasoning"),
            overall="mean_of_groups",
            round_per_expression=True,
            bound_th=bound_th,
            **kwargs,
        )

    def update(self, pred: Tensor, gt: Tensor, group: int = 0) -> None:
        """Add one expression; ``group`` is its ReVOS ``type_id`` (neither 0 nor 1: not scored)."""
        if group in (0, 1):
            super().update(pred, gt, group)


def _round_percent(value: Tensor) -> Tensor:
    """``round(100 * value, 2) / 100`` with NumPy's rounding (scale, round half to even), as the script does."""
    return torch.round(100 * value, decimals=2) / 100


def _jf(region: Tensor, boundary: Tensor) -> dict[str, Tensor]:
    return {"J": region, "F": boundary, "JF": (region + boundary) / 2}
