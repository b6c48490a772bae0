"""Frame samplers (DATA.md §3) and visual prompts (§6.1) against direct computations."""

from __future__ import annotations

import numpy as np
import pytest

from unipixel_pl.datamodules.frames import random_indices, sample_indices, uniform_indices
from unipixel_pl.datamodules.prompts import center_point, make_prompt
from unipixel_pl.datamodules.tasks import memory_prefix


def test_uniform_sampling_includes_both_ends() -> None:
    assert uniform_indices(10, 4) == [0, 3, 6, 9]
    assert uniform_indices(17, 16) == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16]
    assert uniform_indices(3, 8) == [0, 1, 2]
    assert uniform_indices(9, 1) == [4]  # the reference divides by zero here (quirk Q6)


def test_random_sampling_picks_one_frame_per_segment() -> None:
    rng = np.random.default_rng(0)
    bounds = [0, 2, 5, 8, 10, 12, 15, 18, 20]  # arange(0, 21, 2.5) rounded half to even: 21 frames, 8 segments
    for _ in range(50):
        picks = random_indices(21, 8, rng)
        for pick, lo, hi in zip(picks, bounds[:-1], bounds[1:], strict=True):
            assert lo <= pick < hi
    assert random_indices(5, 8, rng) == [0, 1, 2, 3, 4]


def test_kept_frame_replaces_the_nearest_sample() -> None:
    rng = np.random.default_rng(0)
    assert sample_indices(10, 4, "uniform", rng, keep=4) == [0, 4, 6, 9]
    with pytest.raises(ValueError, match="unknown frame sampler 'tsn'"):
        sample_indices(10, 4, "tsn", rng)


def _disk_masks() -> np.ndarray:
    ys, xs = np.mgrid[0:40, 0:60]
    mask = (xs - 20) ** 2 + (ys - 25) ** 2 <= 81
    masks = np.zeros((3, 40, 60), dtype=bool)
    masks[1] = mask
    masks[2] = np.roll(mask, 10, axis=1)
    return masks


def test_training_prompts_lie_on_visible_frames_and_the_object() -> None:
    masks, rng = _disk_masks(), np.random.default_rng(1)
    for _ in range(20):
        point = make_prompt("point", masks, rng, 768)
        assert point.frame in (1, 2) and point.labels.tolist() == [1]
        x, y = point.coords[0].astype(int)
        assert masks[point.frame, y, x]
        box = make_prompt("box", masks, rng, 768)
        tight = np.array([11, 16, 29, 34]) + np.array([10, 0, 10, 0]) * (box.frame == 2)
        jitter = min(0.1 * 18, 20 * 60 / 768)  # x side 18 px, 20 SAM pixels = 1.56 px here
        assert np.abs(box.coords.reshape(-1) - tight).max() <= max(jitter, min(0.1 * 18, 20 * 40 / 768)) + 1e-5
        assert box.labels.tolist() == [2, 3]
    assert make_prompt("point", np.zeros((2, 4, 4), dtype=bool), rng, 768) is None


def test_evaluation_prompts_are_deterministic() -> None:
    masks = _disk_masks()
    point = make_prompt("point", masks, None, 768, preferred_frame=2)
    assert point.frame == 2 and point.coords.tolist() == [[30.0, 25.0]]
    box = make_prompt("box", masks, None, 768)
    assert box.frame == 1 and box.coords.tolist() == [[11.0, 16.0], [29.0, 34.0]]
    square = np.zeros((9, 9), dtype=bool)
    square[2:7, 1:6] = True
    assert center_point(square) == (3, 4)


def test_memory_prefix_lists_non_empty_frame_pairs() -> None:
    masks = np.zeros((3, 2, 4, 4), dtype=bool)
    masks[0, 0, 1, 1] = masks[2, 0, 1, 1] = masks[2, 1, 0, 0] = True
    prefix = memory_prefix(3, masks, [4, 7])
    assert prefix == (
        "Here is a video with 3 frames denoted as <1> to <3>. The highlighted regions are as follows:\n"
        "[4]: <1>-<2> <|mem|> <3>-<4> <|mem|>\n[7]: <3>-<4> <|mem|>\n"
    )
    assert memory_prefix(1, masks[:1], [0, 1]).endswith("[0]: <|mem|>\n[1]: <|mem|>\n")
