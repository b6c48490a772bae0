"""``unipixel convert ckpt-to-ours``: a training checkpoint becomes one of our directories, weights unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unipixel_pl.checkpoints.ours import load_ours
from unipixel_pl.convert_cli import convert_main
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.tokenizer import build_tiny_tokenizer


def test_training_checkpoint_to_ours(source_model: LitUniPixel, tmp_path: Path) -> None:
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": source_model.state_dict(), "hyper_parameters": dict(source_model.hparams)}, checkpoint)
    assert convert_main(["ckpt-to-ours", str(checkpoint), str(tmp_path / "ours"), "--tokenizer", "tiny"]) == 0
    model, processor = load_ours(tmp_path / "ours")
    assert model.config == source_model.config
    for key, value in source_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert processor.budget_frames == 16 and processor.token_ids == source_model.config.backbone.tokens
    assert processor.tokenizer.get_vocab() == build_tiny_tokenizer().get_vocab()


def test_bad_source_and_missing_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "none.ckpt")
    assert convert_main(["ckpt-to-ours", missing, str(tmp_path / "out"), "--tokenizer", "tiny"]) == 1
    assert "neither a Lightning .ckpt file nor a sharded checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert_main(["ckpt-to-ours", str(tmp_path / "last.ckpt"), str(tmp_path / "out")])
    assert "--tokenizer" in capsys.readouterr().err
