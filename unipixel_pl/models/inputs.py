"""Assemble the LLM input embeddings: text, visual tokens, ``<|ref|>`` prompts and ``<|mem|>`` mask memories."""

from __future__ import annotations

import torch
from torch import Tensor

from unipixel_pl.config import TokenIds
from unipixel_pl.models.backbone import Backbone, VisionFeatures
from unipixel_pl.models.prompt_encoder import PromptEncoder
from unipixel_pl.types import UniPixelBatch


def video_token_spans(batch: UniPixelBatch, merge_size: int) -> dict[int, tuple[int, int]]:
    """Map sample index -> ``(start, end)`` rows of its merged visual tokens in the concatenated video features."""
    if batch.video_grid_thw is None or batch.video_sample_index is None:
        return {}
    counts = (batch.video_grid_thw.prod(dim=-1) // merge_size**2).tolist()
    starts = [0, *torch.tensor(counts).cumsum(0).tolist()]
    return {int(b): (starts[i], starts[i + 1]) for i, b in enumerate(batch.video_sample_index.tolist())}


def llm_frame_counts(batch: UniPixelBatch) -> dict[int, int]:
    """Map sample index -> even-padded frame count ``2 * g_t`` seen by the LLM."""
    if batch.video_grid_thw is None or batch.video_sample_index is None:
        return {}
    pairs = zip(batch.video_sample_index.tolist(), batch.video_grid_thw, strict=True)
    return {int(b): 2 * int(g[0]) for b, g in pairs}


def ref_embeddings(batch: UniPixelBatch, prompt_encoder: PromptEncoder, token_id: int) -> Tensor | None:
    """``(N_ref, D)`` encoded prompts in sequence order, or None when the batch has no ``<|ref|>``.

    Raises:
        ValueError: the number of ``<|ref|>`` tokens of a sample differs from its number of prompts.
    """
    frames = llm_frame_counts(batch)
    prompts, lengths = [], []
    for b in range(batch.batch_size):
        sample_prompts = batch.prompts[b] if b < len(batch.prompts) else []
        count = int((batch.input_ids[b] == token_id).sum())
        if count != len(sample_prompts):
            raise ValueError(f"sample {b} has {count} <|ref|> token(s) but {len(sample_prompts)} visual prompt(s)")
        if sample_prompts and b not in frames:
            raise ValueError(f"sample {b} has <|ref|> prompts but no video to place them on")
        prompts += sample_prompts
        lengths += [frames.get(b, 0)] * len(sample_prompts)
    return prompt_encoder.encode_prompts(prompts, lengths) if prompts else None


def mem_embeddings(
    batch: UniPixelBatch, vision: VisionFeatures | None, prompt_encoder: PromptEncoder, token_id: int, merge_size: int
) -> Tensor | None:
    """``(N_mem, D)`` mask-pooled memories in sequence order, or None when the batch has no ``<|mem|>``.

    Raises:
        ValueError: a sample's ``<|mem|>`` count differs from its non-empty (object, frame pair) cells.
    """
    spans = video_token_spans(batch, merge_size)
    rows = []
    for b in range(batch.batch_size):
        mask = batch.refer_masks[b] if b < len(batch.refer_masks) else None
        count = int((batch.input_ids[b] == token_id).sum())
        expected = 0 if mask is None else prompt_encoder.count_mem_tokens(mask)
        if count != expected:
            raise ValueError(f"sample {b} has {count} <|mem|> token(s) but its refer mask has {expected} cell(s)")
        if mask is None or count == 0:
            continue
        if vision is None or b not in spans:
            raise ValueError(f"sample {b} has <|mem|> tokens but no video features to pool")
        start, end = spans[b]
        local_index = vision.window_index[start:end] - start
        rows.append(prompt_encoder.encode_memory(vision.merger_inputs[start:end], local_index, mask))
    return torch.cat(rows) if rows else None


def build_inputs_embeds(
    batch: UniPixelBatch, backbone: Backbone, prompt_encoder: PromptEncoder, tokens: TokenIds
) -> Tensor:
    """``(B, L, D)`` input embeddings with every placeholder filled in."""
    embeds = backbone.embed_tokens(batch.input_ids)
    vision = None
    if batch.pixel_values_videos is not None:
        vision = backbone.encode_vision(batch.pixel_values_videos, batch.video_grid_thw)
        embeds = backbone.scatter_tokens(embeds, batch.input_ids, tokens.video, vision.embeds)
    merge = backbone.config.vision.spatial_merge_size
    for token_id, values in (
        (tokens.ref, ref_embeddings(batch, prompt_encoder, tokens.ref)),
        (tokens.mem, mem_embeddings(batch, vision, prompt_encoder, tokens.mem, merge)),
    ):
        if values is not None:
            embeds = backbone.scatter_tokens(embeds, batch.input_ids, token_id, values.to(embeds.dtype))
    return embeds
