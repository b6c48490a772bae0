"""The training pipeline: resampled, shuffled, weight-mixed sources and one data type per micro-step.

Every (rank, worker) reads its own endless resampled stream of each source, split by data type, shuffled and
mixed by weight; worker ``j`` of ``W`` builds micro-steps ``k = j, j + W, ...`` (the DataLoader takes batches
from workers round-robin, so batch ``k`` of every rank is micro-step ``k``) and every batch holds
``TypeSchedule.type_at(k)`` samples only, the same type on every rank.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import count, repeat

import numpy as np
from torch.utils.data import IterableDataset

from unipixel_pl.datamodules.collate import Collator, ShardBatch
from unipixel_pl.datamodules.encode import SampleRecord
from unipixel_pl.datamodules.health import BadSampleError, SkipPolicy
from unipixel_pl.datamodules.mixing import SourceShards, TypeSchedule, group_weights, shuffled, weighted_mix
from unipixel_pl.datamodules.pipeline import (
    MAX_CONSECUTIVE_FAILURES,
    SampleProcessor,
    StreamConfig,
    read_records,
    worker_slot,
)
from unipixel_pl.datamodules.reader import Record
from unipixel_pl.datamodules.schema import resolve_data_type, stable_hash


def resampled_records(source: SourceShards, rng: np.random.Generator, policy: SkipPolicy) -> Iterator[Record]:
    """Endless records: shards drawn with replacement, proportionally to their record counts."""
    counts = np.array([max(c, 1) for _, c in source.shards], dtype=np.float64)
    empty_draws = 0
    while True:
        shard = source.shards[int(rng.choice(len(source.shards), p=counts / counts.sum()))]
        produced = False
        for record in read_records([shard], policy):
            produced = True
            yield record
        empty_draws = 0 if produced else empty_draws + 1
        if empty_draws >= MAX_CONSECUTIVE_FAILURES:
            raise RuntimeError(f"source {source.name}: {empty_draws} shard draws in a row yielded no readable record")


class TypeDemux:
    """Splits one source's record stream by data type, so each record is read once whatever type asks for it.

    Args:
        records: the source's (endless) records.
        seed: resolves the point/box slot of data-type templates.
        capacity: records queued per type at most (the oldest is dropped beyond it).
        patience: records read in a row without finding a requested type before giving up.
    """

    def __init__(self, records: Iterator[Record], seed: int, capacity: int, patience: int) -> None:
        self.records, self.seed, self.capacity, self.patience = records, seed, capacity, patience
        self.queues: dict[str, deque[Record]] = {}

    def next(self, data_type: str) -> Record:
        """The next record of ``data_type``."""
        queue = self.queues.setdefault(data_type, deque())
        for _ in range(self.patience):
            if queue:
                return queue.popleft()
            record = next(self.records)
            other = self.queues.setdefault(
                resolve_data_type(record.meta.data_type_template, record.key, self.seed), deque()
            )
            other.append(record)
            if len(other) > self.capacity:
                other.popleft()
        raise RuntimeError(f"no readable {data_type} record in {self.patience} reads")

    def stream(self, data_type: str) -> Iterator[Record]:
        while True:
            yield self.next(data_type)


class GroupStream:
    """Endless ``(SampleRecord, source name)`` pairs of one data type: its sources' records shuffled, mixed by
    weight, processed.

    Args:
        demuxes: per source index, the worker's type-split record stream of that source.
        names: per source index, its name (``SourceShards.name``).
        weights: source index -> weight within this data type.
        process: record -> sample.
        policy: where bad samples go.
        rng: draws for shuffling and mixing.
        shuffle_buffer: records buffered per source.
    """

    def __init__(
        self,
        data_type: str,
        demuxes: dict[int, TypeDemux],
        names: list[str],
        weights: dict[int, float],
        process: SampleProcessor,
        policy: SkipPolicy,
        rng: np.random.Generator,
        shuffle_buffer: int,
    ) -> None:
        self.data_type, self.process, self.policy, self.seed = data_type, process, policy, process.config.seed
        indices = sorted(weights)
        streams = [zip(repeat(names[i]), shuffled(demuxes[i].stream(data_type), shuffle_buffer, rng)) for i in indices]
        self.records = weighted_mix(streams, [weights[i] for i in indices], rng)
        self.draws = 0

    def __iter__(self) -> GroupStream:
        return self

    def __next__(self) -> tuple[SampleRecord, str]:
        for _ in range(MAX_CONSECUTIVE_FAILURES):
            source, record = next(self.records)
            self.draws += 1
            rng = np.random.default_rng([self.seed, stable_hash(record.unit_key) % 2**32, self.draws])
            try:
                return self.process(record, rng), source
            except BadSampleError as error:
                self.policy(error.bad)
        raise RuntimeError(
            f"{self.data_type}: {MAX_CONSECUTIVE_FAILURES} samples failed in a row (skips so far "
            f"{dict(self.policy.counts)}); its sources hold no usable sample of this type"
        )


class MixedTrainStream(IterableDataset):
    """Endless (or ``steps_per_epoch``-long) training batches; one data type per micro-step on every rank.

    Args:
        sources: training shard sets.
        process: record -> sample.
        collator: samples -> batch.
        batch_size: samples per micro-step on this rank.
        config: seed, rank and shuffle settings.
        steps_per_epoch: micro-steps per ``iter()`` on this rank; None is endless. Successive iterations continue
            the schedule (keep DataLoader workers persistent so they remember where they are).
        start_epoch: the epoch the first iteration reads (the trainer's epoch when resuming).
    """

    def __init__(
        self,
        sources: list[SourceShards],
        process: SampleProcessor,
        collator: Collator,
        batch_size: int,
        config: StreamConfig,
        steps_per_epoch: int | None = None,
        start_epoch: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sources, self.process, self.collator = sources, process, collator
        self.batch_size, self.config, self.steps_per_epoch = batch_size, config, steps_per_epoch
        self.weights = group_weights(sources)
        self.schedule = TypeSchedule({t: sum(w.values()) for t, w in self.weights.items()}, config.seed)
        self.policy = SkipPolicy(strict=False)
        self._groups: dict[str, GroupStream] = {}
        self._sources: dict[int, TypeDemux] = {}
        self._epoch = start_epoch

    def __len__(self) -> int:
        if self.steps_per_epoch is None:
            raise TypeError("an endless training stream has no length; set steps_per_epoch")
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[ShardBatch]:
        worker, workers = worker_slot()
        epoch, self._epoch = self._epoch, self._epoch + 1
        first = epoch * (self.steps_per_epoch or 0)
        steps = count(first + worker, workers)
        for step in steps:
            if self.steps_per_epoch is not None and step >= first + self.steps_per_epoch:
                return
            group = self._group(self.schedule.type_at(step), worker)
            drawn = [next(group) for _ in range(self.batch_size)]
            samples, sources = [sample for sample, _ in drawn], [source for _, source in drawn]
            keys = [sample.key for sample in samples]
            yield ShardBatch.wrap(self.collator(samples), keys, sources, self.policy.snapshot(), worker)

    def _group(self, data_type: str, worker: int) -> GroupStream:
        if data_type not in self._groups:
            cfg = self.config
            rng = np.random.default_rng([cfg.seed, cfg.rank, worker, stable_hash(data_type) % 2**32])
            self._groups[data_type] = GroupStream(
                data_type,
                self._demuxes(worker),
                [source.name for source in self.sources],
                self.weights[data_type],
                self.process,
                self.policy,
                rng,
                cfg.shuffle_buffer,
            )
        return self._groups[data_type]

    def _demuxes(self, worker: int) -> dict[int, TypeDemux]:
        """One type-split resampled stream per source, shared by all data types of this worker."""
        if not self._sources:
            cfg = self.config
            for index, source in enumerate(self.sources):
                rng = np.random.default_rng([cfg.seed, cfg.rank, worker, index])
                patience = 20 * sum(source.data_types.values()) + MAX_CONSECUTIVE_FAILURES
                records = resampled_records(source, rng, self.policy)
                self._sources[index] = TypeDemux(records, cfg.seed, max(cfg.shuffle_buffer, 16), patience)
        return self._sources
