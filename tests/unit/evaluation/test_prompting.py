"""Generation inputs: the conversation cut at its first answer, the pre-fill appended with text positions."""

from __future__ import annotations

import pytest
import torch

from unipixel_pl.config import IGNORE_INDEX
from unipixel_pl.evaluation.prompting import answer_start, generation_sample
from unipixel_pl.types import UniPixelBatch

NO = IGNORE_INDEX


def _batch() -> UniPixelBatch:
    """Two samples, the second padded: positions rise by vision-grid steps, then by one per text token."""
    input_ids = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 7, 8, 0, 0]])
    labels = torch.tensor([[NO, NO, NO, NO, 5, 6], [NO, NO, NO, 8, NO, NO]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    positions = torch.tensor([[0, 1, 1, 5, 6, 7], [0, 1, 2, 3, 1, 1]]).expand(3, 2, 6).clone()
    positions[1, 0, 2] = 4  # the height axis of a vision token runs ahead
    types = torch.tensor([[0, 2, 2, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    return UniPixelBatch(input_ids, attention, positions, types, labels=labels)


def test_answer_start_is_the_first_supervised_token() -> None:
    assert answer_start(torch.tensor([NO, NO, 7, 8])) == 2
    with pytest.raises(ValueError, match="no assistant answer"):
        answer_start(torch.tensor([NO, NO]))


def test_generation_sample_cuts_and_prefills() -> None:
    sample = generation_sample(_batch(), 0, [40, 41])
    assert sample.input_ids.tolist() == [[1, 2, 3, 4, 40, 41]]
    assert sample.attention_mask.tolist() == [[1] * 6]
    assert sample.mm_token_type_ids.tolist() == [[0, 2, 2, 0, 0, 0]]
    # after the largest position so far (5 on every axis, 4 on the height axis' vision token) come 6, 7 on all axes
    assert sample.position_ids[:, 0].tolist() == [[0, 1, 1, 5, 6, 7], [0, 1, 4, 5, 6, 7], [0, 1, 1, 5, 6, 7]]
    assert sample.labels is None


def test_generation_sample_without_prefill_drops_padding() -> None:
    sample = generation_sample(_batch(), 1, [])
    assert sample.input_ids.tolist() == [[1, 2, 7]]
    assert sample.position_ids.shape == (3, 1, 3)
