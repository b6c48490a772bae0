"""Multiple-choice accuracy with UniPixel's answer extraction (``reference/EVAL.md`` §2.6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from unipixel_pl.metrics.functional import parse_choice


class MultipleChoiceAccuracy(Metric):
    """Accuracy of generated answers to multiple-choice questions, overall and per task.

    A response is parsed with :func:`~unipixel_pl.metrics.functional.parse_choice`; an unparseable one is a
    failure, counted wrong and kept in the denominator. The overall accuracy is sample-weighted (micro); a sample
    tagged with several tasks counts once overall and once in each task. Used for VideoRefer-Bench-Q and PixelQA
    (tasks = question types) and MVBench (tasks = its 20 task names). Values are fractions; an empty task is NaN.

    Args:
        tasks: the task names samples may carry; none means overall accuracy only.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tasks: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks = tuple(tasks)
        slots = len(self.tasks) + 1  # one per task, the last one for all samples
        self.add_state("correct", torch.zeros(slots, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("failed", torch.zeros(slots, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(slots, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        responses: Sequence[str],
        answers: Sequence[int] | Tensor,
        num_options: Sequence[int] | int,
        tasks: Sequence[str | Sequence[str]] | None = None,
    ) -> None:
        """Add a batch of answered questions.

        Args:
            responses: generated texts, one per question.
            answers: the correct option of each question, 0-based (A = 0).
            num_options: the number of options of each question, or one number for all.
            tasks: each question's task name (or list of names), from ``tasks``; None counts overall only.
        """
        answers = answers.tolist() if isinstance(answers, Tensor) else list(answers)
        counts = [num_options] * len(responses) if isinstance(num_options, int) else list(num_options)
        sample_tasks = list(tasks) if tasks is not None else [()] * len(responses)
        if not len(answers) == len(counts) == len(sample_tasks) == len(responses):
            raise ValueError(
                f"got {len(responses)} responses, {len(answers)} answers, {len(counts)} option counts and "
                f"{len(sample_tasks)} tasks: pass one of each per question"
            )
        outcome = self._tally(responses, answers, counts, sample_tasks)
        outcome = outcome.to(self.correct.device)
        self.correct += outcome[0]
        self.failed += outcome[1]
        self.total += outcome[2]

    def compute(self) -> dict[str, Tensor]:
        """``{"accuracy", "failed"}`` overall plus ``"accuracy/{task}"`` and ``"failed/{task}"``; fractions."""
        accuracy, failed = self.correct.double() / self.total, self.failed.double() / self.total
        scores = {"accuracy": accuracy[-1], "failed": failed[-1]}
        for index, task in enumerate(self.tasks):
            scores |= {f"accuracy/{task}": accuracy[index], f"failed/{task}": failed[index]}
        return scores

    def _tally(
        self, responses: Sequence[str], answers: list[int], counts: list[int], tasks: list[str | Sequence[str]]
    ) -> Tensor:
        """``(3, len(tasks) + 1)`` int64 counts of correct, failed and all answers per task slot (last: overall)."""
        outcome = torch.zeros(3, len(self.correct), dtype=torch.int64)
        for response, answer, count, task in zip(responses, answers, counts, tasks, strict=True):
            choice = parse_choice(response, count)
            slots = [*self._slots(task), len(self.tasks)]
            outcome[0, slots] += int(choice == answer)
            outcome[1, slots] += int(choice is None)
            outcome[2, slots] += 1
        return outcome

    def _slots(self, task: str | Sequence[str]) -> list[int]:
        names = [task] if isinstance(task, str) else list(task)
        unknown = [name for name in names if name not in self.tasks]
        if unknown:
            raise ValueError(f"task(s) {unknown} are not among tasks={list(self.tasks)}: add them to `tasks`")
        return sorted({self.tasks.index(name) for name in names})
