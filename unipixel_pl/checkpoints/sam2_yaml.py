"""SAM 2 hydra configs (``configs/<name>.yaml``) <-> :class:`MaskDecoderConfig`.

An official checkpoint names its SAM 2 architecture by a hydra config name (``sam2_config``, e.g.
``configs/sam2.1_hiera_b+``, MODEL.md §2.2, §5.2). The published models use SAM 2.1 Hiera-B+, whose values are our
:class:`MaskDecoderConfig` defaults; other (tiny) checkpoints ship the YAML in their own ``configs/`` folder. Only
sizes are read: every model switch must equal the SAM 2.1 switches our ``UniPixelSAM2`` hard-codes, and any other
value raises naming the key, since the model could not reproduce it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from unipixel_pl.config import MaskDecoderConfig
from unipixel_pl.models.sam2_model import SAM21_SWITCHES

B_PLUS_NAME = "configs/sam2.1_hiera_b+"
"""The ``sam2_config`` of the published UniPixel-3B/7B (resolved inside the reference's ``sam2`` package)."""
CUSTOM_NAME = "configs/sam2.1_hiera_unipixel"
"""The name :func:`write_sam2_yaml` gives a non-B+ architecture (written into the checkpoint's ``configs/``)."""

_HIERA_DEFAULTS = {
    "stages": [2, 3, 16, 3],
    "global_att_blocks": [12, 16, 20],
    "window_spec": [8, 4, 14, 7],
    "window_pos_embed_bkg_spatial_size": [14, 14],
    "drop_path_rate": 0.0,
}
"""Hiera's constructor defaults: the B+ YAML leaves these keys out."""

_FIXED: dict[str, Any] = {
    "image_encoder.scalp": 1,
    "image_encoder.neck.fpn_top_down_levels": [2, 3],
    "image_encoder.neck.fpn_interp_model": "nearest",
    "memory_attention.pos_enc_at_input": True,
    "memory_attention.layer.activation": "relu",
    "memory_attention.layer.pos_enc_at_attn": False,
    "memory_attention.layer.pos_enc_at_cross_attn_keys": True,
    "memory_attention.layer.pos_enc_at_cross_attn_queries": False,
    "memory_attention.layer.self_attention.num_heads": 1,
    "memory_attention.layer.self_attention.downsample_rate": 1,
    "memory_attention.layer.self_attention.rope_theta": 10000.0,
    "memory_attention.layer.cross_attention.num_heads": 1,
    "memory_attention.layer.cross_attention.downsample_rate": 1,
    "memory_attention.layer.cross_attention.rope_theta": 10000.0,
    "memory_attention.layer.cross_attention.rope_k_repeat": True,
    "memory_encoder.mask_downsampler.kernel_size": 3,
    "memory_encoder.mask_downsampler.stride": 2,
    "memory_encoder.mask_downsampler.padding": 1,
    "memory_encoder.fuser.num_layers": 2,
    "memory_encoder.fuser.layer.kernel_size": 7,
    "memory_encoder.fuser.layer.padding": 3,
    "memory_encoder.fuser.layer.layer_scale_init_value": 1e-6,
    "memory_encoder.fuser.layer.use_dwconv": True,
}
"""Architecture values our builders hard-code (``unipixel_pl.models.sam2_model``), by dotted path under ``model``."""


def resolve_sam2_yaml(checkpoint_dir: Path, name: str) -> Path | None:
    """The YAML file of hydra config ``name`` inside ``checkpoint_dir`` (``<dir>/<name>.yaml``), or None.

    Raises:
        ValueError: ``name`` points outside the checkpoint directory.
    """
    path = checkpoint_dir / f"{name}.yaml"
    if not path.resolve().is_relative_to(checkpoint_dir.resolve()):
        raise ValueError(f"sam2_config {name!r} points outside the checkpoint directory {str(checkpoint_dir)!r}")
    return path if path.is_file() else None


def mask_decoder_config_for(checkpoint_dir: Path, name: str, image_size: int) -> MaskDecoderConfig:
    """SAM 2 sizes of an official checkpoint: its own YAML if present, else the B+ defaults for the B+ name.

    Args:
        checkpoint_dir: the checkpoint directory (its ``configs/`` folder is searched).
        name: the ``sam2_config`` value, e.g. ``configs/sam2.1_hiera_b+``.
        image_size: ``sam2_image_size`` (overrides the YAML's ``image_size`` as the reference's hydra override).

    Raises:
        FileNotFoundError: ``name`` is not B+ and no ``<name>.yaml`` is in the checkpoint directory.
    """
    path = resolve_sam2_yaml(checkpoint_dir, name)
    if path is not None:
        return parse_sam2_yaml(OmegaConf.to_container(OmegaConf.load(path), resolve=True), image_size)
    if name.rstrip("/").removesuffix(".yaml") == B_PLUS_NAME:
        return MaskDecoderConfig(image_size=image_size)
    raise FileNotFoundError(
        f"sam2_config {name!r} is not {B_PLUS_NAME!r} and {checkpoint_dir / (name + '.yaml')} does not exist; "
        "put the SAM 2 hydra YAML the checkpoint was trained with into the checkpoint's configs/ folder"
    )


def parse_sam2_yaml(data: dict[str, Any], image_size: int) -> MaskDecoderConfig:
    """Read the sizes of a SAM 2 hydra config (the mapping under its ``model`` key).

    Raises:
        ValueError: a switch or fixed architecture value differs from what ``UniPixelSAM2`` builds (named).
    """
    model = data.get("model", data)
    _check_fixed(model)
    trunk = {**_HIERA_DEFAULTS, **model["image_encoder"]["trunk"]}
    layer = model["memory_attention"]["layer"]
    config = MaskDecoderConfig(
        image_size=image_size,
        hidden_dim=model["image_encoder"]["neck"]["d_model"],
        trunk_embed_dim=trunk["embed_dim"],
        trunk_num_heads=trunk["num_heads"],
        trunk_stages=list(trunk["stages"]),
        trunk_global_att_blocks=list(trunk["global_att_blocks"]),
        trunk_window_spec=list(trunk["window_spec"]),
        trunk_window_pos_embed_bkg_spatial_size=list(trunk["window_pos_embed_bkg_spatial_size"]),
        drop_path_rate=float(trunk["drop_path_rate"]),
        memory_attention_layers=model["memory_attention"]["num_layers"],
        memory_attention_ffn_dim=layer["dim_feedforward"],
        memory_dim=model["memory_encoder"]["out_dim"],
        dropout=float(layer["dropout"]),
        num_maskmem=model.get("num_maskmem", 7),
        max_obj_ptrs_in_encoder=model.get("max_obj_ptrs_in_encoder", 16),
    )
    _check_sizes(model, config)
    return config


def is_b_plus(config: MaskDecoderConfig) -> bool:
    """Whether ``config`` has the SAM 2.1 Hiera-B+ architecture (any input size, any reference switches)."""
    ignored = {"image_size", "prompt_tokens", "rope_grad", "mask_no_object_in_training"}
    default = MaskDecoderConfig()
    return all(
        getattr(config, f.name) == getattr(default, f.name) for f in dataclasses.fields(config) if f.name not in ignored
    )


def sam2_yaml(config: MaskDecoderConfig) -> dict[str, Any]:
    """The hydra config (reference layout: ``SAM2Train`` target, MODEL.md §5.2) describing ``config``."""
    hidden, memory_dim, side = config.hidden_dim, config.memory_dim, config.embedding_size
    attention = {"rope_theta": 10000.0, "feat_sizes": [side, side], "embedding_dim": hidden, "num_heads": 1}
    attention |= {"downsample_rate": 1, "dropout": config.dropout}
    sine = {"_target_": "sam2.modeling.position_encoding.PositionEmbeddingSine", "normalize": True, "scale": None}
    sine |= {"temperature": 10000}
    model = {
        "_target_": "sam2.sam2_train.SAM2Train",
        "image_encoder": _image_encoder_yaml(config, sine),
        "memory_attention": {
            "_target_": "sam2.modeling.memory_attention.MemoryAttention",
            "d_model": hidden,
            "pos_enc_at_input": True,
            "layer": {
                "activation": "relu",
                "dim_feedforward": config.memory_attention_ffn_dim,
                "dropout": config.dropout,
                "pos_enc_at_attn": False,
                "self_attention": attention,
                "d_model": hidden,
                "pos_enc_at_cross_attn_keys": True,
                "pos_enc_at_cross_attn_queries": False,
                "cross_attention": {**attention, "rope_k_repeat": True, "kv_in_dim": memory_dim},
            },
            "num_layers": config.memory_attention_layers,
        },
        "memory_encoder": _memory_encoder_yaml(config, sine),
        "num_maskmem": config.num_maskmem,
        "image_size": config.image_size,
        "max_obj_ptrs_in_encoder": config.max_obj_ptrs_in_encoder,
        **SAM21_SWITCHES,
    }
    return {"model": model}


def write_sam2_yaml(config: MaskDecoderConfig, checkpoint_dir: Path, name: str = CUSTOM_NAME) -> Path:
    """Write :func:`sam2_yaml` to ``<checkpoint_dir>/<name>.yaml``; returns the path."""
    path = checkpoint_dir / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = OmegaConf.to_yaml(OmegaConf.create(sam2_yaml(config)))
    path.write_text(
        "# @package _global_\n\n# SAM 2.1 architecture of a UniPixel checkpoint, written by unipixel-pl.\n\n" + body
    )
    return path


def _image_encoder_yaml(config: MaskDecoderConfig, sine: dict[str, Any]) -> dict[str, Any]:
    return {
        "_target_": "sam2.modeling.backbones.image_encoder.ImageEncoder",
        "scalp": 1,
        "trunk": {
            "_target_": "sam2.modeling.backbones.hieradet.Hiera",
            "embed_dim": config.trunk_embed_dim,
            "num_heads": config.trunk_num_heads,
            "stages": list(config.trunk_stages),
            "global_att_blocks": list(config.trunk_global_att_blocks),
            "window_spec": list(config.trunk_window_spec),
            "window_pos_embed_bkg_spatial_size": list(config.trunk_window_pos_embed_bkg_spatial_size),
            "drop_path_rate": config.drop_path_rate,
        },
        "neck": {
            "_target_": "sam2.modeling.backbones.image_encoder.FpnNeck",
            "position_encoding": {**sine, "num_pos_feats": config.hidden_dim},
            "d_model": config.hidden_dim,
            "backbone_channel_list": config.backbone_channel_list,
            "fpn_top_down_levels": [2, 3],
            "fpn_interp_model": "nearest",
        },
    }


def _memory_encoder_yaml(config: MaskDecoderConfig, sine: dict[str, Any]) -> dict[str, Any]:
    hidden = config.hidden_dim
    block = {"dim": hidden, "kernel_size": 7, "padding": 3, "layer_scale_init_value": 1e-6, "use_dwconv": True}
    return {
        "_target_": "sam2.modeling.memory_encoder.MemoryEncoder",
        "out_dim": config.memory_dim,
        "in_dim": hidden,
        "position_encoding": {**sine, "num_pos_feats": config.memory_dim},
        "mask_downsampler": {
            "_target_": "sam2.modeling.memory_encoder.MaskDownSampler",
            "embed_dim": hidden,
            "kernel_size": 3,
            "stride": 2,
            "padding": 1,
        },
        "fuser": {"_target_": "sam2.modeling.memory_encoder.Fuser", "layer": block, "num_layers": 2},
    }


def _lookup(model: dict[str, Any], dotted: str) -> Any:
    node: Any = model
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _check_fixed(model: dict[str, Any]) -> None:
    expected = {**_FIXED, **SAM21_SWITCHES}
    for dotted, value in expected.items():
        found = _lookup(model, dotted)
        if found is not None and found != value:
            raise ValueError(
                f"SAM 2 config sets model.{dotted} = {found!r}, but unipixel-pl's SAM 2 is built with {value!r}; "
                "only SAM 2.1-style architectures (sizes may differ) can be loaded"
            )


def _check_sizes(model: dict[str, Any], config: MaskDecoderConfig) -> None:
    hidden = config.hidden_dim
    derived = {
        "image_encoder.neck.backbone_channel_list": config.backbone_channel_list,
        "image_encoder.neck.position_encoding.num_pos_feats": hidden,
        "memory_attention.d_model": hidden,
        "memory_attention.layer.d_model": hidden,
        "memory_attention.layer.self_attention.embedding_dim": hidden,
        "memory_attention.layer.self_attention.dropout": config.dropout,
        "memory_attention.layer.cross_attention.embedding_dim": hidden,
        "memory_attention.layer.cross_attention.dropout": config.dropout,
        "memory_attention.layer.cross_attention.kv_in_dim": config.memory_dim,
        "memory_encoder.in_dim": hidden,
        "memory_encoder.position_encoding.num_pos_feats": config.memory_dim,
        "memory_encoder.mask_downsampler.embed_dim": hidden,
        "memory_encoder.fuser.layer.dim": hidden,
    }
    for dotted, value in derived.items():
        found = _lookup(model, dotted)
        if found is not None and found != value:
            raise ValueError(
                f"SAM 2 config sets model.{dotted} = {found!r} but unipixel-pl derives {value!r} from the other "
                "sizes (hidden width, memory width, trunk width); the YAML is inconsistent or unsupported"
            )
