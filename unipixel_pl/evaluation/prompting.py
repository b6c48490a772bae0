"""Generation inputs from evaluation samples: the conversation up to its first answer, plus an answer pre-fill.

Evaluation batches are encoded like training batches (the reference answer included). Generation keeps every
token before the first supervised one, i.e. through ``<|im_start|>assistant\\n``, and appends the pre-fill tokens
(``The best option is (`` for multiple choice, EVAL.md §2.6). Text after the visual tokens has the same position on
the three mRoPE axes, one more than the largest position before it, as the processor assigns it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unipixel_pl.config import IGNORE_INDEX
from unipixel_pl.models.generation import single_sample
from unipixel_pl.types import UniPixelBatch


def answer_start(labels: Tensor) -> int:
    """Index of the first supervised token of ``labels: (L,)`` (where the first answer begins).

    Raises:
        ValueError: nothing is supervised, so there is no answer to cut at.
    """
    supervised = (labels != IGNORE_INDEX).nonzero()
    if supervised.numel() == 0:
        raise ValueError("the sample has no assistant answer to cut at: evaluation samples need one assistant turn")
    return int(supervised[0, 0])


def generation_sample(batch: UniPixelBatch, index: int, prefill_ids: list[int]) -> UniPixelBatch:
    """Sample ``index`` of ``batch`` cut before its first answer, with ``prefill_ids`` appended.

    Args:
        batch: an encoded batch with ``labels``.
        index: which sample.
        prefill_ids: token ids the assistant turn starts with (may be empty).

    Returns:
        A batch of one, without labels, ready for ``greedy_decode``.
    """
    if batch.labels is None:
        raise ValueError("evaluation batches need labels to find where each answer starts")
    start = answer_start(batch.labels[index])
    sample = single_sample(batch, index)
    prefill = torch.tensor([prefill_ids], dtype=sample.input_ids.dtype, device=sample.input_ids.device)
    positions = sample.position_ids[:, :, :start]
    follow = positions.max() + 1 + torch.arange(len(prefill_ids), device=positions.device)
    sample.input_ids = torch.cat([sample.input_ids[:, :start], prefill], dim=1)
    sample.attention_mask = torch.cat([sample.attention_mask[:, :start], torch.ones_like(prefill)], dim=1)
    sample.mm_token_type_ids = torch.cat([sample.mm_token_type_ids[:, :start], torch.zeros_like(prefill)], dim=1)
    sample.position_ids = torch.cat([positions, follow.to(positions.dtype).expand(3, 1, -1)], dim=2)
    return sample
