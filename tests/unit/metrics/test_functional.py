"""Functional J, boundary F, IoU pieces, PixelQA J/F and answer parsing, against hand-worked values and an
independent NumPy DAVIS implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.unit.metrics._davis_reference import f_measure, j_measure, random_video, seg2bmap
from unipixel_pl.metrics.functional import (
    boundary_f,
    boundary_f_per_frame,
    boundary_map,
    boundary_radius,
    intersection_and_union,
    parse_choice,
    query_iou,
    region_j,
    region_j_per_frame,
    volume_jf,
)


def mask(height: int, width: int, *pixels: tuple[int, int], box: tuple[int, int, int, int] | None = None):
    """Bool ``(height, width)`` mask with the given pixels and/or the box rows y0:y1, columns x0:x1 set."""
    out = torch.zeros(height, width, dtype=torch.bool)
    for y, x in pixels:
        out[y, x] = True
    if box is not None:
        y0, y1, x0, x1 = box
        out[y0:y1, x0:x1] = True
    return out


def test_region_j_hand_cases() -> None:
    empty = mask(4, 5)
    assert region_j(empty, empty) == 1.0
    assert region_j(empty, mask(4, 5, (0, 0))) == 0.0
    assert region_j(mask(4, 5, (3, 4)), mask(4, 5, (3, 4))) == 1.0
    assert region_j(mask(4, 5, box=(0, 2, 0, 2)), mask(4, 5, box=(0, 2, 0, 3))) == pytest.approx(4 / 6, abs=0)


def test_boundary_map_hand_cases() -> None:
    # A centre pixel: the 2x2 blocks holding it have their top-left at (0,0), (0,1), (1,0), (1,1).
    assert boundary_map(mask(3, 3, (1, 1))).nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    # The bottom-right pixel: its own position is never a boundary; the last row/column compare east/south only.
    assert boundary_map(mask(5, 5, (4, 4))).nonzero().tolist() == [[3, 3], [3, 4], [4, 3]]
    # The left half of the frame: the boundary is the column before the edge; the image border is not a boundary.
    assert boundary_map(mask(4, 4, box=(0, 4, 0, 2))).nonzero().tolist() == [[y, 1] for y in range(4)]
    assert not boundary_map(torch.ones(4, 6, dtype=torch.bool)).any()


def test_boundary_radius() -> None:
    assert boundary_radius(480, 854) == 8
    assert boundary_radius(1080, 1920) == 18  # 0.008 * 2202.9 = 17.6
    assert boundary_radius(480, 854, bound_th=3) == 3
    with pytest.raises(ValueError, match="bound_th=2.5"):
        boundary_radius(480, 854, bound_th=2.5)
    with pytest.raises(ValueError, match="must be positive"):
        boundary_radius(480, 854, bound_th=0.0)


def test_boundary_f_hand_cases() -> None:
    empty, full = mask(4, 6), torch.ones(4, 6, dtype=torch.bool)
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(empty, mask(4, 6, (1, 1))) == 0.0
    assert boundary_f(mask(4, 6, (1, 1)), empty) == 0.0
    # The frame border is never a boundary, so a full prediction on an empty target has no boundary on either side.
    assert boundary_f(full, empty) == 1.0
    left2, left3, left4 = (mask(4, 6, box=(0, 4, 0, width)) for width in (2, 3, 4))
    assert boundary_f(left2, left3, bound_th=1) == 1.0  # boundaries one column apart
    assert boundary_f(left2, left4, bound_th=1) == 0.0  # two columns apart
    assert boundary_f(left2, left4, bound_th=2) == 1.0
    # Prediction boundary (0..3, 1), truth boundary {(0,1), (1,0), (1,1)}: (3,1) is unmatched, P = 3/4, R = 1.
    assert boundary_f(left2, mask(4, 6, box=(0, 2, 0, 2)), bound_th=1) == pytest.approx(6 / 7, abs=1e-15)


def test_boundary_f_single_pixels_and_border() -> None:
    # Boundaries {(1,1),(1,2),(2,1),(2,2)} and {(1,2),(1,3),(2,2),(2,3)}: all within 1 pixel of each other.
    assert boundary_f(mask(5, 5, (2, 2)), mask(5, 5, (2, 3)), bound_th=1) == 1.0
    # Truth on the last column: boundary {(1,3),(1,4),(2,3),(2,4)}; half of each side is within 1 pixel.
    assert boundary_f(mask(5, 5, (2, 2)), mask(5, 5, (2, 4)), bound_th=1) == 0.5
    assert region_j(mask(5, 5, (2, 2)), mask(5, 5, (2, 4))) == 0.0


@pytest.mark.parametrize("bound_th", [1, 2, 4, 0.008, 0.1])
def test_per_frame_against_numpy_reference(bound_th: float) -> None:
    generator = np.random.default_rng(int(bound_th * 1000))
    for _ in range(12):
        height, width = generator.integers(1, 26, size=2)
        pred, gt = (random_video(generator, 3, height, width) for _ in range(2))
        expected_f = [f_measure(p, g, bound_th) for p, g in zip(pred, gt, strict=True)]
        expected_j = [j_measure(p, g) for p, g in zip(pred, gt, strict=True)]
        assert boundary_f_per_frame(torch.from_numpy(pred), torch.from_numpy(gt), bound_th).tolist() == expected_f
        assert region_j_per_frame(torch.from_numpy(pred), torch.from_numpy(gt)).tolist() == expected_j


def test_boundary_map_against_numpy_reference() -> None:
    generator = np.random.default_rng(3)
    video = random_video(generator, 4, 9, 13) | random_video(generator, 4, 9, 13)
    expected = np.stack([seg2bmap(frame) for frame in video])
    assert np.array_equal(boundary_map(torch.from_numpy(video)).numpy(), expected)


def test_integer_masks_are_foreground_where_nonzero() -> None:
    pred = mask(6, 7, box=(1, 4, 2, 6))
    gt = mask(6, 7, box=(2, 5, 1, 5))
    assert region_j(pred.to(torch.uint8) * 255, gt.long()) == region_j(pred, gt)
    assert boundary_f(pred.to(torch.uint8) * 255, gt.long()) == boundary_f(pred, gt)


def test_bad_inputs_raise() -> None:
    with pytest.raises(TypeError, match="threshold logits"):
        region_j(torch.zeros(3, 3), torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="differ in shape"):
        boundary_f(mask(3, 3), mask(3, 4))
    with pytest.raises(ValueError, match="3-D"):
        region_j_per_frame(mask(3, 3), mask(3, 3))


def test_intersection_union_and_query_iou() -> None:
    pred = torch.stack([mask(4, 4, box=(0, 2, 0, 2)), mask(4, 4), mask(4, 4, box=(0, 4, 0, 1))])
    gt = torch.stack([mask(4, 4, box=(0, 2, 0, 1)), mask(4, 4), mask(4, 4, box=(0, 4, 0, 1))])
    intersection, union = intersection_and_union(pred, gt)
    assert intersection.tolist() == [2, 0, 4] and union.tolist() == [4, 0, 4]
    assert query_iou(intersection, union).tolist() == [0.5, 1.0, 1.0]
    assert query_iou(intersection, union, union_eps=1e-5).tolist() == [2 / (4 + 1e-5), 1.0, 4 / (4 + 1e-5)]
    # Ignored pixels leave both counts: ignoring column 1 removes one shared and one predicted-only pixel per row.
    ignore = mask(4, 4, box=(0, 4, 1, 2))
    assert [t.tolist() for t in intersection_and_union(pred[0], gt[0], ignore)] == [[2], [2]]


def test_volume_jf_hand_values() -> None:
    eps = 1e-6
    empty = torch.zeros(2, 3, 3, dtype=torch.bool)
    same = empty.clone()
    same[0, :2, :2] = True
    half = empty.clone()
    half[0, 0, :2] = True  # 2 of the 4 pixels of `same`
    region, f1 = volume_jf(torch.stack([empty, same, half]), torch.stack([empty, same, same]))
    precision, recall = 2 / (2 + eps), 2 / (4 + eps)
    assert region.tolist() == [0.0, 4 / (4 + eps), 2 / (4 + eps)]
    expected_same = 2 * (4 / (4 + eps)) ** 2 / (2 * (4 / (4 + eps)) + eps)
    assert f1.tolist() == pytest.approx([0.0, expected_same, 2 * precision * recall / (precision + recall + eps)])


def test_volume_jf_matches_float32_reference_closely() -> None:
    generator = torch.Generator().manual_seed(0)
    pred, gt = torch.rand(2, 4, 5, 16, 16, generator=generator) < 0.4
    region, f1 = volume_jf(pred, gt)
    for k in range(4):  # the reference's float32 arithmetic (infer_pixelqa.py), object by object
        tp, fp, fn = ((a & b).sum().float() for a, b in ((pred[k], gt[k]), (pred[k], ~gt[k]), (~pred[k], gt[k])))
        j = tp / ((pred[k] | gt[k]).sum().float() + 1e-6)
        p, r = tp / (tp + fp + 1e-6), tp / (tp + fn + 1e-6)
        assert region[k].item() == pytest.approx(j.item(), rel=1e-6)
        assert f1[k].item() == pytest.approx((2 * p * r / (p + r + 1e-6)).item(), rel=1e-6)


@pytest.mark.parametrize(
    ("response", "num_options", "expected"),
    [
        ("A", 4, 0),
        ("(B) the red car", 4, 1),
        ("c.", 4, 2),
        ("D)", 4, 3),
        ("E", 4, None),  # outside the options
        ("(E)", 5, 4),
        ("", 4, None),  # the reference script crashes here
        (" A", 4, None),  # split on one space: the first token is empty
        ("AB", 4, 0),  # first character kept
        ("Answer: B", 4, 0),  # the reference's quirk: "answer:" -> "a"
        ("1", 4, None),
        ("b\nbecause", 4, 1),  # only spaces separate tokens
    ],
)
def test_parse_choice(response: str, num_options: int, expected: int | None) -> None:
    assert parse_choice(response, num_options) == expected
