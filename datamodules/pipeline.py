"""Pieces shared by the training and evaluation streams: placement, record reading and sample processing.

``training.MixedTrainStream`` and ``evaluation.ExactEvalStream`` are the two pipelines built on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch.utils.data import get_worker_info

from unipixel_pl.datamodules.build import BuildConfig, build_sample
from unipixel_pl.datamodules.encode import SampleEncoder, SampleRecord
from unipixel_pl.datamodules.health import BadSample, BadSampleError, SkipPolicy, bad
from unipixel_pl.datamodules.reader import Record, decode_record, expand, iter_tar

MAX_CONSECUTIVE_FAILURES = 200
"""A stream that fails this many samples in a row is broken (wrong paths, a code bug), not unlucky: it raises."""


@dataclass
class StreamConfig:
    """Where this process sits and how to shuffle.

    Attributes:
        seed: run seed (identical on every rank).
        rank, world_size: this process among the data-parallel ranks.
        shuffle_buffer: records buffered per source stream before drawing.
    """

    seed: int = 0
    rank: int = 0
    world_size: int = 1
    shuffle_buffer: int = 64


def worker_slot() -> tuple[int, int]:
    """``(worker id, number of workers)`` of the calling DataLoader worker; ``(0, 1)`` in the main process."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class SampleProcessor:
    """Record -> ``SampleRecord``: online build, Qwen processing, SAM 2 transforms and the token-length filter.

    Args:
        encoder: the sample encoder (processor + SAM 2 size).
        config: online sampling settings.
        max_num_tokens: longer samples are bad (``too_long``) and drawn again; None disables.
    """

    def __init__(self, encoder: SampleEncoder, config: BuildConfig, max_num_tokens: int | None = None) -> None:
        self.encoder, self.config, self.max_num_tokens = encoder, config, max_num_tokens

    def __call__(self, record: Record, rng: np.random.Generator) -> SampleRecord:
        built = build_sample(record, self.config, rng)
        try:
            sample = self.encoder(built.frames, built.task, built.key)
        except ValueError as error:
            raise bad(record.unit_key, "encode_error", str(error), record.url) from error
        length = sample.text["input_ids"].shape[0]
        if self.max_num_tokens is not None and length > self.max_num_tokens:
            detail = f"{length} tokens > max_num_tokens={self.max_num_tokens}"
            raise bad(record.unit_key, "too_long", detail, record.url)
        return sample


def read_records(shards: list[tuple[str, int]], policy: SkipPolicy) -> Iterator[Record]:
    """Checked, expanded records of ``shards`` in order; bad ones go to ``policy``."""
    for path, expected in shards:
        for item in iter_tar(path, expected):
            if isinstance(item, BadSample):
                policy(item)
                continue
            try:
                yield from expand(decode_record(item))
            except BadSampleError as error:
                policy(error.bad)
