"""Tiny checkpoints written independently of the converters under test.

The official layout is produced the way the reference's transformers 4.53 ``save_pretrained`` does it, without
our key maps: the Qwen2.5-VL part comes from transformers' own ``save_pretrained`` (legacy ``model.*`` /
``visual.*`` names, tied ``lm_head`` omitted); UniPixel's modules go to top level under their attribute names,
SAM 2's fuser ``gamma`` renamed ``weight`` (MODEL.md §9.2). ``config.json`` is written by hand in the 4.53 layout.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from torch import Tensor

from unipixel_pl.config import UniPixelConfig, preset
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.tokenizer import build_tiny_tokenizer

SAM2_NAME = "configs/sam2.1_hiera_tiny_test"
PARTS = ("prompt_encoder.", "pointer_head.", "mask_decoder.")


def tiny_config(tie: bool = True) -> UniPixelConfig:
    """The tiny preset (temporal features S/2 as in reference checkpoints), tied or untied embeddings."""
    config = preset("unipixel-tiny")
    config.backbone.tie_word_embeddings = tie
    config.temporal_features = config.mask_decoder.hidden_dim // 2
    return config


def bf16_model(config: UniPixelConfig, seed: int = 0) -> LitUniPixel:
    """A random tiny model whose stored floating tensors are all exactly representable in bf16."""
    torch.manual_seed(seed)
    model = LitUniPixel(config)
    model.configure_model()
    with torch.no_grad():
        for tensor in model.state_dict().values():  # stored tensors only: rotary frequencies stay exact
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch.bfloat16).float())
    return model.eval()


def official_state(model: LitUniPixel) -> dict[str, Tensor]:
    """The model's tensors under the official names, in bf16."""
    with tempfile.TemporaryDirectory() as scratch:
        model.backbone.hf_model.save_pretrained(scratch)
        state = load_file(str(Path(scratch) / "model.safetensors"))
    for key, value in model.state_dict().items():
        if key.startswith(PARTS):
            name = key.split(".", 1)[1]
            state[re.sub(r"(memory_encoder\.fuser\.layers\.\d+)\.gamma$", r"\1.weight", name)] = value
    return {key: value.to(torch.bfloat16) if value.is_floating_point() else value for key, value in state.items()}


def official_config_json(config: UniPixelConfig) -> dict:
    """``config.json`` as transformers 4.53 writes it for UniPixel (tie flag only in ``text_config`` when true)."""
    backbone, vision, tokens = config.backbone, config.backbone.vision, config.backbone.tokens
    text = {
        "model_type": "qwen2_5_vl_text",
        "vocab_size": backbone.vocab_size,
        "hidden_size": backbone.hidden_size,
        "intermediate_size": backbone.intermediate_size,
        "num_hidden_layers": backbone.num_hidden_layers,
        "num_attention_heads": backbone.num_attention_heads,
        "num_key_value_heads": backbone.num_key_value_heads,
        "max_position_embeddings": backbone.max_position_embeddings,
        "rms_norm_eps": backbone.rms_norm_eps,
        "rope_theta": backbone.rope_theta,
        "rope_scaling": {"mrope_section": backbone.mrope_section, "rope_type": "default", "type": "default"},
        "tie_word_embeddings": backbone.tie_word_embeddings,
        "bos_token_id": tokens.endoftext,
        "eos_token_id": tokens.im_end,
        "image_token_id": None,
        "video_token_id": None,
    }
    top = {key: value for key, value in text.items() if key not in ("model_type", "tie_word_embeddings")}
    if not backbone.tie_word_embeddings:
        top["tie_word_embeddings"] = False
    vision_config = {**dataclasses.asdict(vision), "model_type": "qwen2_5_vl", "out_hidden_size": backbone.hidden_size}
    return {
        **top,
        "architectures": ["PixelQwen2_5_VLForConditionalGeneration"],
        "model_type": "pixel_qwen2_5_vl",
        "image_token_id": tokens.image,
        "video_token_id": tokens.video,
        "vision_start_token_id": tokens.vision_start,
        "vision_end_token_id": tokens.vision_end,
        "ref_token_id": tokens.ref,
        "seg_token_id": tokens.seg,
        "mem_token_id": tokens.mem,
        "text_config": text,
        "vision_config": vision_config,
        "model_name_or_path": "/authors/machine/Qwen2.5-VL-3B-Instruct",
        "sam2_config": SAM2_NAME,
        "sam2_checkpoint": None,
        "sam2_image_size": config.mask_decoder.image_size,
        "sam2_hidden_tokens": config.mask_decoder.prompt_tokens,
        "sam2_batch_mode": False,
        "sam2_inference_mode": False,
        "sample_objects": config.loss.sample_objects,
    }


def sam2_yaml_text(config: UniPixelConfig) -> str:
    """The SAM 2 hydra config of the tiny preset, laid out like the reference's ``sam2.1_hiera_*.yaml``."""
    sam = config.mask_decoder
    attention = {"rope_theta": 10000.0, "feat_sizes": [8, 8], "embedding_dim": sam.hidden_dim, "num_heads": 1}
    attention |= {"downsample_rate": 1, "dropout": sam.dropout}
    model = {
        "_target_": "sam2.sam2_train.SAM2Train",
        "image_encoder": {
            "scalp": 1,
            "trunk": {
                "embed_dim": sam.trunk_embed_dim,
                "num_heads": sam.trunk_num_heads,
                "stages": sam.trunk_stages,
                "global_att_blocks": sam.trunk_global_att_blocks,
                "window_spec": sam.trunk_window_spec,
                "window_pos_embed_bkg_spatial_size": sam.trunk_window_pos_embed_bkg_spatial_size,
                "drop_path_rate": sam.drop_path_rate,
            },
            "neck": {"d_model": sam.hidden_dim, "backbone_channel_list": [128, 64, 32, 16]},
        },
        "memory_attention": {
            "d_model": sam.hidden_dim,
            "layer": {
                "dim_feedforward": sam.memory_attention_ffn_dim,
                "dropout": sam.dropout,
                "self_attention": attention,
                "cross_attention": {**attention, "rope_k_repeat": True, "kv_in_dim": sam.memory_dim},
            },
            "num_layers": sam.memory_attention_layers,
        },
        "memory_encoder": {"out_dim": sam.memory_dim, "in_dim": sam.hidden_dim},
        "num_maskmem": sam.num_maskmem,
        "image_size": 1024,
        "multimask_output_in_sam": True,
    }
    return "# @package _global_\n" + OmegaConf.to_yaml(OmegaConf.create({"model": model}))


def write_official_checkpoint(out_dir: Path, model: LitUniPixel) -> dict[str, Tensor]:
    """Write ``model`` as an official checkpoint directory; returns the tensors written (official names)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = official_state(model)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(official_config_json(model.config), indent=2))
    (out_dir / f"{SAM2_NAME}.yaml").parent.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{SAM2_NAME}.yaml").write_text(sam2_yaml_text(model.config))
    build_tiny_tokenizer(out_dir)
    return state
