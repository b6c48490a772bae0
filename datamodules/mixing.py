"""Sources, mixing weights and the shared data-type schedule (``reference/DATA.md`` §10.3, §11.4).

A source's weight is its online sample count times its repeat. Samples are grouped by data type (``seg_video``,
``ref_point`` ...), a template with a ``{}`` slot contributing half its count to each prompt kind. The schedule
draws the type of every micro-step from a generator seeded by ``(seed, step)`` only, so every rank and worker
agrees on it without communication: all ranks run the same type at each step, as the reference's
``GroupSampler`` guarantees.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from unipixel_pl.datamodules.manifest import load_manifest
from unipixel_pl.datamodules.schema import template_types

T = TypeVar("T")


@dataclass
class Source:
    """A shard set to read.

    Attributes:
        path: shard directory holding ``manifest.json`` (or the manifest file itself).
        repeat: oversampling factor; the mixing weight is ``num_samples * repeat`` (DATA.md §10.1).
    """

    path: str
    repeat: float = 1.0


@dataclass
class SourceShards:
    """A source with its manifest read: shard files with their record counts, and samples per data type."""

    name: str
    shards: list[tuple[str, int]]
    data_types: dict[str, int]
    repeat: float = 1.0

    @classmethod
    def load(cls, source: Source) -> SourceShards:
        if source.repeat <= 0:
            raise ValueError(f"source {source.path!r} has repeat {source.repeat}; use a positive factor")
        manifest, directory = load_manifest(source.path)
        if not manifest.shards:
            raise ValueError(f"shard set {source.path!r} ({manifest.source}/{manifest.split}) has no shards")
        shards = [(str(directory / shard.name), shard.num_records) for shard in manifest.shards]
        return cls(f"{manifest.source}/{manifest.split}", shards, dict(manifest.data_types), source.repeat)

    @property
    def num_records(self) -> int:
        return sum(count for _, count in self.shards)


def group_weights(sources: Sequence[SourceShards]) -> dict[str, dict[int, float]]:
    """Data type -> {source index: weight} with weight = samples of that type x repeat."""
    groups: dict[str, dict[int, float]] = {}
    for index, source in enumerate(sources):
        for template, count in source.data_types.items():
            for data_type, share in template_types(template).items():
                group = groups.setdefault(data_type, {})
                group[index] = group.get(index, 0.0) + count * share * source.repeat
    return dict(sorted(groups.items()))


class TypeSchedule:
    """The data type of every micro-step, a pure function of ``(seed, step)``.

    Args:
        weights: data type -> total weight of its group.
        seed: identical on every rank.
    """

    def __init__(self, weights: dict[str, float], seed: int) -> None:
        positive = {name: weight for name, weight in sorted(weights.items()) if weight > 0}
        if not positive:
            raise ValueError(f"no data type has a positive weight: {weights}")
        self.types = list(positive)
        self.cumulative = np.cumsum(list(positive.values())) / sum(positive.values())
        self.seed = seed

    def type_at(self, step: int) -> str:
        draw = np.random.default_rng([self.seed, step]).random()
        return self.types[min(int(np.searchsorted(self.cumulative, draw, side="right")), len(self.types) - 1)]


def weighted_mix(streams: Sequence[Iterator[T]], weights: Sequence[float], rng: np.random.Generator) -> Iterator[T]:
    """Endless draws: each item comes from stream ``i`` with probability ``weights[i] / sum(weights)``.

    The seeded counterpart of ``webdataset.RandomMix`` (which draws from the global ``random`` module).
    """
    probabilities = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    while True:
        yield next(streams[int(rng.choice(len(streams), p=probabilities))])


def shuffled(stream: Iterator[T], buffer_size: int, rng: np.random.Generator) -> Iterator[T]:
    """Buffer shuffle: fill ``buffer_size`` items, then emit a random one and refill its slot."""
    buffer: list[T] = []
    for item in stream:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        index = int(rng.integers(buffer_size))
        buffer[index], item = item, buffer[index]
        yield item
    while buffer:
        yield buffer.pop(int(rng.integers(len(buffer))))
