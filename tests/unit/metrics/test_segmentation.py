"""cIoU and gIoU metrics against hand-worked sums."""

from __future__ import annotations

import math

import pytest
import torch

from unipixel_pl.metrics import CIoU, GIoU


def queries() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Three queries on frames of different sizes: (inter, union) = (2, 4), (0, 0), (3, 3)."""
    first_pred, first_gt = torch.zeros(3, 4, dtype=torch.bool), torch.zeros(3, 4, dtype=torch.bool)
    first_pred[0, :4] = True
    first_gt[0, 1:3] = True
    empty = torch.zeros(2, 2, dtype=torch.bool)
    third = torch.zeros(5, 2, dtype=torch.bool)
    third[:3, 0] = True
    return [(first_pred, first_gt), (empty, empty), (third, third)]


def test_ciou_is_summed_intersection_over_summed_union() -> None:
    metric = CIoU()
    for pred, gt in queries():
        metric.update(pred, gt)
    assert metric.compute().item() == 5 / 7


def test_giou_counts_empty_on_empty_as_one() -> None:
    metric = GIoU()
    for pred, gt in queries():
        metric.update(pred, gt)
    assert metric.compute().item() == pytest.approx((0.5 + 1 + 1) / 3, abs=1e-9)


def test_giou_lisa_epsilon() -> None:
    metric = GIoU(union_eps=1e-5)
    for pred, gt in queries():
        metric.update(pred, gt)
    assert metric.compute().item() == pytest.approx((2 / (4 + 1e-5) + 1 + 3 / (3 + 1e-5)) / 3, abs=1e-9)


def test_batched_queries_equal_single_updates() -> None:
    generator = torch.Generator().manual_seed(0)
    pred, gt = torch.rand(2, 6, 7, 9, generator=generator) < 0.5
    batched, single = CIoU(), CIoU()
    batched_g, single_g = GIoU(), GIoU()
    batched.update(pred, gt)
    batched_g.update(pred, gt)
    for p, g in zip(pred, gt, strict=True):
        single.update(p, g)
        single_g.update(p, g)
    assert torch.equal(batched.compute(), single.compute())
    assert torch.equal(batched_g.compute(), single_g.compute())


def test_ignored_pixels_are_not_scored() -> None:
    pred = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    gt = torch.tensor([[1, 0, 0], [0, 0, 1]], dtype=torch.bool)
    ignore = torch.tensor([[0, 1, 0], [0, 0, 1]], dtype=torch.bool)  # the false positive and the miss
    ciou, giou = CIoU(), GIoU()
    ciou.update(pred, gt, ignore)
    giou.update(pred, gt, ignore)
    assert ciou.compute().item() == 1.0 and giou.compute().item() == 1.0


def test_forward_returns_the_query_value_and_accumulates() -> None:
    metric = CIoU()
    (pred_a, gt_a), _, (pred_c, gt_c) = queries()
    assert metric(pred_a, gt_a).item() == 0.5
    assert metric(pred_c, gt_c).item() == 1.0
    assert metric.compute().item() == 5 / 7


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_no_data_is_nan() -> None:
    assert math.isnan(CIoU().compute().item()) and math.isnan(GIoU().compute().item())
