"""A fresh UniPixel for stage 1 from a Qwen2.5-VL-Instruct directory and a SAM 2.1 ``.pt`` (MODEL.md §3, §8.1).

As the reference does at the start of every stage: the Qwen2.5-VL weights and the SAM 2.1 weights are loaded,
then the new heads are initialised (``init_parameters`` after ``load_sam2_weights``): ``ref_encoder``'s parameters
are copied from SAM 2's prompt encoder (its own Fourier matrix stays the one drawn at construction),
``msk_proj`` is copied from the vision merger MLP, every other Linear is Xavier-uniform with zero bias and
``tem_emb`` is N(0, 0.02). ``<|ref|>``/``<|seg|>``/``<|mem|>`` are added to the tokenizer; with Qwen's padded
embedding rows nothing is resized (MODEL.md §8.5). The SAM 2 file is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from unipixel_pl.checkpoints.hf_config import apply_reference_switches, backbone_from_hf, check_config_token_ids
from unipixel_pl.checkpoints.key_map import OFFICIAL_TO_OURS, OURS_LM_HEAD, check_state_dict, rename_keys
from unipixel_pl.checkpoints.materialize import attach_backbone, expected_shapes
from unipixel_pl.checkpoints.safetensors_io import read_weights
from unipixel_pl.checkpoints.tokens import add_unipixel_tokens, token_ids_from_tokenizer
from unipixel_pl.config import MaskDecoderConfig, UniPixelConfig
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import load_tokenizer

QWEN_MODEL_TYPE = "qwen2_5_vl"

_LEGACY = {source: target for source, target in OFFICIAL_TO_OURS.items() if target.startswith("backbone.")}
QWEN_TO_OURS: dict[str, str] = {
    **_LEGACY,
    # The same templates in the layout transformers >= 4.52 keeps in memory (and some exports write).
    **{
        source.replace("model.", "model.language_model.", 1).replace("visual.", "model.visual.", 1): target
        for source, target in _LEGACY.items()
        if source != "lm_head.weight"
    },
}
"""Qwen2.5-VL checkpoint key template (legacy or current transformers layout) -> our key template."""


def read_qwen_config(qwen_dir: Path) -> dict:
    """The ``config.json`` of a Qwen2.5-VL directory.

    Raises:
        FileNotFoundError, ValueError: no ``config.json``, or not ``model_type: qwen2_5_vl``.
    """
    path = qwen_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(qwen_dir)!r} is not a Qwen2.5-VL directory: no config.json")
    data = json.loads(path.read_text())
    if data.get("model_type") != QWEN_MODEL_TYPE:
        raise ValueError(
            f"{str(path)!r} has model_type {data.get('model_type')!r}, expected {QWEN_MODEL_TYPE!r} "
            "(Qwen2.5-VL-3B/7B-Instruct); an official UniPixel checkpoint converts with `official-to-ours`"
        )
    return data


def qwen_backbone_state(qwen_dir: Path, config: UniPixelConfig) -> dict[str, Tensor]:
    """The Qwen2.5-VL weights under our key names, checked against the backbone of ``config``."""
    state = rename_keys(read_weights(qwen_dir), QWEN_TO_OURS, f"Qwen2.5-VL checkpoint {str(qwen_dir)!r}")
    if config.backbone.tie_word_embeddings:
        state.pop(OURS_LM_HEAD, None)  # some exports store the tied head too; it is the embedding
    expected = {key: shape for key, shape in expected_shapes(config).items() if key.startswith("backbone.")}
    check_state_dict(state, expected, f"Qwen2.5-VL checkpoint {str(qwen_dir)!r}")
    return state


def build_from_qwen_sam2(
    qwen_dir: str | Path,
    sam2_checkpoint: str | Path,
    mask_decoder: MaskDecoderConfig | None = None,
    reference: bool = False,
    seed: int = 0,
) -> tuple[LitUniPixel, UniPixelProcessor]:
    """A stage-1 model (and processor) from Qwen2.5-VL-Instruct and SAM 2.1 weights.

    Args:
        qwen_dir: a Qwen2.5-VL-3B/7B-Instruct directory (``config.json``, safetensors, tokenizer).
        sam2_checkpoint: a SAM 2.1 ``.pt`` in Meta's format (``{"model": state_dict}``).
        mask_decoder: SAM 2 sizes; default Hiera-B+ at UniPixel's 768 px input.
        reference: set the quirk switches to the reference behaviour (MODEL.md §11) instead of the corrected ones.
        seed: seeds the random heads and the two random-Fourier matrices.

    Returns:
        The model (backbone in the checkpoint's dtype, new parts in fp32) and a processor whose tokenizer has
        UniPixel's special tokens.
    """
    path = Path(qwen_dir)
    data = read_qwen_config(path)
    tokenizer = load_tokenizer(path)
    add_unipixel_tokens(tokenizer)
    tokens = token_ids_from_tokenizer(tokenizer)
    check_config_token_ids(data, tokens)
    sam2 = mask_decoder if mask_decoder is not None else MaskDecoderConfig(image_size=768)
    config = UniPixelConfig(
        backbone=backbone_from_hf(data, tokens), mask_decoder=sam2, temporal_features=sam2.hidden_dim // 2
    )
    config = apply_reference_switches(config) if reference else config
    _check_vocabulary(len(tokenizer), config)
    torch.manual_seed(seed)
    model = LitUniPixel(config)
    attach_backbone(model, {k.removeprefix("backbone."): v for k, v in qwen_backbone_state(path, config).items()})
    try:
        model.mask_decoder.load_sam2_checkpoint(sam2_checkpoint)
    except KeyError as error:
        raise KeyError(f"{error.args[0]} (a SAM 2 of other sizes? give its hydra YAML as the config)") from error
    model.prompt_encoder.init_from_sam2(model.mask_decoder.prompt_encoder)
    model.prompt_encoder.init_from_merger(model.backbone.hf_model.model.visual.merger.mlp)
    return model.eval(), UniPixelProcessor.from_config(tokenizer, config.backbone)


def _check_vocabulary(num_tokens: int, config: UniPixelConfig) -> None:
    if num_tokens > config.backbone.vocab_size:
        raise ValueError(
            f"the tokenizer has {num_tokens} tokens but the embedding only {config.backbone.vocab_size} rows; "
            "UniPixel reuses Qwen's padded rows and never resizes (MODEL.md §8.5)"
        )
