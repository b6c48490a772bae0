"""What every scorer shares during a run: the benchmark settings, the data side's encoder, greedy generation with
the answer pre-fill, and the first generated ``<|seg|>``'s mask on the scored frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from unipixel_pl.datamodules.collate import Collator
from unipixel_pl.datamodules.encode import SampleEncoder
from unipixel_pl.evaluation.benchmarks import Benchmark
from unipixel_pl.evaluation.outputs import PredictionLog
from unipixel_pl.evaluation.prompting import generation_sample
from unipixel_pl.evaluation.segment import segment_clip, segment_sampled
from unipixel_pl.evaluation.targets import EvalItem
from unipixel_pl.models.generation import greedy_decode
from unipixel_pl.types import UniPixelBatch

if TYPE_CHECKING:
    from unipixel_pl.models.lit_unipixel import LitUniPixel


@dataclass
class EvalContext:
    """Settings and helpers of one benchmark run on one rank.

    Attributes:
        benchmark: the benchmark; protocol: its resolved protocol.
        encoder: the data side's sample encoder (processor and tokenizer), for answers asked anew (PixelQA).
        collator: the data side's collate function.
        max_new_tokens: generation limit.
        sam_frames: ``all`` or ``sampled`` (see ``EvaluationConfig``).
        output_dir: the run's output folder; write_masks: write per-frame PNGs under ``output_dir/masks``.
        predictions: this rank's per-sample JSON lines.
    """

    benchmark: Benchmark
    protocol: str
    encoder: SampleEncoder
    collator: Collator
    max_new_tokens: int
    sam_frames: str
    output_dir: Path
    write_masks: bool
    predictions: PredictionLog

    @property
    def prefill_ids(self) -> list[int]:
        return self.encoder.processor.tokenizer.encode(self.benchmark.prefill, add_special_tokens=False)

    def response_text(self, token_ids: list[int], im_end: int) -> str:
        """The generated text after the pre-fill, without the closing ``<|im_end|>``."""
        kept = token_ids[:-1] if token_ids and token_ids[-1] == im_end else token_ids
        return self.encoder.processor.tokenizer.decode(kept, skip_special_tokens=False)


@dataclass
class Generation:
    """A greedy answer: its text, the ``(K, D)`` states of its ``<|seg|>`` tokens and the sample it answered."""

    response: str
    seg_states: Tensor
    sample: UniPixelBatch


def generate_answer(model: LitUniPixel, batch: UniPixelBatch, index: int, context: EvalContext) -> Generation:
    """Sample ``index`` of ``batch`` answered greedily after the benchmark's pre-fill."""
    sample = generation_sample(batch, index, context.prefill_ids)
    decoded = greedy_decode(model, sample, context.max_new_tokens)
    response = context.response_text(decoded.token_ids, model.config.backbone.tokens.im_end)
    return Generation(response, decoded.seg_states, sample)


def scored_frames(item: EvalItem, context: EvalContext) -> list[int]:
    """The frames a segmentation sample is scored on: every frame of the clip (``sam_frames=all``) or the
    frames the LLM saw."""
    if context.sam_frames == "all":
        return list(range(item.record.meta.media.num_frames))
    return item.frame_indices


def first_mask(model: LitUniPixel, generation: Generation, item: EvalItem, frames: list[int]) -> Tensor | None:
    """``(T, H, W)`` bool mask of the first generated ``<|seg|>`` on ``frames`` (CPU), or None without one."""
    if generation.seg_states.shape[0] == 0:
        return None
    tokens = model.pointer_head(generation.seg_states[:1])
    if frames == item.frame_indices:
        return segment_sampled(model, generation.sample, tokens)[0].cpu()
    return segment_clip(model, item.record, tokens)[0]


def empty_masks(item: EvalItem, frames: list[int]) -> Tensor:
    """``(T, H, W)`` all-false masks: what a failed generation is scored with."""
    media = item.record.meta.media
    return torch.zeros(len(frames), media.height, media.width, dtype=torch.bool)
