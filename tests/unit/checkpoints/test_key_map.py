"""Key-template maps between official and our state-dict keys: every key maps, both ways, and errors name keys."""

from __future__ import annotations

import pytest
import torch

from tests.unit.checkpoints.synthetic import official_state
from unipixel_pl.checkpoints.key_map import (
    OFFICIAL_TO_OURS,
    OURS_TO_OFFICIAL,
    check_state_dict,
    map_key,
    rename_keys,
)
from unipixel_pl.checkpoints.materialize import expected_shapes
from unipixel_pl.config import preset
from unipixel_pl.models.lit_unipixel import LitUniPixel


@pytest.mark.parametrize(
    ("official", "ours"),
    [
        ("model.embed_tokens.weight", "backbone.model.model.language_model.embed_tokens.weight"),
        (
            "model.layers.17.self_attn.k_proj.bias",
            "backbone.model.model.language_model.layers.17.self_attn.k_proj.bias",
        ),
        ("visual.blocks.31.attn.qkv.weight", "backbone.model.model.visual.blocks.31.attn.qkv.weight"),
        ("visual.merger.mlp.2.bias", "backbone.model.model.visual.merger.mlp.2.bias"),
        ("lm_head.weight", "backbone.model.lm_head.weight"),
        ("seg_head.0.weight", "pointer_head.seg_head.0.weight"),
        ("ref_proj.1.weight", "prompt_encoder.ref_proj.1.weight"),
        ("tem_pe.positional_encoding_gaussian_matrix", "prompt_encoder.tem_pe.positional_encoding_gaussian_matrix"),
        (
            "ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
            "prompt_encoder.ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
        ),
        ("sam2.memory_encoder.fuser.layers.1.weight", "mask_decoder.sam2.memory_encoder.fuser.layers.1.gamma"),
        (
            "sam2.memory_encoder.fuser.layers.1.dwconv.weight",
            "mask_decoder.sam2.memory_encoder.fuser.layers.1.dwconv.weight",
        ),
        (
            "sam2.image_encoder.trunk.blocks.12.attn.qkv.weight",
            "mask_decoder.sam2.image_encoder.trunk.blocks.12.attn.qkv.weight",
        ),
        (
            "sam2.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
            "mask_decoder.sam2.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        ),
    ],
)
def test_keys_map_both_ways(official: str, ours: str) -> None:
    assert map_key(official, OFFICIAL_TO_OURS) == ours
    assert map_key(ours, OURS_TO_OFFICIAL) == official


def test_every_key_of_a_model_round_trips(source_model: LitUniPixel) -> None:
    official = official_state(source_model)
    ours = rename_keys(official, OFFICIAL_TO_OURS, "test")
    expected = {k for k in source_model.state_dict() if k != "backbone.model.lm_head.weight"}  # tied
    assert set(ours) == expected
    assert rename_keys(ours, OURS_TO_OFFICIAL, "test").keys() == official.keys()


def test_unknown_keys_are_all_named() -> None:
    state = {"model.norm.weight": torch.zeros(2), "model.rotary.inv_freq": torch.zeros(2), "foo": torch.zeros(1)}
    with pytest.raises(KeyError, match=r"2 unknown key\(s\).*\['foo', 'model.rotary.inv_freq'\]"):
        rename_keys(state, OFFICIAL_TO_OURS, "official checkpoint")
    assert map_key("model.language_model.norm.weight", OFFICIAL_TO_OURS) is None
    # Official files spell SAM 2's layer scale `weight`; the upstream `gamma` must not slip through `sam2.{*}`.
    assert map_key("sam2.memory_encoder.fuser.layers.0.gamma", OFFICIAL_TO_OURS) is None
    assert map_key("mask_decoder.sam2.memory_encoder.fuser.layers.0.weight", OURS_TO_OFFICIAL) is None


def test_check_state_dict_names_missing_unexpected_and_misshapen_keys() -> None:
    expected = {"a": torch.Size([2]), "b": torch.Size([3, 4])}
    with pytest.raises(KeyError, match=r"missing 1 key\(s\) \['b'\], unexpected 1 key\(s\) \['c'\]"):
        check_state_dict({"a": torch.zeros(2), "c": torch.zeros(1)}, expected, "ckpt")
    with pytest.raises(ValueError, match=r"b: \(4, 3\) vs model \(3, 4\)"):
        check_state_dict({"a": torch.zeros(2), "b": torch.zeros(4, 3)}, expected, "ckpt")
    check_state_dict({"a": torch.zeros(2), "b": torch.zeros(3, 4)}, expected, "ckpt")


@pytest.mark.parametrize(("name", "count"), [("unipixel-3b", 1475), ("unipixel-7b", 1380)])
def test_published_models_have_the_published_official_tensors(name: str, count: int) -> None:
    """MODEL.md §9.2: 1,475 tensors for 3B (tied head omitted), 1,380 for 7B (with ``lm_head``)."""
    config = preset(name)
    config.temporal_features = config.mask_decoder.hidden_dim // 2
    official = rename_keys(expected_shapes(config), OURS_TO_OFFICIAL, name)
    assert len(official) == count
    assert ("lm_head.weight" in official) == (name == "unipixel-7b")
    width = config.backbone.hidden_size
    assert official["msk_proj.0.weight"] == (5120, 5120) and official["msk_proj.2.weight"] == (width, 5120)
    assert official["seg_head.3.weight"] == (512, width) and official["ref_proj.1.weight"] == (width, 1536)
    assert official["tem_pe.positional_encoding_gaussian_matrix"] == (1, 128)
    assert official["ref_encoder.pe_layer.positional_encoding_gaussian_matrix"] == (2, 128)
    assert official["sam2.memory_encoder.fuser.layers.0.weight"] == (256,)
    assert sum(key.startswith("sam2.") for key in official) == 615
    assert sum(key.startswith("ref_encoder.") for key in official) == 17
