"""BBox accuracy: small-component removal (8-connectivity), tight boxes, IoU >= 0.5 hits, on hand-built masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unipixel_pl.metrics import BoxAccuracy
from unipixel_pl.metrics.functional import box_hit, box_iou, mask_box, prediction_box


def _mask(height: int, width: int, *pixels: tuple[int, int]) -> torch.Tensor:
    mask = torch.zeros(height, width, dtype=torch.bool)
    for y, x in pixels:
        mask[y, x] = True
    return mask


def _flood_components(mask: np.ndarray) -> list[set[tuple[int, int]]]:
    """Independent 8-connected components by breadth-first flood fill over pixels."""
    seen, components = set(), []
    for start in zip(*np.nonzero(mask), strict=True):
        if start in seen:
            continue
        component, frontier = set(), [start]
        seen.add(start)
        while frontier:
            y, x = frontier.pop()
            component.add((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    near = (y + dy, x + dx)
                    inside = 0 <= near[0] < mask.shape[0] and 0 <= near[1] < mask.shape[1]
                    if inside and mask[near] and near not in seen:
                        seen.add(near)
                        frontier.append(near)
        components.append(component)
    return components


def test_single_pixel_box_has_area_one() -> None:
    assert mask_box(_mask(5, 5, (2, 3))) == (3.0, 2.0, 4.0, 3.0)
    assert mask_box(torch.zeros(4, 4, dtype=torch.bool)) is None


def test_small_components_are_dropped_before_the_box() -> None:
    mask = torch.zeros(20, 30, dtype=torch.bool)
    mask[2:6, 3:6] = True  # 12 px: kept
    mask[15, 25:28] = True  # 3 px, far away: dropped
    assert prediction_box(mask) == (3.0, 2.0, 6.0, 6.0)
    assert prediction_box(mask, min_component=13) is None  # nothing left: no box
    assert prediction_box(mask, min_component=3) == (3.0, 2.0, 28.0, 16.0)


def test_diagonal_pixels_form_one_component() -> None:
    # A 10-pixel diagonal staircase is one 8-connected component (and ten 4-connected ones).
    mask = _mask(12, 12, *[(i, i) for i in range(10)])
    assert prediction_box(mask) == (0.0, 0.0, 10.0, 10.0)
    broken = _mask(12, 12, *[(i, i) for i in range(10) if i != 5])  # two pieces of 5 and 4
    assert prediction_box(broken) is None


def test_component_sizes_match_a_flood_fill_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    for trial in range(20):
        mask = rng.random((17, 23)) < 0.35
        min_component = int(rng.integers(1, 12))
        kept = [c for c in _flood_components(mask) if len(c) >= min_component]
        expected = None
        if kept:
            pixels = np.array([p for c in kept for p in c])
            y0, x0 = pixels.min(0)
            y1, x1 = pixels.max(0)
            expected = (float(x0), float(y0), float(x1 + 1), float(y1 + 1))
        assert prediction_box(torch.from_numpy(mask), min_component) == expected, trial


def test_box_iou_and_hits() -> None:
    assert box_iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(2 / 6)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    mask = torch.zeros(10, 10, dtype=torch.bool)
    mask[0:4, 0:4] = True  # box (0, 0, 4, 4), area 16
    assert box_hit(mask, (0, 0, 4, 8))  # IoU 16/32 = 0.5: a hit
    assert not box_hit(mask, (0, 0, 4, 9))  # 16/36
    assert not box_hit(torch.zeros(10, 10, dtype=torch.bool), (0, 0, 4, 4))  # empty prediction: a miss


def test_box_accuracy_metric_counts_hits() -> None:
    mask = torch.zeros(3, 10, 10, dtype=torch.bool)
    mask[0, 0:4, 0:4] = True
    mask[1, 5:9, 5:9] = True
    boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 2, 2]], dtype=torch.float64)
    metric = BoxAccuracy()
    metric.update(mask, boxes)
    metric.update(mask[0], torch.tensor([0.0, 0.0, 4.0, 4.0]))
    assert metric.compute().item() == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="boxes"):
        metric.update(mask, boxes[:2])
    with pytest.raises(TypeError, match="threshold"):
        prediction_box(mask[0].float())
