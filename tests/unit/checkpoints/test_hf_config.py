"""Official ``config.json`` <-> UniPixelConfig, and SAM 2 hydra YAML <-> MaskDecoderConfig."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import sam2
import yaml
from omegaconf import OmegaConf

from tests.unit.checkpoints.synthetic import official_config_json, tiny_config
from unipixel_pl.checkpoints.hf_config import (
    apply_reference_switches,
    config_to_official,
    load_official_config,
    official_to_config,
    read_config_json,
)
from unipixel_pl.checkpoints.sam2_yaml import (
    B_PLUS_NAME,
    CUSTOM_NAME,
    is_b_plus,
    mask_decoder_config_for,
    parse_sam2_yaml,
    sam2_yaml,
    write_sam2_yaml,
)
from unipixel_pl.config import MaskDecoderConfig, UniPixelConfig, preset

TOKENS = tiny_config().backbone.tokens


def _read(data: dict, sam: MaskDecoderConfig, reference: bool = False) -> UniPixelConfig:
    return official_to_config(data, sam, TOKENS, reference)


def test_reads_every_field_of_a_4_53_config() -> None:
    config = tiny_config()
    read = _read(official_config_json(config), config.mask_decoder)
    assert read == config


def test_tie_flag_is_read_from_text_config_first_and_defaults_to_true() -> None:
    data = official_config_json(tiny_config(tie=True))
    assert "tie_word_embeddings" not in data  # 4.53 omits the default at top level
    assert _read(data, tiny_config().mask_decoder).backbone.tie_word_embeddings
    data["tie_word_embeddings"] = True
    data["text_config"]["tie_word_embeddings"] = False
    assert not _read(data, tiny_config().mask_decoder).backbone.tie_word_embeddings
    del data["text_config"]["tie_word_embeddings"]
    del data["tie_word_embeddings"]
    assert _read(data, tiny_config().mask_decoder).backbone.tie_word_embeddings


def test_nested_text_values_win_over_top_level() -> None:
    data = official_config_json(tiny_config())
    data["rms_norm_eps"] = 1e-5  # a 5.x-style top-level default must not override the nested value
    data["text_config"]["rms_norm_eps"] = 1e-6
    assert _read(data, tiny_config().mask_decoder).backbone.rms_norm_eps == 1e-6


def test_reference_switches() -> None:
    config = _read(official_config_json(tiny_config()), tiny_config().mask_decoder, reference=True)
    assert config.mem_pooling == "reference" and config.backbone.rope_index == "reference"
    assert not config.mask_decoder.rope_grad and not config.mask_decoder.mask_no_object_in_training
    assert config.loss.global_object_count and config.loss.lm_reduction == "sample"
    assert config.temporal_features == config.mask_decoder.hidden_dim // 2
    assert apply_reference_switches(tiny_config()) == config


@pytest.mark.parametrize("name", ["unipixel-tiny", "unipixel-3b", "unipixel-7b"])
def test_our_config_round_trips_through_config_json(name: str, tmp_path: Path) -> None:
    config = preset(name)
    config.temporal_features = config.mask_decoder.hidden_dim // 2
    config.mask_decoder.image_size = 768 if name != "unipixel-tiny" else config.mask_decoder.image_size
    data = json.loads(json.dumps(config_to_official(config)))
    (tmp_path / "config.json").write_text(json.dumps(data))
    if data["sam2_config"] == CUSTOM_NAME:
        write_sam2_yaml(config.mask_decoder, tmp_path)
    else:
        assert data["sam2_config"] == B_PLUS_NAME and not (tmp_path / "configs").exists()
    assert load_official_config(tmp_path, config.backbone.tokens, reference=False) == config
    assert data["text_config"]["tie_word_embeddings"] == config.backbone.tie_word_embeddings
    assert data["model_type"] == "pixel_qwen2_5_vl" and data["vision_config"]["out_hidden_size"] == data["hidden_size"]


def test_bad_configs_are_refused(tmp_path: Path) -> None:
    data = official_config_json(tiny_config())
    (tmp_path / "config.json").write_text(json.dumps({**data, "model_type": "qwen2_5_vl"}))
    with pytest.raises(ValueError, match="model_type 'qwen2_5_vl', not 'pixel_qwen2_5_vl'"):
        read_config_json(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        read_config_json(tmp_path / "missing")
    sam = tiny_config().mask_decoder
    with pytest.raises(ValueError, match="no sam2_config"):
        _read({**data, "sam2_config": None}, sam)
    with pytest.raises(ValueError, match="sam2_batch_mode"):
        _read({**data, "sam2_batch_mode": True}, sam)
    with pytest.raises(ValueError, match=r"seg_token_id=7 \(tokenizer: 503\)"):
        _read({**data, "seg_token_id": 7}, sam)
    broken = copy.deepcopy(data)
    del broken["text_config"]["rope_scaling"], broken["rope_scaling"]
    with pytest.raises(KeyError, match="rope_scaling"):
        _read(broken, sam)


# SAM 2 hydra configs


def test_sam2_yaml_round_trip_and_b_plus_detection(tmp_path: Path) -> None:
    tiny = tiny_config().mask_decoder
    path = write_sam2_yaml(tiny, tmp_path)
    assert path == tmp_path / f"{CUSTOM_NAME}.yaml"
    assert mask_decoder_config_for(tmp_path, CUSTOM_NAME, tiny.image_size) == dataclasses.replace(
        tiny, rope_grad=True, mask_no_object_in_training=False
    )
    assert not is_b_plus(tiny)
    assert is_b_plus(MaskDecoderConfig(image_size=768, rope_grad=False))
    assert mask_decoder_config_for(tmp_path, B_PLUS_NAME, 768) == MaskDecoderConfig(image_size=768)
    with pytest.raises(FileNotFoundError, match="sam2.1_hiera_l"):
        mask_decoder_config_for(tmp_path, "configs/sam2.1_hiera_l", 768)
    with pytest.raises(ValueError, match="outside the checkpoint directory"):
        mask_decoder_config_for(tmp_path / "configs", "../../elsewhere", 768)


def test_upstream_b_plus_yaml_gives_the_b_plus_sizes() -> None:
    upstream = Path(sam2.__file__).parent / "configs" / "sam2.1" / "sam2.1_hiera_b+.yaml"
    parsed = parse_sam2_yaml(OmegaConf.to_container(OmegaConf.load(upstream)), 768)
    # Upstream leaves Hiera's drop path at 0; UniPixel's copy of this file sets 0.1 (MODEL.md §5.2).
    assert parsed == MaskDecoderConfig(image_size=768, drop_path_rate=0.0)


def test_unsupported_sam2_values_are_named() -> None:
    data = sam2_yaml(tiny_config().mask_decoder)
    data["model"]["use_obj_ptrs_in_encoder"] = False
    with pytest.raises(ValueError, match="model.use_obj_ptrs_in_encoder = False"):
        parse_sam2_yaml(data, 128)
    data = sam2_yaml(tiny_config().mask_decoder)
    data["model"]["memory_encoder"]["fuser"]["layer"]["dim"] = 64
    with pytest.raises(ValueError, match="memory_encoder.fuser.layer.dim = 64"):
        parse_sam2_yaml(data, 128)


def test_fixture_sam2_yaml(reference_tiny: Path) -> None:
    text = (reference_tiny / "checkpoint" / "configs" / "sam2.1_hiera_tiny_parity_b.yaml").read_text()
    parsed = parse_sam2_yaml(yaml.safe_load(text), 96)
    assert parsed == MaskDecoderConfig(
        image_size=96,
        hidden_dim=32,
        trunk_embed_dim=16,
        trunk_num_heads=1,
        trunk_stages=[1, 2, 2, 1],
        trunk_global_att_blocks=[4],
        trunk_window_spec=[8, 4, 2, 3],
        trunk_window_pos_embed_bkg_spatial_size=[7, 7],
        drop_path_rate=0.0,
        memory_attention_layers=1,
        memory_attention_ffn_dim=48,
        memory_dim=8,
        dropout=0.0,
    )
