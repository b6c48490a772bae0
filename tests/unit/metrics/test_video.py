"""Video J, F and J&F: the expression as the unit, groups, ReVOS rounding and subset averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.unit.metrics._davis_reference import f_measure, j_measure, random_video
from unipixel_pl.metrics import ReVOSJF, VideoJF


def video(frames: int, *boxes: tuple[int, int, int, int, int], size: tuple[int, int] = (6, 8)) -> torch.Tensor:
    """``(frames, H, W)`` bool with boxes ``(frame, y0, y1, x0, x1)`` set."""
    out = torch.zeros(frames, *size, dtype=torch.bool)
    for frame, y0, y1, x0, x1 in boxes:
        out[frame, y0:y1, x0:x1] = True
    return out


def scores(metric: VideoJF) -> dict[str, float]:
    return {key: value.item() for key, value in metric.compute().items()}


def test_all_frames_empty_is_perfect() -> None:
    metric = VideoJF()
    metric.update(video(3), video(3))
    assert scores(metric) == {"J": 1.0, "F": 1.0, "JF": 1.0}


def test_frames_average_within_an_expression() -> None:
    # Frame 0: object missed (J = F = 0); frame 1: both empty (J = F = 1).
    metric = VideoJF()
    metric.update(video(2), video(2, (0, 1, 4, 2, 6)))
    assert scores(metric) == {"J": 0.5, "F": 0.5, "JF": 0.5}


def test_expressions_weigh_equally_whatever_their_length() -> None:
    # A 1-frame expression with J = F = 1 and a 3-frame one with J = F = 0: 0.5, not the frame-pooled 0.25.
    metric = VideoJF()
    box = (0, 1, 4, 2, 6)
    metric.update(video(1, box), video(1, box))
    metric.update(video(3), video(3, box, (1, *box[1:]), (2, *box[1:])))
    assert scores(metric)["J"] == pytest.approx(0.5, abs=1e-9)
    assert scores(metric)["F"] == pytest.approx(0.5, abs=1e-9)


def test_groups_pooled_and_mean_of_groups() -> None:
    box = (0, 1, 4, 2, 6)
    perfect, missed = (video(1, box), video(1, box)), (video(1), video(1, box))
    pooled, by_group = (VideoJF(("a", "b"), overall) for overall in ("pooled", "mean_of_groups"))
    for metric in (pooled, by_group):
        metric.update(*perfect, group=0)
        metric.update(*missed, group=0)
        metric.update(*perfect, group=1)
    assert scores(pooled)["J"] == pytest.approx(2 / 3, abs=1e-9)
    assert scores(by_group)["J"] == pytest.approx(0.75, abs=1e-9)
    assert scores(by_group)["a/J"] == pytest.approx(0.5, abs=1e-9) and scores(by_group)["b/JF"] == 1.0
    with pytest.raises(ValueError, match="group=2 is outside the 2 group"):
        pooled.update(*perfect, group=2)


def test_empty_group_is_nan_and_left_out_of_the_mean() -> None:
    metric = VideoJF(("a", "b"), "mean_of_groups")
    metric.update(video(1), video(1), group=1)
    result = scores(metric)
    assert math.isnan(result["a/J"]) and result["J"] == 1.0


def test_revos_rounds_per_expression_and_averages_subsets() -> None:
    # 3 frames with J = F = 1, 0, 0: 33.333 % rounds to 33.33 %.
    box = (0, 1, 4, 2, 6)
    third = (video(3, box), video(3, box, (1, *box[1:]), (2, *box[1:])))
    metric = ReVOSJF()
    metric.update(*third, group=0)
    metric.update(video(1), video(1), group=1)
    metric.update(video(1), video(1, box), group=2)  # another type_id: not scored
    result = scores(metric)
    assert result["referring/J"] == pytest.approx(0.3333, abs=1e-9)
    assert result["reasoning/F"] == 1.0
    assert result["J"] == pytest.approx((0.3333 + 1) / 2, abs=1e-9)
    assert result["JF"] == pytest.approx((0.3333 + 1) / 2, abs=1e-9)


def test_against_numpy_reference_protocols() -> None:
    """Random expressions scored by the DAVIS reference, then averaged as UniPixel and as eval_revos.py do."""
    generator = np.random.default_rng(7)
    expressions = []
    for index in range(6):
        frames, height, width = generator.integers(1, 5), generator.integers(2, 20), generator.integers(2, 20)
        pred, gt = (random_video(generator, frames, height, width) for _ in range(2))
        j = np.mean([j_measure(p, g) for p, g in zip(pred, gt, strict=True)])
        f = np.mean([f_measure(p, g, 0.05) for p, g in zip(pred, gt, strict=True)])
        expressions.append((pred, gt, index % 2, j, f))
    pooled, revos = VideoJF(bound_th=0.05), ReVOSJF(bound_th=0.05)
    for pred, gt, type_id, _, _ in expressions:
        pooled.update(torch.from_numpy(pred), torch.from_numpy(gt))
        revos.update(torch.from_numpy(pred), torch.from_numpy(gt), group=type_id)
    assert scores(pooled)["J"] == pytest.approx(np.mean([e[3] for e in expressions]), abs=1e-9)
    assert scores(pooled)["F"] == pytest.approx(np.mean([e[4] for e in expressions]), abs=1e-9)
    subsets = [[e for e in expressions if e[2] == type_id] for type_id in (0, 1)]
    # eval_revos.py: round(100 * j, 2) of a NumPy float, subset means, then the mean of the two subsets.
    j_subsets = [np.mean([np.round(100 * e[3], 2) for e in subset]) for subset in subsets]
    f_subsets = [np.mean([np.round(100 * e[4], 2) for e in subset]) for subset in subsets]
    assert 100 * scores(revos)["J"] == pytest.approx(np.mean(j_subsets), abs=1e-7)
    assert 100 * scores(revos)["reasoning/F"] == pytest.approx(f_subsets[1], abs=1e-7)
    assert 100 * scores(revos)["JF"] == pytest.approx((np.mean(j_subsets) + np.mean(f_subsets)) / 2, abs=1e-7)


def test_revos_rounding_is_numpys() -> None:
    # J = 107 / 4000: 100 * J is stored just below 2.675, which NumPy's round (eval_revos.py rounds NumPy floats)
    # takes up to 2.68 and Python's round down to 2.67.
    gt = torch.ones(1, 40, 100, dtype=torch.bool)
    pred = torch.zeros_like(gt)
    pred.view(-1)[:107] = True
    metric = ReVOSJF()
    metric.update(pred, gt, group=0)
    assert np.round(100 * (107 / 4000), 2) == 2.68 != round(100 * (107 / 4000), 2)
    assert 100 * scores(metric)["referring/J"] == pytest.approx(2.68, abs=1e-9)


def test_forward_returns_the_expression_scores() -> None:
    metric = VideoJF()
    box = (0, 1, 4, 2, 6)
    assert metric(video(1, box), video(1, box))["JF"].item() == 1.0
    assert metric(video(1), video(1, box))["JF"].item() == 0.0
    assert scores(metric)["JF"] == pytest.approx(0.5, abs=1e-9)
