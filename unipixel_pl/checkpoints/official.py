"""Official UniPixel checkpoint directories (``PolyU-ChenLab/UniPixel-3B/7B`` layout, MODEL.md §9) <-> our model.

Loading reads ``config.json`` (plus the SAM 2 YAML in ``configs/`` when the checkpoint ships one), the safetensors
weights and the tokenizer, renames every key with :data:`~unipixel_pl.checkpoints.key_map.OFFICIAL_TO_OURS` (an
unknown, missing or mis-shaped key raises with its name) and loads them, random-Fourier buffers included: they
are never re-drawn. Saving is the exact inverse; official -> ours -> official reproduces every tensor bit for bit.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from unipixel_pl.checkpoints.hf_config import config_to_official, load_official_config, read_config_json
from unipixel_pl.checkpoints.key_map import (
    OFFICIAL_LM_HEAD,
    OFFICIAL_TO_OURS,
    OURS_TO_OFFICIAL,
    check_state_dict,
    rename_keys,
)
from unipixel_pl.checkpoints.materialize import build_model, expected_shapes, model_state
from unipixel_pl.checkpoints.processor_files import write_processor_files
from unipixel_pl.checkpoints.safetensors_io import read_weights, write_weights
from unipixel_pl.checkpoints.sam2_yaml import CUSTOM_NAME, write_sam2_yaml
from unipixel_pl.checkpoints.tokens import token_ids_from_tokenizer
from unipixel_pl.config import UniPixelConfig
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import load_tokenizer


def read_official(
    checkpoint_dir: str | Path, reference: bool = True
) -> tuple[UniPixelConfig, dict[str, Tensor], PreTrainedTokenizerFast]:
    """Config, weights (our key names, stored dtypes) and tokenizer of an official checkpoint directory.

    Args:
        checkpoint_dir: directory with ``config.json``, safetensors weights and tokenizer files.
        reference: set the quirk switches to the reference behaviour (see ``apply_reference_switches``).

    Raises:
        FileNotFoundError, ValueError, KeyError: not a UniPixel checkpoint, or keys/shapes that do not fit.
    """
    path = Path(checkpoint_dir)
    read_config_json(path)  # first: a directory that is no UniPixel checkpoint is named as such
    tokenizer = load_tokenizer(path)
    config = load_official_config(path, token_ids_from_tokenizer(tokenizer), reference)
    state = official_to_ours(read_weights(path), config)
    return config, state, tokenizer


def official_to_ours(official: dict[str, Tensor], config: UniPixelConfig) -> dict[str, Tensor]:
    """Rename an official state dict to our keys and check it against ``config`` (tensors untouched).

    Raises:
        KeyError: unknown keys, missing keys (a missing Fourier buffer included), or an ``lm_head.weight`` in a
            checkpoint whose config ties it.
        ValueError: mis-shaped tensors.
    """
    if config.backbone.tie_word_embeddings and OFFICIAL_LM_HEAD in official:
        raise KeyError(
            f"the checkpoint has {OFFICIAL_LM_HEAD!r} but its config ties it to the token embeddings; set "
            "tie_word_embeddings to false in config.json (text_config) or drop the tensor"
        )
    state = rename_keys(official, OFFICIAL_TO_OURS, "official checkpoint")
    check_state_dict(state, expected_shapes(config), "official checkpoint")
    return state


def ours_to_official(state: dict[str, Tensor], config: UniPixelConfig) -> dict[str, Tensor]:
    """Rename our state dict (no tied ``lm_head``) to official keys, after checking it against ``config``."""
    check_state_dict(state, expected_shapes(config), "model state")
    return rename_keys(state, OURS_TO_OFFICIAL, "model state")


def load_official(
    checkpoint_dir: str | Path, reference: bool = True, dtype: torch.dtype | None = torch.float32
) -> tuple[LitUniPixel, UniPixelProcessor]:
    """Load an official UniPixel checkpoint directory as our model and processor.

    Args:
        checkpoint_dir: the checkpoint directory.
        reference: reproduce the official numerics (MODEL.md §11 switches); needed for the published weights.
        dtype: parameter dtype; float32 (default) is lossless for bf16 checkpoints, None keeps the stored dtype.

    Returns:
        The model in eval mode and a processor with the checkpoint's tokenizer and token ids.
    """
    config, state, tokenizer = read_official(checkpoint_dir, reference)
    model = build_model(config, state, dtype).eval()
    return model, UniPixelProcessor.from_config(tokenizer, config.backbone)


def save_official(
    model: LitUniPixel,
    tokenizer: PreTrainedTokenizerFast,
    out_dir: str | Path,
    dtype: torch.dtype | None = torch.bfloat16,
    max_shard_size: int | str = "5GB",
) -> None:
    """Write ``model`` as an official checkpoint directory (bf16 safetensors by default, like the published ones)."""
    write_official(model.config, model_state(model, dtype), tokenizer, out_dir, max_shard_size)


def write_official(
    config: UniPixelConfig,
    state: dict[str, Tensor],
    tokenizer: PreTrainedTokenizerFast,
    out_dir: str | Path,
    max_shard_size: int | str = "5GB",
) -> None:
    """Write an official checkpoint directory from our config and state dict (our keys, dtypes as given).

    Files: the weights, ``config.json``, ``generation_config.json``, the SAM 2 YAML under ``configs/`` for a
    non-B+ architecture, the tokenizer and the Qwen2.5-VL processor configs.
    """
    path = Path(out_dir)
    write_weights(ours_to_official(state, config), path, max_shard_size)
    official = config_to_official(config) | {"torch_dtype": _dtype_name(state)}
    if official["sam2_config"] == CUSTOM_NAME:
        write_sam2_yaml(config.mask_decoder, path, CUSTOM_NAME)
    (path / "config.json").write_text(json.dumps(official, indent=2, sort_keys=True) + "\n")
    (path / "generation_config.json").write_text(
        json.dumps(_generation_config(config), indent=2, sort_keys=True) + "\n"
    )
    tokenizer.save_pretrained(str(path))
    write_processor_files(config.backbone, path)


def _dtype_name(state: dict[str, Tensor]) -> str:
    """The dtype of most floating-point weights, as ``config.json`` names it (``bfloat16`` for published ones)."""
    counts = Counter(value.dtype for value in state.values() if value.is_floating_point())
    return str(counts.most_common(1)[0][0]).removeprefix("torch.") if counts else "float32"


def _generation_config(config: UniPixelConfig) -> dict[str, object]:
    """Greedy decoding (what UniPixel's evaluation forces), ending at ``<|im_end|>`` or ``<|endoftext|>``."""
    tokens = config.backbone.tokens
    return {
        "bos_token_id": tokens.endoftext,
        "eos_token_id": [tokens.im_end, tokens.endoftext],
        "pad_token_id": tokens.endoftext,
        "do_sample": False,
    }
