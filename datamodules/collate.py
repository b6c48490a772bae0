"""Collate ``SampleRecord``s into a right-padded ``UniPixelBatch`` carrying host media (uint8 frames, original-size
masks); the model builds its float inputs from them on its device (``unipixel_pl.models.pixel_pipeline``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

from unipixel_pl.config import IGNORE_INDEX
from unipixel_pl.datamodules.encode import SampleRecord
from unipixel_pl.types import UniPixelBatch


def _pad(sequences: list[Tensor], value: int) -> Tensor:
    """Right-pad ``(..., L_i)`` tensors along their last axis and stack on a new axis 0 -> ``(B, ..., L_max)``."""
    length = max(s.shape[-1] for s in sequences)
    padded = [torch.nn.functional.pad(s, (0, length - s.shape[-1]), value=value) for s in sequences]
    return torch.stack(padded)


class Collator:
    """Callable collate function; ``pad_token_id`` fills ``input_ids`` padding.

    Padding positions get position id 1, label ``IGNORE_INDEX`` and attention 0 (as transformers does).
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, records: list[SampleRecord]) -> UniPixelBatch:
        if not records:
            raise ValueError("cannot collate an empty list of samples")
        text = [r.text for r in records]
        with_video = [i for i, r in enumerate(records) if r.video is not None]
        return UniPixelBatch(
            input_ids=_pad([t["input_ids"] for t in text], self.pad_token_id),
            attention_mask=_pad([t["attention_mask"] for t in text], 0),
            position_ids=_pad([t["position_ids"] for t in text], 1).transpose(0, 1).contiguous(),
            mm_token_type_ids=_pad([t["mm_token_type_ids"] for t in text], 0),
            labels=_pad([t["labels"] for t in text], IGNORE_INDEX),
            video_grid_thw=torch.cat([records[i].video_grid_thw for i in with_video]) if with_video else None,
            video_sample_index=torch.tensor(with_video, dtype=torch.long) if with_video else None,
            frame_sizes=[r.frame_size for r in records],
            prompts=[r.prompts for r in records],
            refer_masks=[r.refer_mask for r in records],
            task=[r.task for r in records],
            videos=[records[i].video for i in with_video],  # type: ignore[misc]
            frames=[r.frames for r in records],
            frame_masks=[r.frame_masks for r in records],
        )


@dataclass
class ShardBatch(UniPixelBatch):
    """A ``UniPixelBatch`` read from shards, with what the data side knows about it.

    Attributes:
        keys: per sample its shard key (``{key}__t{turn}`` for one expression of a per-video record).
        sources: per sample the name of the shard set it was read from, ``{source}/{split}`` of that set's
            manifest (``SourceShards.name``, e.g. ``refcoco/val``); held-out metrics are also grouped by it.
        skipped: bad samples skipped so far by the worker that built this batch, per reason (cumulative).
        worker: that worker's id (0 without workers).
    """

    keys: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    worker: int = 0

    @classmethod
    def wrap(
        cls, batch: UniPixelBatch, keys: list[str], sources: list[str], skipped: dict[str, int], worker: int
    ) -> ShardBatch:
        values = {f.name: getattr(batch, f.name) for f in fields(UniPixelBatch)}
        return cls(**values, keys=keys, sources=sources, skipped=skipped, worker=worker)
