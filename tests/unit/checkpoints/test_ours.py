"""Our checkpoint directory: model, config, tokenizer and processor settings survive a save/load exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from unipixel_pl.checkpoints.ours import CONFIG_FILE, is_ours, load_ours, read_ours, save_ours
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="module")
def processor(source_model: LitUniPixel) -> UniPixelProcessor:
    return UniPixelProcessor.from_config(
        build_tiny_tokenizer(), source_model.config.backbone, min_pixels=4 * 784, max_pixels=16 * 784, budget_frames=2
    )


def test_save_then_load_gives_the_same_model_and_processor(
    source_model: LitUniPixel, processor: UniPixelProcessor, tmp_path: Path
) -> None:
    save_ours(source_model, processor, tmp_path)
    assert is_ours(tmp_path) and not is_ours(tmp_path / "missing")
    model, loaded = load_ours(tmp_path)
    assert model.config == source_model.config
    source = source_model.state_dict()
    assert model.state_dict().keys() == source.keys()
    assert all(torch.equal(value, source[key]) for key, value in model.state_dict().items())
    hf = model.backbone.hf_model
    assert hf.lm_head.weight is hf.model.language_model.embed_tokens.weight
    assert (loaded.min_pixels, loaded.max_pixels, loaded.budget_frames) == (4 * 784, 16 * 784, 2)
    assert loaded.token_ids == processor.token_ids
    assert loaded.tokenizer.encode("<|seg|> red ball") == processor.tokenizer.encode("<|seg|> red ball")


def test_dtype_is_kept_or_cast(source_model: LitUniPixel, processor: UniPixelProcessor, tmp_path: Path) -> None:
    save_ours(source_model, processor, tmp_path, dtype=torch.bfloat16)
    _, state, _, _ = read_ours(tmp_path)
    assert {value.dtype for value in state.values()} == {torch.bfloat16}
    model, _ = load_ours(tmp_path, dtype=None)
    assert {value.dtype for value in model.state_dict().values()} == {torch.bfloat16}


def test_foreign_or_mismatched_directories_are_refused(
    source_model: LitUniPixel, processor: UniPixelProcessor, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="not a unipixel-pl checkpoint"):
        read_ours(tmp_path)
    save_ours(source_model, processor, tmp_path)
    meta = json.loads((tmp_path / CONFIG_FILE).read_text())
    (tmp_path / CONFIG_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        read_ours(tmp_path)
    meta["config"]["backbone"]["intermediate_size"] = 100
    (tmp_path / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"mlp.gate_proj.weight: \(128, 64\) vs model \(100, 64\)"):
        read_ours(tmp_path)
