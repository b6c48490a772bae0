"""Official checkpoint directories: loading, byte-identical round trips, and every refusal naming its cause."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from tests.unit.checkpoints.synthetic import bf16_model, tiny_config, write_official_checkpoint
from unipixel_pl.checkpoints.official import load_official, read_official, save_official, write_official
from unipixel_pl.checkpoints.ours import read_ours, write_ours
from unipixel_pl.checkpoints.safetensors_io import INDEX_FILE, read_weights, write_weights
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.rope_index import VIDEO, get_rope_index
from unipixel_pl.types import UniPixelBatch, VisualPrompt

BUFFERS = (
    "prompt_encoder.tem_pe.positional_encoding_gaussian_matrix",
    "prompt_encoder.ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
    "mask_decoder.sam2.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_with(src: Path, dst: Path, state: dict[str, Tensor]) -> Path:
    shutil.copytree(src, dst)
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def _batch(model: LitUniPixel) -> UniPixelBatch:
    """One video sample with a <|ref|> box prompt and a <|seg|> token."""
    tokens = model.config.backbone.tokens
    ids = [tokens.im_start, 10, tokens.vision_start, *[tokens.video] * 8, tokens.vision_end, 11, tokens.ref]
    input_ids = torch.tensor([[*ids, 12, tokens.seg, tokens.im_end]])
    types = torch.where(input_ids == tokens.video, VIDEO, 0)
    grid = torch.tensor([[2, 4, 4]])
    positions, _ = get_rope_index(
        input_ids, types, video_grid_thw=grid, spatial_merge_size=2, tokens_per_second=2, rule="reference"
    )
    return UniPixelBatch(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        position_ids=positions,
        mm_token_type_ids=types,
        pixel_values_videos=torch.randn(32, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(0)),
        video_grid_thw=grid,
        video_sample_index=torch.tensor([0]),
        prompts=[[VisualPrompt.box(10.0, 20.0, 90.0, 100.0, frame=1)]],
    )


def test_load_official_reproduces_the_written_model(
    source_model: LitUniPixel, official_checkpoint: tuple[Path, dict[str, Tensor]]
) -> None:
    path, _ = official_checkpoint
    model, processor = load_official(path)
    assert not model.training
    source = source_model.state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == source.keys()
    for key, value in source.items():
        assert loaded[key].dtype == torch.float32 and torch.equal(loaded[key], value), key
    hf = model.backbone.hf_model
    assert hf.lm_head.weight is hf.model.language_model.embed_tokens.weight
    # The two random-Fourier matrices are the stored ones (never re-drawn), and ref_encoder keeps its own.
    for key in BUFFERS:
        assert torch.equal(loaded[key], source[key]), key
    assert not torch.equal(loaded[BUFFERS[1]], loaded[BUFFERS[2]])
    assert processor.token_ids == source_model.config.backbone.tokens
    with torch.no_grad():
        theirs, ours = source_model.run_backbone(_batch(source_model)), model.run_backbone(_batch(model))
    torch.testing.assert_close(ours.logits, theirs.logits, rtol=0, atol=0)


def test_load_keeps_the_stored_dtype_when_asked(official_checkpoint: tuple[Path, dict[str, Tensor]]) -> None:
    model, _ = load_official(official_checkpoint[0], dtype=None)
    assert {value.dtype for value in model.state_dict().values() if value.is_floating_point()} == {torch.bfloat16}


def test_official_to_ours_to_official_is_byte_identical(
    official_checkpoint: tuple[Path, dict[str, Tensor]], tmp_path: Path
) -> None:
    path, written = official_checkpoint
    config, state, tokenizer = read_official(path)
    write_ours(config, state, tokenizer, tmp_path / "ours")
    config, state, tokenizer, _ = read_ours(tmp_path / "ours")
    write_official(config, state, tokenizer, tmp_path / "back")
    assert _digest(tmp_path / "back" / "model.safetensors") == _digest(path / "model.safetensors")
    back = load_file(str(tmp_path / "back" / "model.safetensors"))
    assert back.keys() == written.keys()
    for key, value in written.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    # The exported directory is again a valid official checkpoint of the same model.
    again, _, _ = read_official(tmp_path / "back", reference=False)
    assert again == read_official(path, reference=False)[0]


def test_untied_embeddings_keep_their_own_head(tmp_path: Path) -> None:
    source = bf16_model(tiny_config(tie=False), seed=3)
    written = write_official_checkpoint(tmp_path / "official", source)
    assert "lm_head.weight" in written
    model, _ = load_official(tmp_path / "official")
    hf = model.backbone.hf_model
    assert hf.lm_head.weight is not hf.model.language_model.embed_tokens.weight
    assert torch.equal(hf.lm_head.weight, source.backbone.hf_model.lm_head.weight)
    save_official(model, load_official(tmp_path / "official")[1].tokenizer, tmp_path / "back")
    assert _digest(tmp_path / "back" / "model.safetensors") == _digest(tmp_path / "official" / "model.safetensors")


def test_sharded_weights_round_trip(official_checkpoint: tuple[Path, dict[str, Tensor]], tmp_path: Path) -> None:
    _, written = official_checkpoint
    files = write_weights(written, tmp_path, max_shard_size="100KB")
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert len(files) > 1 and set(index["weight_map"]) == set(written)
    back = read_weights(tmp_path)
    assert all(torch.equal(back[key], value) for key, value in written.items())


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ("drop:tem_pe.positional_encoding_gaussian_matrix", KeyError, r"missing 1 key.*tem_pe.positional_encoding"),
        (
            "drop:ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
            KeyError,
            "ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
        ),
        ("drop:sam2.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", KeyError, "sam_prompt_encoder"),
        ("add:visual.extra.weight", KeyError, r"unknown key\(s\).*visual.extra.weight"),
        ("add:seg_head.7.weight", KeyError, r"unexpected 1 key\(s\) \['pointer_head.seg_head.7.weight'\]"),
        ("add:lm_head.weight", KeyError, "ties it to the token embeddings"),
        ("shape:tem_proj.bias", ValueError, r"tem_proj.bias: \(5,\) vs model \(96,\)"),
    ],
)
def test_checkpoints_that_do_not_fit_are_refused_by_key(
    official_checkpoint: tuple[Path, dict[str, Tensor]], tmp_path: Path, change: str, error: type, match: str
) -> None:
    path, written = official_checkpoint
    action, key = change.split(":")
    state = dict(written)
    if action == "drop":
        del state[key]
    elif action == "add":
        state[key] = written["model.embed_tokens.weight"].clone() if key == "lm_head.weight" else torch.zeros(3)
    else:
        state[key] = torch.zeros(5, dtype=torch.bfloat16)
    with pytest.raises(error, match=match):
        load_official(_copy_with(path, tmp_path / "broken", state))


def test_only_safetensors_weights_are_read(official_checkpoint: tuple[Path, dict[str, Tensor]], tmp_path: Path) -> None:
    broken = shutil.copytree(official_checkpoint[0], tmp_path / "bin")
    (broken / "model.safetensors").rename(broken / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="pickled .bin/.pt weights are refused"):
        load_official(broken)


def test_tokenizer_must_match_config_ids(official_checkpoint: tuple[Path, dict[str, Tensor]], tmp_path: Path) -> None:
    broken = shutil.copytree(official_checkpoint[0], tmp_path / "ids")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "mem_token_id": config["ref_token_id"]}))
    with pytest.raises(ValueError, match="mem_token_id=502 .tokenizer: 504."):
        load_official(broken)


def test_fixture_checkpoint_round_trips_byte_identically(reference_tiny: Path, tmp_path: Path) -> None:
    source = reference_tiny / "checkpoint"
    config, state, tokenizer = read_official(source)
    assert len(state) == json.loads((reference_tiny / "manifest.json").read_text())["checkpoint"]["num_tensors"]
    write_ours(config, state, tokenizer, tmp_path / "ours")
    config, state, tokenizer, _ = read_ours(tmp_path / "ours")
    write_official(config, state, tokenizer, tmp_path / "back")
    assert _digest(tmp_path / "back" / "model.safetensors") == _digest(source / "model.safetensors")
    assert read_official(tmp_path / "back")[0] == config
