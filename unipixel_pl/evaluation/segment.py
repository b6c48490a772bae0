"""Masks for evaluation: SAM 2 prompted by the pointer tokens of a ``<|seg|>``, on the sampled frames or on
every frame of the clip (the reference's ``sample_for_llm_only`` protocol, EVAL.md §1), at the original size."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from unipixel_pl.datamodules.frames import decode_frames
from unipixel_pl.inference.streaming import StreamedFrameFeatures
from unipixel_pl.models.sam2_transforms import sam2_transform
from unipixel_pl.types import UniPixelBatch

if TYPE_CHECKING:
    from unipixel_pl.datamodules.reader import Record
    from unipixel_pl.models.lit_unipixel import LitUniPixel

DECODE_CHUNK = 16
"""Frames decoded from the record at a time when streaming a whole clip through SAM 2."""


def segment_sampled(model: LitUniPixel, sample: UniPixelBatch, tokens: Tensor) -> Tensor:
    """``(O, T, H, W)`` bool masks on the sample's SAM 2 frames (the frames the LLM saw).

    Args:
        model: the model (its mask decoder runs).
        sample: a prepared batch of one with ``sam_frames`` and ``frame_sizes``.
        tokens: ``(O, n, S)`` pointer-head prompt tokens.
    """
    frames = sample.sam_frames[0] if sample.sam_frames else None
    size = sample.frame_sizes[0] if sample.frame_sizes else None
    if frames is None or size is None:
        raise ValueError("the sample has no SAM 2 frames: only segmentation samples can be segmented")
    return model.mask_decoder.segment(frames, tokens, size)


def segment_clip(model: LitUniPixel, record: Record, tokens: Tensor) -> Tensor:
    """``(O, N, H, W)`` bool masks on all ``N`` frames of the record, streamed through SAM 2 (one frame encoded
    at a time, so memory does not grow with ``N``), prompted on frame 0.

    Args:
        model: the model.
        record: the shard record (its frames are decoded here).
        tokens: ``(O, n, S)`` pointer-head prompt tokens.
    """
    media = record.meta.media
    decoder = model.mask_decoder
    features = StreamedFrameFeatures(decoder, _sam_frames(model, record), media.num_frames)
    size = (media.height, media.width)
    masks = torch.zeros(tokens.shape[0], media.num_frames, *size, dtype=torch.bool)
    for index, frame in enumerate(decoder.stream_segment(features, tokens, size)):
        masks[:, index] = (frame.mask_logits > 0).cpu()
    return masks


def _sam_frames(model: LitUniPixel, record: Record) -> Iterator[Tensor]:
    """``(3, S, S)`` normalised SAM 2 inputs of every frame of ``record``, in order, on the model's device."""
    parameter = next(model.mask_decoder.parameters())
    total = record.meta.media.num_frames
    for start in range(0, total, DECODE_CHUNK):
        rgb = torch.from_numpy(decode_frames(record, list(range(start, min(start + DECODE_CHUNK, total)))))
        frames = sam2_transform(rgb.to(parameter.device), model.mask_decoder.image_size)
        yield from frames.to(parameter.dtype)
