"""The evaluation pipeline: every sample read exactly once over all ranks and workers, errors on bad data.

Each (rank, worker) reads a contiguous block of every source's records; batches hold one data type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields

import numpy as np
from torch.utils.data import IterableDataset

from unipixel_pl.datamodules.collate import Collator, ShardBatch
from unipixel_pl.datamodules.encode import SampleRecord
from unipixel_pl.datamodules.frames import sample_indices
from unipixel_pl.datamodules.health import BadSample, BadSampleError, SkipPolicy
from unipixel_pl.datamodules.mixing import SourceShards
from unipixel_pl.datamodules.pipeline import SampleProcessor, StreamConfig, worker_slot
from unipixel_pl.datamodules.reader import Record, decode_record, expand, iter_tar
from unipixel_pl.datamodules.schema import stable_hash


@dataclass
class EvalBatch(ShardBatch):
    """An evaluation batch with, per sample, the shard record it came from (media bytes, mask tables, scoring
    data) and the indices of the frames sampled from it: what benchmark scoring needs beyond the model inputs.

    Attributes:
        records: per sample its checked record (``turn`` set for one expression of a per-video record).
        frame_indices: per sample the sampled frames' indices among the record's frames (empty without media).
    """

    records: list[Record] = field(default_factory=list)
    frame_indices: list[list[int]] = field(default_factory=list)

    @classmethod
    def extend(cls, batch: ShardBatch, records: list[Record], frame_indices: list[list[int]]) -> EvalBatch:
        """``batch`` with the records and sampled frame indices of its samples."""
        values = {f.name: getattr(batch, f.name) for f in fields(ShardBatch)}
        return cls(**values, records=records, frame_indices=frame_indices)


def slot_range(num_records: int, slot: int, slots: int) -> tuple[int, int]:
    """The contiguous ``[start, end)`` block of ``num_records`` read by ``slot`` of ``slots`` (sizes differ by <= 1)."""
    return slot * num_records // slots, (slot + 1) * num_records // slots


def records_in_range(source: SourceShards, start: int, end: int, policy: SkipPolicy) -> Iterator[Record]:
    """Expanded records ``start .. end - 1`` of a source (in manifest order), opening only the shards needed."""
    offset = 0
    for path, expected in source.shards:
        lo, hi = max(start - offset, 0), min(end - offset, expected)
        offset += expected
        if lo >= hi:
            continue
        position = 0
        for item in iter_tar(path, expected if hi == expected else None):
            if isinstance(item, BadSample):
                policy(item)
                continue
            position += 1
            if position - 1 < lo:
                continue
            try:
                yield from expand(decode_record(item))
            except BadSampleError as error:
                policy(error.bad)
            if position >= hi:
                break


class ExactEvalStream(IterableDataset):
    """Evaluation batches: every record of every source read exactly once over all ranks and workers.

    A bad sample raises ``BadSampleError`` naming its key. Batches hold one data type (consecutive samples of a
    type are grouped; the last batch of each type may be short). Batches are ``EvalBatch``es.
    """

    def __init__(
        self,
        sources: list[SourceShards],
        process: SampleProcessor,
        collator: Collator,
        batch_size: int,
        config: StreamConfig,
    ) -> None:
        super().__init__()
        self.sources, self.process, self.collator = sources, process, collator
        self.batch_size, self.config = batch_size, config

    def __iter__(self) -> Iterator[ShardBatch]:
        worker, workers = worker_slot()
        slot, slots = self.config.rank * workers + worker, self.config.world_size * workers
        policy = SkipPolicy(strict=True)
        pending: dict[str, list[tuple[SampleRecord, Record, str]]] = {}
        for source in self.sources:
            start, end = slot_range(source.num_records, slot, slots)
            for record in records_in_range(source, start, end, policy):
                sample = self._process(record)
                group = pending.setdefault(sample.task, [])
                group.append((sample, record, source.name))
                if len(group) == self.batch_size:
                    yield self._batch(pending.pop(sample.task), worker)
        for task in sorted(pending):
            yield self._batch(pending[task], worker)

    def _rng(self, record: Record) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, stable_hash(record.unit_key) % 2**32])

    def _process(self, record: Record) -> SampleRecord:
        return self.process(record, self._rng(record))

    def _frame_indices(self, record: Record) -> list[int]:
        """The frames ``build_sample`` sampled: the same call on a generator in the same state."""
        media, build = record.meta.media, self.process.config
        if media.kind == "none":
            return []
        return sample_indices(
            media.num_frames, build.sample_frames, build.frame_sampler, self._rng(record), keep=media.prompt_frame
        )

    def _batch(self, items: list[tuple[SampleRecord, Record, str]], worker: int) -> EvalBatch:
        """``(sample, record, source name)`` items -> one batch."""
        samples, records = [sample for sample, _, _ in items], [record for _, record, _ in items]
        sources = [source for _, _, source in items]
        batch = ShardBatch.wrap(self.collator(samples), [s.key for s in samples], sources, {}, worker)
        return EvalBatch.extend(batch, records, [self._frame_indices(record) for record in records])
