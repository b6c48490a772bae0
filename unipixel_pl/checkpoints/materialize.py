"""Build a ``LitUniPixel`` from a complete state dict without initialising the backbone first.

The backbone (3-7B parameters) is built on the meta device and receives the loaded tensors directly
(``load_state_dict(assign=True)``): it is never randomly initialised and never copied beyond the dtype cast. The
small parts (SAM 2, prompt encoder, pointer head) are built normally, then take the loaded tensors the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unipixel_pl.checkpoints.key_map import OURS_EMBED_TOKENS, OURS_LM_HEAD, check_state_dict
from unipixel_pl.checkpoints.safetensors_io import cast_floating
from unipixel_pl.config import UniPixelConfig
from unipixel_pl.models.lit_unipixel import LitUniPixel


def expected_shapes(config: UniPixelConfig) -> dict[str, torch.Size]:
    """Key -> shape of every tensor a checkpoint of ``config`` stores (our names; a tied ``lm_head`` left out)."""
    with torch.device("meta"):
        model = LitUniPixel(config)
        model.configure_model()
    return {key: value.shape for key, value in model_state(model).items()}


def model_state(model: LitUniPixel, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """The tensors to save: ``state_dict()`` without the tied ``lm_head`` alias, floats cast to ``dtype``."""
    state = {key: value.detach() for key, value in model.state_dict().items()}
    if model.config.backbone.tie_word_embeddings:
        state.pop(OURS_LM_HEAD, None)
    return cast_floating(state, dtype)


def build_model(
    config: UniPixelConfig, state: dict[str, Tensor], dtype: torch.dtype | None = torch.float32
) -> LitUniPixel:
    """A model of ``config`` holding exactly the tensors of ``state`` (our key names).

    Args:
        config: the model config.
        state: every tensor of :func:`expected_shapes` (a tied ``lm_head`` is re-tied, never read).
        dtype: floating dtype of the parameters and buffers (None keeps the stored dtypes).

    Raises:
        KeyError, ValueError: ``state`` lacks keys, has extra keys or wrong shapes (all named).
    """
    check_state_dict(state, expected_shapes(config), "checkpoint")
    model = LitUniPixel(config)
    parts: dict[str, dict[str, Tensor]] = {}
    for key, value in cast_floating(state, dtype).items():
        part, _, local = key.partition(".")
        parts.setdefault(part, {})[local] = value
    attach_backbone(model, parts.pop("backbone"))
    for part, part_state in parts.items():
        model.get_submodule(part).load_state_dict(part_state, strict=True, assign=True)
    return model


def attach_backbone(model: LitUniPixel, state: dict[str, Tensor]) -> None:
    """Build ``model``'s backbone on the meta device and give it ``state`` (keys relative to ``model.backbone``).

    A tied ``lm_head`` is not read: it is re-tied to the loaded token embeddings. The rotary frequencies (never
    stored) are recomputed.
    """
    with torch.device("meta"):
        model.backbone.configure_model()
    tied = model.config.backbone.tie_word_embeddings
    local_head, local_embed = (key.removeprefix("backbone.") for key in (OURS_LM_HEAD, OURS_EMBED_TOKENS))
    full = {**state, local_head: state[local_embed]} if tied else state
    model.backbone.load_state_dict(full, strict=True, assign=True)
    _materialise_meta_buffers(model.backbone)
    model.backbone.reset_rope_buffers()
    hf = model.backbone.hf_model
    if tied:
        hf.lm_head.weight = hf.model.language_model.embed_tokens.weight


def _materialise_meta_buffers(module: nn.Module) -> None:
    """Give buffers never stored in a checkpoint (rotary frequencies) real, yet unset, CPU memory."""
    for submodule in module.modules():
        for name, buffer in list(submodule.named_buffers(recurse=False)):
            if buffer.is_meta:
                setattr(submodule, name, torch.empty_like(buffer, device="cpu"))
