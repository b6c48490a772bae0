"""ResumableDataLoader: counts the batches of the epoch it served and, once restored, skips them unloaded."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, DistributedSampler

from unipixel_pl.resumable_loader import ResumableDataLoader


class Indices(Dataset[int]):
    """Returns its index and records every index it was asked for."""

    def __init__(self, length: int) -> None:
        self.length, self.loaded = length, []

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> int:
        self.loaded.append(index)
        return index


def batches(loader: ResumableDataLoader, count: int | None = None) -> list[list[int]]:
    iterator = iter(loader)
    taken = []
    for batch in iterator:
        taken.append(batch.tolist())
        if count is not None and len(taken) == count:
            break
    return taken


def test_state_counts_served_batches_and_restore_skips_them_without_loading() -> None:
    dataset = Indices(10)
    loader = ResumableDataLoader(dataset, batch_size=2)
    assert batches(loader, 2) == [[0, 1], [2, 3]]
    assert loader.state_dict() == {"consumed": 2}

    restored_dataset = Indices(10)
    restored = ResumableDataLoader(restored_dataset, batch_size=2)
    restored.load_state_dict(loader.state_dict())
    assert batches(restored) == [[4, 5], [6, 7], [8, 9]]
    assert restored_dataset.loaded == [4, 5, 6, 7, 8, 9]  # the skipped samples were never loaded
    assert restored.state_dict() == {"consumed": 5} and len(restored) == 5
    assert batches(restored) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]  # the next epoch is whole


def test_a_finished_epoch_restarts_from_the_beginning() -> None:
    loader = ResumableDataLoader(Indices(4), batch_size=2)
    loader.load_state_dict({"consumed": 2})
    assert batches(loader) == [[0, 1], [2, 3]]


def test_restore_follows_a_distributed_sampler_epoch() -> None:
    def loader() -> ResumableDataLoader:
        sampler = DistributedSampler(Indices(12), num_replicas=2, rank=1, shuffle=True, seed=3)
        sampler.set_epoch(4)
        return ResumableDataLoader(sampler.dataset, batch_size=2, sampler=sampler)

    full = batches(loader())
    resumed = loader()
    resumed.load_state_dict({"consumed": 1})
    assert batches(resumed) == full[1:]
    assert torch.tensor(full).numel() == 6
