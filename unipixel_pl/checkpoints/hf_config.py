"""Official UniPixel ``config.json`` (``model_type: pixel_qwen2_5_vl``) <-> :class:`UniPixelConfig`.

transformers 4.53 writes the text fields both at top level and in a nested ``text_config``, plus a
``vision_config`` (MODEL.md §2, §9.1; TRANSFORMERS5.md §3). We read the nested values first, and the tie flag from
``text_config`` first (an absent top-level ``tie_word_embeddings`` means the 4.53 default, true). The UniPixel
fields (``sam2_*``, token ids, ``sample_objects``) are read too; path-valued fields are informational and ignored,
``sam2_inference_mode`` is a runtime choice.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from unipixel_pl.checkpoints.sam2_yaml import B_PLUS_NAME, CUSTOM_NAME, is_b_plus, mask_decoder_config_for
from unipixel_pl.config import BackboneConfig, LossConfig, MaskDecoderConfig, TokenIds, UniPixelConfig, VisionConfig

MODEL_TYPE = "pixel_qwen2_5_vl"
ARCHITECTURE = "PixelQwen2_5_VLForConditionalGeneration"

_VISION_FIELDS = (
    "depth",
    "hidden_size",
    "num_heads",
    "intermediate_size",
    "patch_size",
    "temporal_patch_size",
    "spatial_merge_size",
    "window_size",
    "fullatt_block_indexes",
    "tokens_per_second",
)
_TEXT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "rms_norm_eps",
    "max_position_embeddings",
)


def read_config_json(checkpoint_dir: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of an official checkpoint directory.

    Raises:
        FileNotFoundError: no ``config.json``.
        ValueError: its ``model_type`` is not ``pixel_qwen2_5_vl`` (not a UniPixel checkpoint).
    """
    path = Path(checkpoint_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(checkpoint_dir)!r} is not a UniPixel checkpoint directory: no config.json")
    data = json.loads(path.read_text())
    if data.get("model_type") != MODEL_TYPE:
        raise ValueError(
            f"{str(path)!r} has model_type {data.get('model_type')!r}, not {MODEL_TYPE!r}: not an official UniPixel "
            "checkpoint (for a Qwen2.5-VL base model use `unipixel convert qwen-sam2`)"
        )
    return data


def official_to_config(
    data: dict[str, Any], mask_decoder: MaskDecoderConfig, tokens: TokenIds, reference: bool = True
) -> UniPixelConfig:
    """Build our config from an official ``config.json``.

    Args:
        data: the parsed ``config.json``.
        mask_decoder: SAM 2 sizes (see :func:`mask_decoder_config_for`).
        tokens: special token ids read from the checkpoint's tokenizer (``config.json`` lacks ``<|im_start|>``);
            checked against the ids ``config.json`` does name.
        reference: set every quirk switch to the reference behaviour (MODEL.md §11), needed for the published
            weights' outputs; False keeps the corrected defaults.

    Raises:
        ValueError: no SAM 2 (``sam2_config`` null), the unsupported batch mode, or token ids that disagree.
    """
    check_supported(data)
    check_config_token_ids(data, tokens)
    mask_decoder = dataclasses.replace(mask_decoder, prompt_tokens=int(data.get("sam2_hidden_tokens", 2)))
    config = UniPixelConfig(
        backbone=backbone_from_hf(data, tokens),
        mask_decoder=mask_decoder,
        loss=LossConfig(sample_objects=int(data.get("sample_objects", -1))),
        temporal_features=mask_decoder.hidden_dim // 2,
    )
    return apply_reference_switches(config) if reference else config


def check_supported(data: dict[str, Any]) -> None:
    """Raise a ``ValueError`` for UniPixel settings unipixel-pl cannot build (no SAM 2, SAM 2 batch mode)."""
    if not data.get("sam2_config"):
        raise ValueError("config.json has no sam2_config: a UniPixel checkpoint without SAM 2 cannot be loaded")
    if data.get("sam2_batch_mode"):
        raise ValueError("config.json sets sam2_batch_mode: true (frames as independent images); not supported")


def apply_reference_switches(config: UniPixelConfig) -> UniPixelConfig:
    """A copy of ``config`` with every quirk switch set as the official implementation behaves (MODEL.md §11)."""
    return dataclasses.replace(
        config,
        mem_pooling="reference",
        backbone=dataclasses.replace(config.backbone, rope_index="reference"),
        mask_decoder=dataclasses.replace(config.mask_decoder, rope_grad=False, mask_no_object_in_training=False),
        loss=dataclasses.replace(config.loss, global_object_count=True, lm_reduction="sample"),
    )


def load_official_config(checkpoint_dir: str | Path, tokens: TokenIds, reference: bool = True) -> UniPixelConfig:
    """:func:`official_to_config` of a checkpoint directory, SAM 2 sizes resolved from its ``configs/``."""
    data = read_config_json(checkpoint_dir)
    check_supported(data)
    image_size = int(data.get("sam2_image_size", 1024))
    mask_decoder = mask_decoder_config_for(Path(checkpoint_dir), str(data["sam2_config"]), image_size)
    return official_to_config(data, mask_decoder, tokens, reference)


def config_to_official(config: UniPixelConfig) -> dict[str, Any]:
    """The official ``config.json`` of ``config`` (4.53 layout, MODEL.md §2, §9.1).

    The SAM 2 config name is ``configs/sam2.1_hiera_b+`` for a B+ architecture; any other architecture is named
    ``configs/sam2.1_hiera_unipixel`` and its YAML must be written next to the file
    (:func:`unipixel_pl.checkpoints.sam2_yaml.write_sam2_yaml`).

    Raises:
        ValueError: ``config`` decodes a single mask (``mask_decoder.multimask_output`` false).
    """
    if not config.mask_decoder.multimask_output:
        raise ValueError(
            "the official format always decodes 3 candidate masks; a model trained with "
            "mask_decoder.multimask_output=false can only be saved in our format (unipixel convert ckpt-to-ours)"
        )
    backbone, tokens = config.backbone, config.backbone.tokens
    text = _text_section(backbone)
    return {
        "architectures": [ARCHITECTURE],
        "model_type": MODEL_TYPE,
        **{k: v for k, v in text.items() if k not in ("model_type", "tie_word_embeddings")},
        "tie_word_embeddings": backbone.tie_word_embeddings,
        "image_token_id": tokens.image,
        "video_token_id": tokens.video,
        "vision_start_token_id": tokens.vision_start,
        "vision_end_token_id": tokens.vision_end,
        "text_config": text,
        "vision_config": _vision_section(backbone),
        **_unipixel_fields(config),
        "torch_dtype": "bfloat16",
    }


def sam2_config_name(config: MaskDecoderConfig) -> str:
    """``configs/sam2.1_hiera_b+`` for the B+ architecture, else :data:`CUSTOM_NAME`."""
    return B_PLUS_NAME if is_b_plus(config) else CUSTOM_NAME


def _text(data: dict[str, Any], name: str) -> Any:
    text = data.get("text_config") or {}
    if name in text and text[name] is not None:
        return text[name]
    if name not in data:
        raise KeyError(f"config.json has no {name!r} (neither in text_config nor at top level)")
    return data[name]


def _text_or_none(data: dict[str, Any], name: str) -> Any:
    try:
        return _text(data, name)
    except KeyError:
        return None


def _tie_word_embeddings(data: dict[str, Any]) -> bool:
    text = data.get("text_config") or {}
    if text.get("tie_word_embeddings") is not None:
        return bool(text["tie_word_embeddings"])
    return bool(data.get("tie_word_embeddings", True))


def backbone_from_hf(data: dict[str, Any], tokens: TokenIds) -> BackboneConfig:
    """The backbone of a Qwen2.5-VL / UniPixel ``config.json`` (nested values first, then top level).

    Both layouts are read: transformers 4.x (``rope_scaling``, ``rope_theta``) and 5.x (``rope_parameters``).
    Vision fields a file leaves out take the Qwen2.5-VL values (:class:`VisionConfig` defaults).

    Raises:
        KeyError: a required field is absent.
        ValueError: the vision tower's output width differs from the LLM width.
    """
    vision = data["vision_config"]
    if vision.get("out_hidden_size", _text(data, "hidden_size")) != _text(data, "hidden_size"):
        raise ValueError("vision_config.out_hidden_size differs from the LLM hidden_size; not a Qwen2.5-VL layout")
    rope_theta, mrope_section = _rope(data)
    return BackboneConfig(
        **{name: _text(data, name) for name in _TEXT_FIELDS},
        rope_theta=rope_theta,
        mrope_section=mrope_section,
        tie_word_embeddings=_tie_word_embeddings(data),
        vision=VisionConfig(**{name: vision[name] for name in _VISION_FIELDS if name in vision}),
        tokens=tokens,
    )


def _rope(data: dict[str, Any]) -> tuple[float, list[int]]:
    """``(rope_theta, mrope_section)`` from ``rope_scaling`` + ``rope_theta`` (4.x) or ``rope_parameters`` (5.x)."""
    for name in ("rope_scaling", "rope_parameters"):
        rope = _text_or_none(data, name) or {}
        if "mrope_section" in rope:
            theta = rope.get("rope_theta", _text_or_none(data, "rope_theta"))
            if theta is None:
                raise KeyError("config.json has no rope_theta (neither top level, text_config nor rope_parameters)")
            return float(theta), list(rope["mrope_section"])
    raise KeyError("config.json has no rope_scaling/rope_parameters.mrope_section; Qwen2.5-VL checkpoints set it")


def check_config_token_ids(data: dict[str, Any], tokens: TokenIds) -> None:
    """Raise a ``ValueError`` listing every id ``config.json`` names differently from the tokenizer's ``tokens``."""
    named = {
        "bos_token_id": tokens.endoftext,
        "eos_token_id": tokens.im_end,
        "image_token_id": tokens.image,
        "video_token_id": tokens.video,
        "vision_start_token_id": tokens.vision_start,
        "vision_end_token_id": tokens.vision_end,
        "ref_token_id": tokens.ref,
        "seg_token_id": tokens.seg,
        "mem_token_id": tokens.mem,
    }
    wrong = [
        f"{key}={data[key]} (tokenizer: {value})" for key, value in named.items() if key in data and data[key] != value
    ]
    if wrong:
        raise ValueError(
            f"config.json and the tokenizer disagree on token ids: {wrong}; they must come from one checkpoint"
        )


def _text_section(backbone: BackboneConfig) -> dict[str, Any]:
    tokens = backbone.tokens
    rope = {"mrope_section": list(backbone.mrope_section), "rope_type": "default", "type": "default"}
    return {
        "architectures": [ARCHITECTURE],
        "model_type": "qwen2_5_vl_text",
        **{name: getattr(backbone, name) for name in _TEXT_FIELDS},
        "rope_theta": backbone.rope_theta,
        "rope_scaling": rope,
        "tie_word_embeddings": backbone.tie_word_embeddings,
        "hidden_act": "silu",
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "max_window_layers": backbone.num_hidden_layers,
        "use_sliding_window": False,
        "sliding_window": None,
        "use_cache": True,
        "bos_token_id": tokens.endoftext,
        "eos_token_id": tokens.im_end,
        "pad_token_id": tokens.endoftext,
        "vision_start_token_id": tokens.vision_start,
        "vision_end_token_id": tokens.vision_end,
        "torch_dtype": "bfloat16",
    }


def _vision_section(backbone: BackboneConfig) -> dict[str, Any]:
    vision = {name: getattr(backbone.vision, name) for name in _VISION_FIELDS}
    vision["fullatt_block_indexes"] = list(vision["fullatt_block_indexes"])
    extra = {"hidden_act": "silu", "in_channels": 3, "in_chans": 3, "initializer_range": 0.02}
    return {**vision, **extra, "model_type": "qwen2_5_vl", "out_hidden_size": backbone.hidden_size}


def _unipixel_fields(config: UniPixelConfig) -> dict[str, Any]:
    tokens = config.backbone.tokens
    return {
        "base_model": "qwen2_5_vl",
        "conv_type": "chatml",
        "model_name_or_path": None,
        "base_model_path": None,
        "partial_checkpoint": None,
        "sam2_config": sam2_config_name(config.mask_decoder),
        "sam2_checkpoint": None,
        "sam2_image_size": config.mask_decoder.image_size,
        "sam2_hidden_tokens": config.mask_decoder.prompt_tokens,
        "sam2_batch_mode": False,
        "sam2_apply_postprocessing": False,
        "sam2_enable_decoder": True,
        "sam2_inference_mode": False,
        "sample_objects": config.loss.sample_objects,
        "ref_token_id": tokens.ref,
        "seg_token_id": tokens.seg,
        "mem_token_id": tokens.mem,
    }
