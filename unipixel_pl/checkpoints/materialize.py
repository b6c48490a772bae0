"""Build a ``LitUniPixel`` from a complete state dict without initialising the backbone first.

The backbone (3-7B parameters) is built on the meta device and receives the loaded tensors directly
(``load_state_dict(assign=True)``), so loading a checkpoint needs one copy of the weights in memory and no random
initialisation. The small parts (SAM 2, prompt encoder, pointer head) are built normally and overwritten.
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


def build_model(config: UniPixelConfig, state: dict[str, Tensor], dtype: torch.dtype | None = torch.float32) -> LitUniPixel:
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
    with torch.device("meta"):
        model.backbone.configure_model()
    model.load_state_dict(_with_tied_head(config, cast_floating(state, dtype)), strict=True, assign=True)
    _materialise_meta_buffers(model)
    model.backbone.reset_rope_buffers()
    hf = model.backbone.hf_model
    if config.backbone.tie_word_embeddings:
        hf.lm_head.weight = hf.model.language_model.embed_tokens.weight
    return model


def _with_tied_head(config: UniPixelConfig, state: dict[str, Tensor]) -> dict[str, Tensor]:
    if not config.backbone.tie_word_embeddings:
        return state
    return {**state, OURS_LM_HEAD: state[OURS_EMBED_TOKENS]}


def _materialise_meta_buffers(module: nn.Module) -> None:
    """Give buffers never stored in a checkpoint (rotary frequencies) real, yet unset, CPU memory."""
    for submodule in module.modules():
        for name, buffer in list(submodule.named_buffers(recurse=False)):
            if buffer.is_meta:
                setattr(submodule, name, torch.empty_like(buffer, device="cpu"))
