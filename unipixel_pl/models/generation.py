"""Greedy decoding with masks: one mask per ``<|seg|>`` in the prompt and per ``<|seg|>`` generated.

A generated ``<|seg|>`` takes the hidden state that predicted it (the last position of the step that emitted it),
exactly as teacher forcing pairs a ``<|seg|>`` with the state before it (``reference/MODEL.md`` §4.5, §7.2). Under
greedy decoding the emitted token is the raw-logit argmax, so the reference's trigger and ours coincide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from unipixel_pl.types import UniPixelBatch, UniPixelOutput

if TYPE_CHECKING:
    from unipixel_pl.models.backbone import BackboneOutput
    from unipixel_pl.models.lit_unipixel import LitUniPixel


def single_sample(batch: UniPixelBatch, index: int) -> UniPixelBatch:
    """The ``index``-th sample of a batch as a batch of one, padding removed (host media kept, if any)."""
    length = int(batch.attention_mask[index].sum())
    spans: list[int] = [] if batch.video_sample_index is None else batch.video_sample_index.tolist()
    videos = [i for i, b in enumerate(spans) if b == index]
    pixel_values = grid = sample_index = None
    if videos and batch.video_grid_thw is not None:
        grid, sample_index = batch.video_grid_thw[videos], torch.zeros(len(videos), dtype=torch.long)
    if videos and batch.video_grid_thw is not None and batch.pixel_values_videos is not None:
        rows = batch.video_grid_thw.prod(dim=-1)
        starts = [0, *rows.cumsum(0).tolist()]
        pixel_values = torch.cat([batch.pixel_values_videos[starts[i] : starts[i + 1]] for i in videos])
    pick = lambda values: [values[index]] if index < len(values) else []  # noqa: E731
    return UniPixelBatch(
        input_ids=batch.input_ids[index : index + 1, :length],
        attention_mask=batch.attention_mask[index : index + 1, :length],
        position_ids=batch.position_ids[:, index : index + 1, :length],
        mm_token_type_ids=batch.mm_token_type_ids[index : index + 1, :length],
        labels=None,
        pixel_values_videos=pixel_values,
        video_grid_thw=grid,
        video_sample_index=sample_index,
        sam_frames=pick(batch.sam_frames),
        frame_sizes=pick(batch.frame_sizes),
        prompts=pick(batch.prompts),
        refer_masks=pick(batch.refer_masks),
        target_masks=pick(batch.target_masks),
        task=pick(batch.task),
        videos=[batch.videos[i] for i in videos] if batch.videos else [],
        frames=pick(batch.frames),
        frame_masks=pick(batch.frame_masks),
    )


@dataclass
class GreedyDecoding:
    """What greedy decoding of one sample produced.

    Attributes:
        token_ids: the generated ids, ``<|im_end|>`` included when reached.
        seg_states: ``(O, D)`` pre-final-norm states of every ``<|seg|>``: the prompt's (in sequence order), then
            the generated ones (the state of the step that emitted each).
        step_logits: ``(N, V)`` raw next-token logits of every step, when kept.
    """

    token_ids: list[int]
    seg_states: Tensor
    step_logits: Tensor | None = None


@torch.no_grad()
def greedy_decode(
    model: LitUniPixel, sample: UniPixelBatch, max_new_tokens: int, keep_step_logits: bool = False
) -> GreedyDecoding:
    """Greedy decoding of a batch of one with the KV cache, stopping at ``<|im_end|>`` or ``max_new_tokens``.

    Args:
        model: the model (its backbone, prompt encoder and pointer head are used; no masks are decoded).
        sample: one unpadded sample (:func:`single_sample`).
        max_new_tokens: the most tokens to generate.
        keep_step_logits: also return every step's ``(V,)`` logits (memory grows with ``N * V``).
    """
    tokens = model.config.backbone.tokens
    out = model.run_backbone(sample, use_cache=True)
    seg_states = [model.pointer_head.select_seg_states(out.hidden_states, sample.input_ids, tokens.seg)[0]]
    attention = sample.attention_mask
    next_position = sample.position_ids.max() + 1
    generated: list[int] = []
    step_logits: list[Tensor] = []
    while len(generated) < max_new_tokens:
        next_token = int(out.logits[0, -1].argmax())
        generated.append(next_token)
        if keep_step_logits:
            step_logits.append(out.logits[0, -1])
        if next_token == tokens.seg:
            seg_states.append(out.hidden_states[0, -1:])
        if next_token == tokens.im_end or len(generated) == max_new_tokens:
            break
        step = torch.tensor([[next_token]], device=attention.device)
        out, attention = decode_step(model, step, attention, next_position, out)
        next_position = next_position + 1
    logits = torch.stack(step_logits) if keep_step_logits and step_logits else None
    return GreedyDecoding(generated, torch.cat(seg_states), logits)


def decode_step(
    model: LitUniPixel, step: Tensor, attention: Tensor, position: Tensor, previous: BackboneOutput
) -> tuple[BackboneOutput, Tensor]:
    """One cached decoder step of a single sample.

    Args:
        step: ``(1, 1)`` the token just emitted.
        attention: ``(1, L)`` attention mask of everything cached so far.
        position: scalar mRoPE position of ``step`` (the same on the three axes).
        previous: the output holding the KV cache.

    Returns:
        The step's output and the ``(1, L + 1)`` attention mask.
    """
    attention = torch.cat([attention, torch.ones_like(step)], dim=1)
    out = model.backbone(
        inputs_embeds=model.backbone.embed_tokens(step),
        attention_mask=attention,
        position_ids=position.view(1, 1, 1).expand(3, 1, 1),
        mm_token_type_ids=torch.zeros_like(step),
        past_key_values=previous.past_key_values,
        use_cache=True,
    )
    return out, attention


@torch.no_grad()
def greedy_generate(model: LitUniPixel, batch: UniPixelBatch, index: int, max_new_tokens: int) -> UniPixelOutput:
    """Generate for sample ``index`` of ``batch``; returns text, token ids and ``(O, T, H, W)`` masks."""
    sample = single_sample(batch, index)
    decoded = greedy_decode(model, sample, max_new_tokens)
    masks = _decode_masks(model, sample, decoded.seg_states)
    sequence = torch.tensor([decoded.token_ids], dtype=torch.long)
    return UniPixelOutput(sequences=sequence, masks=[masks], text=[_decode_text(model, decoded.token_ids)])


def _decode_masks(model: LitUniPixel, sample: UniPixelBatch, states: Tensor) -> Tensor | None:
    """``(O, T, H, W)`` bool masks for the collected ``<|seg|>`` states, or None without frames or states."""
    frames = sample.sam_frames[0] if sample.sam_frames else None
    if frames is None or states.shape[0] == 0:
        return None
    size = sample.frame_sizes[0] if sample.frame_sizes and sample.frame_sizes[0] else tuple(frames.shape[-2:])
    return model.mask_decoder.segment(frames, model.pointer_head(states), size)


def _decode_text(model: LitUniPixel, token_ids: list[int]) -> str:
    tokenizer = getattr(model, "tokenizer", None)
    return "" if tokenizer is None else tokenizer.decode(token_ids, skip_special_tokens=False)
