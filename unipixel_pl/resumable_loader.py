"""A map-style ``DataLoader`` that resumes mid-epoch where the interrupted run stopped.

Lightning restores the loop counters of a mid-epoch checkpoint but restarts a plain ``DataLoader`` from the first
batch of the epoch (it only warns); it restores the position of loaders that have ``state_dict`` /
``load_state_dict``. This loader saves how many batches of the epoch the Trainer consumed and, after a restore,
skips that many at the batch-sampler level: indices are dropped, no sample is loaded. With a deterministic sampler
(sequential, or Lightning's ``DistributedSampler`` whose shuffle depends on the seed and epoch only) the resumed
run then sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from torch.utils.data import DataLoader


class _SkipFirstBatches:
    """A batch sampler that drops its first ``skip`` batches once (later epochs see every batch)."""

    def __init__(self, batches: Iterable[list[int]], skip: int) -> None:
        self.batches, self.skip = batches, skip

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        return islice(iter(self.batches), skip, None)

    def __len__(self) -> int:
        return len(self.batches) - self.skip  # type: ignore[arg-type]


class ResumableDataLoader(DataLoader):
    """``DataLoader`` (same arguments) whose position within the epoch is saved in Lightning checkpoints."""

    _served = 0
    _resume_at = 0
    _skipping = 0

    @property
    def _index_sampler(self) -> Any:
        base = super()._index_sampler
        return _SkipFirstBatches(base, self._skipping) if self._skipping else base

    def __iter__(self) -> Iterator[Any]:
        start = self._resume_at if self._resume_at < len(self) else 0
        self._resume_at, self._skipping = 0, start
        try:
            iterator = super().__iter__()
        finally:
            self._skipping = 0
        return self._count(iterator, start)

    def _count(self, iterator: Iterator[Any], start: int) -> Iterator[Any]:
        self._served = start
        for batch in iterator:
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """``{"consumed": batches of this epoch handed out}``; Lightning fetches a sized loader's batches only
        when a step needs one, so that is also the number of batches trained on."""
        return {"consumed": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next epoch iteration start after the ``consumed`` batches (a finished epoch starts over)."""
        self._resume_at = int(state["consumed"])
