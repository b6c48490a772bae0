"""Explicit key-template maps between the official UniPixel state dict and ``LitUniPixel``'s (MODEL.md §9.2).

The official files hold transformers 4.53's *legacy* Qwen2.5-VL names (``model.*`` = language model, ``visual.*``
= vision tower, ``lm_head.weight`` only when untied) and UniPixel's modules at top level (``sam2.*`` with
``fuser.layers.{i}.weight`` for upstream ``gamma``, ``seg_head.*``, ``ref_*``, ``tem_*``, ``msk_proj.*``).

In a template ``{}`` stands for one numeric path segment (a layer index) and a trailing ``{*}`` for any remainder;
exact templates win over ``{*}`` ones. Every key either matches exactly one template or is reported, by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

_LLM = "backbone.model.model.language_model"
_VIT = "backbone.model.model.visual"
_HEADS = "prompt_encoder"

OFFICIAL_TO_OURS: dict[str, str] = {
    # Qwen2.5 language model (legacy `model.*` names).
    "model.embed_tokens.weight": f"{_LLM}.embed_tokens.weight",
    "model.layers.{}.self_attn.q_proj.weight": f"{_LLM}.layers.{{}}.self_attn.q_proj.weight",
    "model.layers.{}.self_attn.q_proj.bias": f"{_LLM}.layers.{{}}.self_attn.q_proj.bias",
    "model.layers.{}.self_attn.k_proj.weight": f"{_LLM}.layers.{{}}.self_attn.k_proj.weight",
    "model.layers.{}.self_attn.k_proj.bias": f"{_LLM}.layers.{{}}.self_attn.k_proj.bias",
    "model.layers.{}.self_attn.v_proj.weight": f"{_LLM}.layers.{{}}.self_attn.v_proj.weight",
    "model.layers.{}.self_attn.v_proj.bias": f"{_LLM}.layers.{{}}.self_attn.v_proj.bias",
    "model.layers.{}.self_attn.o_proj.weight": f"{_LLM}.layers.{{}}.self_attn.o_proj.weight",
    "model.layers.{}.mlp.gate_proj.weight": f"{_LLM}.layers.{{}}.mlp.gate_proj.weight",
    "model.layers.{}.mlp.up_proj.weight": f"{_LLM}.layers.{{}}.mlp.up_proj.weight",
    "model.layers.{}.mlp.down_proj.weight": f"{_LLM}.layers.{{}}.mlp.down_proj.weight",
    "model.layers.{}.input_layernorm.weight": f"{_LLM}.layers.{{}}.input_layernorm.weight",
    "model.layers.{}.post_attention_layernorm.weight": f"{_LLM}.layers.{{}}.post_attention_layernorm.weight",
    "model.norm.weight": f"{_LLM}.norm.weight",
    "lm_head.weight": "backbone.model.lm_head.weight",
    # Qwen2.5-VL vision tower (legacy `visual.*` names).
    "visual.patch_embed.proj.weight": f"{_VIT}.patch_embed.proj.weight",
    "visual.blocks.{}.norm1.weight": f"{_VIT}.blocks.{{}}.norm1.weight",
    "visual.blocks.{}.norm2.weight": f"{_VIT}.blocks.{{}}.norm2.weight",
    "visual.blocks.{}.attn.qkv.weight": f"{_VIT}.blocks.{{}}.attn.qkv.weight",
    "visual.blocks.{}.attn.qkv.bias": f"{_VIT}.blocks.{{}}.attn.qkv.bias",
    "visual.blocks.{}.attn.proj.weight": f"{_VIT}.blocks.{{}}.attn.proj.weight",
    "visual.blocks.{}.attn.proj.bias": f"{_VIT}.blocks.{{}}.attn.proj.bias",
    "visual.blocks.{}.mlp.gate_proj.weight": f"{_VIT}.blocks.{{}}.mlp.gate_proj.weight",
    "visual.blocks.{}.mlp.gate_proj.bias": f"{_VIT}.blocks.{{}}.mlp.gate_proj.bias",
    "visual.blocks.{}.mlp.up_proj.weight": f"{_VIT}.blocks.{{}}.mlp.up_proj.weight",
    "visual.blocks.{}.mlp.up_proj.bias": f"{_VIT}.blocks.{{}}.mlp.up_proj.bias",
    "visual.blocks.{}.mlp.down_proj.weight": f"{_VIT}.blocks.{{}}.mlp.down_proj.weight",
    "visual.blocks.{}.mlp.down_proj.bias": f"{_VIT}.blocks.{{}}.mlp.down_proj.bias",
    "visual.merger.ln_q.weight": f"{_VIT}.merger.ln_q.weight",
    "visual.merger.mlp.{}.weight": f"{_VIT}.merger.mlp.{{}}.weight",
    "visual.merger.mlp.{}.bias": f"{_VIT}.merger.mlp.{{}}.bias",
    # Pointer head.
    "seg_head.{}.weight": "pointer_head.seg_head.{}.weight",
    "seg_head.{}.bias": "pointer_head.seg_head.{}.bias",
    # Prompt encoder: <|ref|> (its own SAM 2 prompt encoder and Fourier buffers) and <|mem|>.
    "ref_encoder.point_embeddings.{}.weight": f"{_HEADS}.ref_encoder.point_embeddings.{{}}.weight",
    "ref_encoder.not_a_point_embed.weight": f"{_HEADS}.ref_encoder.not_a_point_embed.weight",
    "ref_encoder.no_mask_embed.weight": f"{_HEADS}.ref_encoder.no_mask_embed.weight",
    "ref_encoder.mask_downscaling.{}.weight": f"{_HEADS}.ref_encoder.mask_downscaling.{{}}.weight",
    "ref_encoder.mask_downscaling.{}.bias": f"{_HEADS}.ref_encoder.mask_downscaling.{{}}.bias",
    "ref_encoder.pe_layer.positional_encoding_gaussian_matrix": (
        f"{_HEADS}.ref_encoder.pe_layer.positional_encoding_gaussian_matrix"
    ),
    "ref_proj_single.weight": f"{_HEADS}.ref_proj_single.weight",
    "ref_proj_single.bias": f"{_HEADS}.ref_proj_single.bias",
    "ref_proj_double.weight": f"{_HEADS}.ref_proj_double.weight",
    "ref_proj_double.bias": f"{_HEADS}.ref_proj_double.bias",
    "ref_proj.{}.weight": f"{_HEADS}.ref_proj.{{}}.weight",
    "ref_proj.{}.bias": f"{_HEADS}.ref_proj.{{}}.bias",
    "tem_pe.positional_encoding_gaussian_matrix": f"{_HEADS}.tem_pe.positional_encoding_gaussian_matrix",
    "tem_emb.weight": f"{_HEADS}.tem_emb.weight",
    "tem_proj.weight": f"{_HEADS}.tem_proj.weight",
    "tem_proj.bias": f"{_HEADS}.tem_proj.bias",
    "msk_proj.{}.weight": f"{_HEADS}.msk_proj.{{}}.weight",
    "msk_proj.{}.bias": f"{_HEADS}.msk_proj.{{}}.bias",
    # SAM 2.1: upstream module names, except the reference's `gamma -> weight` rename of the fuser's layer scale.
    "sam2.memory_encoder.fuser.layers.{}.weight": "mask_decoder.sam2.memory_encoder.fuser.layers.{}.gamma",
    "sam2.{*}": "mask_decoder.sam2.{*}",
}
"""Official key template -> ``LitUniPixel.state_dict()`` key template."""

OURS_TO_OFFICIAL: dict[str, str] = {ours: official for official, ours in OFFICIAL_TO_OURS.items()}
"""``LitUniPixel.state_dict()`` key template -> official key template (the inverse of :data:`OFFICIAL_TO_OURS`)."""

OFFICIAL_LM_HEAD = "lm_head.weight"
OURS_LM_HEAD = OFFICIAL_TO_OURS[OFFICIAL_LM_HEAD]
OURS_EMBED_TOKENS = OFFICIAL_TO_OURS["model.embed_tokens.weight"]

MAX_NAMED = 40
"""Keys named in one error message before the rest are only counted."""

_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


def map_key(key: str, templates: Mapping[str, str]) -> str | None:
    """Translate one key with a template map; None when no template matches.

    A ``{*}`` template never produces a key that an exact template owns (e.g. an upstream ``gamma`` in an
    official file is refused, not passed through), so each target key has exactly one source spelling.
    """
    indices = _INDEX.findall(key)
    template = _INDEX.sub(".{}", key)
    if template in templates:
        return templates[template].format(*indices)
    exact_targets = {target for source, target in templates.items() if not source.endswith("{*}")}
    for source, target in templates.items():
        if source.endswith("{*}") and key.startswith(source[:-3]):
            mapped = target[:-3] + key[len(source) - 3 :]
            return None if _INDEX.sub(".{}", mapped) in exact_targets else mapped
    return None


def rename_keys(state: Mapping[str, Tensor], templates: Mapping[str, str], source: str) -> dict[str, Tensor]:
    """Rename every key of ``state`` with ``templates``; tensors are passed through untouched.

    Raises:
        KeyError: some keys match no template (all of them named, with the ``source`` description).
    """
    renamed, unknown = {}, []
    for key, value in state.items():
        target = map_key(key, templates)
        if target is None:
            unknown.append(key)
        else:
            renamed[target] = value
    if unknown:
        raise KeyError(f"{source}: {len(unknown)} unknown key(s) with no mapping: {_names(unknown)}")
    return renamed


def check_state_dict(state: Mapping[str, Tensor], expected: Mapping[str, torch.Size], what: str) -> None:
    """Check that ``state`` has exactly the keys and shapes of ``expected``.

    Raises:
        KeyError: missing or unexpected keys (named).
        ValueError: keys whose shapes differ (named, with both shapes).
    """
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise KeyError(
            f"{what} does not fit the model: missing {len(missing)} key(s) {_names(missing)}, unexpected "
            f"{len(unexpected)} key(s) {_names(unexpected)}"
        )
    wrong = [
        f"{key}: {tuple(state[key].shape)} vs model {tuple(shape)}"
        for key, shape in expected.items()
        if tuple(state[key].shape) != tuple(shape)
    ]
    if wrong:
        raise ValueError(f"{what} has tensors of the wrong shape for this config: {_names(wrong)}")


def _names(keys: list[str], shown: int = MAX_NAMED) -> str:
    """The sorted key list, cut after ``shown`` entries (a wrong architecture would list hundreds)."""
    keys = sorted(keys)
    if len(keys) <= shown:
        return str(keys)
    return f"{keys[:shown]} and {len(keys) - shown} more"
