"""Bad data: what went wrong with which sample, and the policy that skips-and-counts (training) or raises (evaluation).

Bad data never stops training and is never silent: in training a bad sample is skipped, logged with its key and
reason, and counted (the counts travel with every batch and the datamodule logs them as metrics); in evaluation it
raises ``BadSampleError`` naming the key, because dropping an evaluation sample would bias the score.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

LOG = logging.getLogger("unipixel_pl.datamodules")

REASONS: tuple[str, ...] = (
    "truncated_tar",
    "missing_member",
    "bad_meta",
    "corrupt_image",
    "unreadable_video",
    "invalid_rle",
    "count_mismatch",
    "empty_object",
    "too_long",
    "encode_error",
)
"""Skip reasons, the suffixes of the ``data/skipped/<reason>`` metrics."""


@dataclass(frozen=True)
class BadSample:
    """A sample that cannot be used: its key (or the shard when no key is known), why, and where it came from."""

    key: str
    reason: str
    detail: str
    url: str = ""

    def __str__(self) -> str:
        where = f" in {self.url}" if self.url else ""
        return f"bad sample {self.key!r}{where}: {self.reason}: {self.detail}"


class BadSampleError(ValueError):
    """Raised by a pipeline stage for one bad sample; carries the ``BadSample``."""

    def __init__(self, bad: BadSample) -> None:
        super().__init__(str(bad))
        self.bad = bad


def bad(key: str, reason: str, detail: str, url: str = "") -> BadSampleError:
    """Build the error for a bad sample (``raise bad(key, "invalid_rle", "...")``)."""
    if reason not in REASONS:
        raise ValueError(f"unknown bad-sample reason {reason!r}; add it to REASONS")
    return BadSampleError(BadSample(key, reason, detail, url))


class SkipPolicy:
    """What to do with a bad sample.

    Args:
        strict: raise ``BadSampleError`` (evaluation) instead of skipping (training).
    """

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.counts: Counter[str] = Counter()

    def __call__(self, sample: BadSample) -> None:
        """Raise (strict) or log and count ``sample``."""
        if self.strict:
            raise BadSampleError(sample)
        self.counts[sample.reason] += 1
        LOG.warning("skipping %s", sample)

    def snapshot(self) -> dict[str, int]:
        """Cumulative skip counts per reason so far."""
        return dict(self.counts)
