"""Multiple-choice accuracy: parse failures count wrong, micro averaging, multi-task samples."""

from __future__ import annotations

import math

import pytest
import torch

from unipixel_pl.metrics import MultipleChoiceAccuracy


def test_overall_and_per_task_counts() -> None:
    metric = MultipleChoiceAccuracy(tasks=["basic", "future"])
    metric.update(
        responses=["A) yes", "(c)", "Z", "", "B."],
        answers=[0, 1, 2, 0, 1],
        num_options=[4, 4, 4, 4, 2],
        tasks=["basic", "basic", ["basic", "future"], "future", "future"],
    )
    scores = {key: value.item() for key, value in metric.compute().items()}
    # correct: 1st and 5th; failed (unparseable): 3rd and 4th; the 2nd is wrong but parsed.
    assert scores["accuracy"] == 2 / 5 and scores["failed"] == 2 / 5
    assert scores["accuracy/basic"] == 1 / 3 and scores["failed/basic"] == 1 / 3
    assert scores["accuracy/future"] == 1 / 3 and scores["failed/future"] == 2 / 3


def test_updates_accumulate_and_take_tensors_and_one_option_count() -> None:
    metric = MultipleChoiceAccuracy()
    metric.update(["A", "B"], torch.tensor([0, 0]), 2)
    metric.update(["C"], [2], 3)
    assert metric.compute()["accuracy"].item() == 2 / 3
    assert set(metric.compute()) == {"accuracy", "failed"}


def test_letter_beyond_options_is_a_failure() -> None:
    metric = MultipleChoiceAccuracy()
    metric.update(["C"], [2], 2)
    assert metric.compute()["accuracy"].item() == 0.0 and metric.compute()["failed"].item() == 1.0


def test_empty_task_is_nan() -> None:
    metric = MultipleChoiceAccuracy(tasks=["a", "b"])
    metric.update(["A"], [0], 4, ["a"])
    assert math.isnan(metric.compute()["accuracy/b"].item())


def test_bad_inputs_raise() -> None:
    metric = MultipleChoiceAccuracy(tasks=["a"])
    with pytest.raises(ValueError, match=r"\['b'\] are not among tasks=\['a'\]"):
        metric.update(["A"], [0], 4, ["b"])
    with pytest.raises(ValueError, match="2 responses, 1 answers"):
        metric.update(["A", "B"], [0], 4)
