"""Samples/s and tokens/s of training through Lightning's ``ThroughputMonitor``."""

from __future__ import annotations

from lightning.pytorch.callbacks import ThroughputMonitor

from unipixel_pl.types import UniPixelBatch


def batch_size(batch: UniPixelBatch) -> int:
    return batch.batch_size


def batch_tokens(batch: UniPixelBatch) -> int:
    """Real (non-padding) tokens of the batch."""
    return int(batch.attention_mask.sum())


class UniPixelThroughput(ThroughputMonitor):
    """``ThroughputMonitor`` that knows how to count samples and tokens in a ``UniPixelBatch``.

    Logs ``train|device/samples_per_sec`` and ``train|device/items_per_sec`` (tokens) among others.

    Args:
        window_size: batches averaged over.
    """

    def __init__(self, window_size: int = 5) -> None:
        super().__init__(batch_size_fn=batch_size, length_fn=batch_tokens, window_size=window_size)
