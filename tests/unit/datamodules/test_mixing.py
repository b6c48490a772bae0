"""Mixing weights, the shared data-type schedule, seeded mixing and buffer shuffling."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from unipixel_pl.datamodules.mixing import SourceShards, TypeSchedule, group_weights, shuffled, weighted_mix


def test_group_weights_are_samples_times_repeat_with_prompt_kinds_split() -> None:
    refcoco = SourceShards("refcoco/train", [("a.tar", 10)], {"seg_image": 100}, repeat=5)
    videorefer = SourceShards("videorefer/train", [("b.tar", 10)], {"mem_{}_video": 60, "region_video": 40})
    synthetic = SourceShards("synthetic/train", [("c.tar", 10)], {"seg_image": 30, "mem_{}_video": 20}, repeat=2)
    assert group_weights([refcoco, videorefer, synthetic]) == {
        "mem_box_video": {1: 30.0, 2: 20.0},
        "mem_point_video": {1: 30.0, 2: 20.0},
        "region_video": {1: 40.0},
        "seg_image": {0: 500.0, 2: 60.0},
    }


def test_schedule_is_a_pure_function_of_seed_and_step() -> None:
    weights = {"seg_image": 3.0, "ref_point": 1.0, "empty": 0.0}
    schedule = TypeSchedule(weights, seed=7)
    steps = [schedule.type_at(step) for step in range(4000)]
    assert steps == [TypeSchedule(weights, seed=7).type_at(step) for step in range(4000)]
    assert steps[1000:1010] == [schedule.type_at(step) for step in range(1000, 1010)]  # random access
    assert steps != [TypeSchedule(weights, seed=8).type_at(step) for step in range(4000)]
    share = Counter(steps)["seg_image"] / len(steps)
    assert abs(share - 0.75) < 0.03 and "empty" not in steps
    with pytest.raises(ValueError, match="no data type has a positive weight"):
        TypeSchedule({"seg_image": 0.0}, seed=0)


def test_weighted_mix_follows_the_weights() -> None:
    streams = [iter(lambda: "a", None), iter(lambda: "b", None)]
    mix = weighted_mix(streams, [1.0, 4.0], np.random.default_rng(0))
    draws = Counter(next(mix) for _ in range(5000))
    assert abs(draws["b"] / 5000 - 0.8) < 0.03


def test_shuffled_is_a_seeded_permutation() -> None:
    first = list(shuffled(iter(range(100)), 10, np.random.default_rng(0)))
    assert sorted(first) == list(range(100)) and first != list(range(100))
    assert first == list(shuffled(iter(range(100)), 10, np.random.default_rng(0)))
