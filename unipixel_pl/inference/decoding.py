"""Batched greedy decoding with the KV cache: several requests share every forward pass.

The batch is right-padded (``Collator``). After the prefill, sample ``b`` continues from its last real position
``n_b - 1``; each step appends one token per sample at position ``max(prompt positions) + 1 + step``, and the
attention mask hides the padding between a prompt's end and its generated tokens, so every sample sees exactly
what :func:`unipixel_pl.models.generation.greedy_decode` shows it alone. A finished sample is fed padding with
attention 0 until all are done. ``<|seg|>`` states follow the single-sample rule (MODEL.md §4.5, §7.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from unipixel_pl.models.generation import GreedyDecoding
from unipixel_pl.types import UniPixelBatch

if TYPE_CHECKING:
    from unipixel_pl.models.lit_unipixel import LitUniPixel


@torch.no_grad()
def batched_greedy_decode(model: LitUniPixel, batch: UniPixelBatch, max_new_tokens: int) -> list[GreedyDecoding]:
    """Greedy decoding of every sample of a right-padded batch, stopping each at ``<|im_end|>``.

    Args:
        model: the model (backbone, prompt encoder and pointer head are used).
        batch: collated requests (no labels needed).
        max_new_tokens: the most tokens generated per sample.

    Returns:
        Per sample its generated ids and ``(O, D)`` ``<|seg|>`` states (prompt ones first, then generated ones).
    """
    tokens = model.config.backbone.tokens
    lengths = batch.attention_mask.sum(dim=1)
    rows = torch.arange(batch.batch_size, device=lengths.device)
    out = model.run_backbone(batch, use_cache=True)
    seg_states = _prompt_seg_states(model, out.hidden_states, batch.input_ids)
    last_logits, last_states = out.logits[rows, lengths - 1], out.hidden_states[rows, lengths - 1]
    next_position = _last_positions(batch.position_ids, batch.attention_mask) + 1
    attention, cache = batch.attention_mask, out.past_key_values
    generated: list[list[int]] = [[] for _ in range(batch.batch_size)]
    active = torch.ones(batch.batch_size, dtype=torch.bool, device=lengths.device)
    for count in range(1, max_new_tokens + 1):
        next_tokens = torch.where(active, last_logits.argmax(dim=-1), tokens.endoftext)
        _record(next_tokens, active, last_states, generated, seg_states, tokens.seg)
        active = active & (next_tokens != tokens.im_end)
        if count == max_new_tokens or not bool(active.any()):
            break
        attention = torch.cat([attention, active[:, None].to(attention.dtype)], dim=1)
        out = model.backbone(
            inputs_embeds=model.backbone.embed_tokens(next_tokens[:, None]),
            attention_mask=attention,
            position_ids=next_position.view(1, -1, 1).expand(3, -1, 1),
            mm_token_type_ids=torch.zeros_like(next_tokens[:, None]),
            past_key_values=cache,
            use_cache=True,
        )
        cache, next_position = out.past_key_values, next_position + 1
        last_logits, last_states = out.logits[:, -1], out.hidden_states[:, -1]
    return [GreedyDecoding(ids, torch.cat(states)) for ids, states in zip(generated, seg_states, strict=True)]


def _prompt_seg_states(model: LitUniPixel, hidden_states: Tensor, input_ids: Tensor) -> list[list[Tensor]]:
    """Per sample a list holding the ``(O_b, D)`` states of its prompt's ``<|seg|>`` tokens."""
    states, batch_index, _ = model.pointer_head.select_seg_states(
        hidden_states, input_ids, model.config.backbone.tokens.seg
    )
    return [[states[batch_index == b]] for b in range(input_ids.shape[0])]


def _last_positions(position_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """``(B,)`` the largest rope position over the real tokens of each sample (all three axes)."""
    real = attention_mask.bool()[None].expand_as(position_ids)
    return torch.where(real, position_ids, torch.zeros_like(position_ids)).amax(dim=(0, 2))


def _record(
    next_tokens: Tensor,
    active: Tensor,
    last_states: Tensor,
    generated: list[list[int]],
    seg_states: list[list[Tensor]],
    seg_token_id: int,
) -> None:
    """Append each active sample's token; a generated ``<|seg|>`` keeps the state that predicted it."""
    for b in torch.nonzero(active).flatten().tolist():
        token = int(next_tokens[b])
        generated[b].append(token)
        if token == seg_token_id:
            seg_states[b].append(last_states[b : b + 1])
