"""``unipixel convert``: the three conversions end to end, and errors as messages with a non-zero exit code."""

from __future__ import annotations

import hashlib
import runpy
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from tests.unit.checkpoints.synthetic import sam2_yaml_text
from unipixel_pl.checkpoints.official import load_official
from unipixel_pl.checkpoints.ours import load_ours
from unipixel_pl.convert_cli import convert_main
from unipixel_pl.models.lit_unipixel import LitUniPixel


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_official_to_ours_and_back(
    official_checkpoint: tuple[Path, dict[str, Tensor]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = official_checkpoint[0]
    assert convert_main(["official-to-ours", str(source), str(tmp_path / "ours")]) == 0
    assert f"wrote {tmp_path / 'ours'}" in capsys.readouterr().out
    model, processor = load_ours(tmp_path / "ours")
    assert model.config.mem_pooling == "reference" and processor.budget_frames == 16
    assert convert_main(["ours-to-official", str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    assert _digest(tmp_path / "back" / "model.safetensors") == _digest(source / "model.safetensors")
    assert convert_main(["official-to-ours", "--corrected", str(source), str(tmp_path / "corrected")]) == 0
    assert load_ours(tmp_path / "corrected")[0].config.mem_pooling == "raster"


def test_training_checkpoint_to_official(
    source_model: LitUniPixel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": source_model.state_dict(), "hyper_parameters": dict(source_model.hparams)}, checkpoint)
    assert convert_main(["ours-to-official", str(checkpoint), str(tmp_path / "out")]) == 1
    assert "pass --tokenizer DIR" in capsys.readouterr().err
    assert convert_main(["ours-to-official", str(checkpoint), str(tmp_path / "out"), "--tokenizer", "tiny"]) == 0
    model, _ = load_official(tmp_path / "out")
    for key, value in source_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_qwen_sam2_writes_a_loadable_checkpoint(
    official_checkpoint: tuple[Path, dict[str, Tensor]],
    source_model: LitUniPixel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    qwen = tmp_path / "qwen"
    source_model.backbone.hf_model.save_pretrained(str(qwen))
    load_official(official_checkpoint[0])[1].tokenizer.save_pretrained(str(qwen))
    torch.save({"model": source_model.mask_decoder.sam2.state_dict()}, tmp_path / "sam2.pt")
    args = ["qwen-sam2", str(qwen), str(tmp_path / "sam2.pt"), str(tmp_path / "out"), "--image-size", "128"]
    assert convert_main(args) == 1  # the default B+ sizes do not fit this tiny SAM 2
    assert "give its hydra YAML" in capsys.readouterr().err
    (tmp_path / "tiny.yaml").write_text(sam2_yaml_text(source_model.config))
    assert convert_main([*args, "--sam2-config", str(tmp_path / "tiny.yaml"), "--seed", "3"]) == 0
    model, processor = load_ours(tmp_path / "out")
    assert model.config.mask_decoder.image_size == 128 and processor.token_ids == source_model.config.backbone.tokens
    assert torch.equal(model.backbone.hf_model.lm_head.weight, source_model.backbone.hf_model.lm_head.weight)


def test_errors_are_reported_with_exit_code_1(
    official_checkpoint: tuple[Path, dict[str, Tensor]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert convert_main(["official-to-ours", str(tmp_path / "missing"), str(tmp_path / "a")]) == 1
    assert "is not a UniPixel checkpoint directory: no config.json" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert convert_main(["official-to-ours", str(official_checkpoint[0]), str(tmp_path / "full")]) == 1
    assert "already exists and is not an empty directory" in capsys.readouterr().err
    assert convert_main(["ours-to-official", str(official_checkpoint[0]), str(tmp_path / "b")]) == 1
    assert "not a unipixel-pl checkpoint (unipixel.json)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert_main(["unknown-direction", "a", "b"])


@pytest.mark.filterwarnings("ignore:'unipixel_pl.convert_cli' found in sys.modules:RuntimeWarning")
def test_runs_as_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """What ``python -m unipixel_pl.convert_cli ...`` executes (in-process: the imports are already paid)."""
    monkeypatch.setattr(sys, "argv", ["convert_cli", "official-to-ours", str(tmp_path / "no"), str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("unipixel_pl.convert_cli", run_name="__main__")
    assert exit_info.value.code == 1 and "unipixel convert official-to-ours: error" in capsys.readouterr().err
