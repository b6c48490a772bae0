"""Training checkpoints (a Lightning ``.ckpt`` and a sharded distributed checkpoint) read without trusting pickles."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from unipixel_pl.checkpoints.lightning_ckpt import is_lightning_checkpoint, read_lightning_checkpoint
from unipixel_pl.config import LoraConfig
from unipixel_pl.models.lit_unipixel import LitUniPixel

TIED_HEAD = "backbone.model.lm_head.weight"


class _RunsCode:
    """Unpickling this calls ``os.getpid``: a harmless stand-in for arbitrary code."""

    def __reduce__(self) -> tuple:
        return os.getpid, ()


def _lightning_dict(model: LitUniPixel) -> dict:
    return {
        "epoch": 0,
        "global_step": 3,
        "pytorch-lightning_version": "2.6.0",
        "hparams_name": "kwargs",
        "hyper_parameters": dict(model.hparams),  # the UniPixelConfig object itself, as save_hyperparameters keeps it
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}],
        "lr_schedulers": [{"base_lrs": [1e-3], "last_epoch": 3}],
    }


def _assert_model_state(state: dict, model: LitUniPixel) -> None:
    expected = {key: value for key, value in model.state_dict().items() if key != TIED_HEAD}
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[key], value) for key, value in expected.items())


def test_single_file_checkpoint(source_model: LitUniPixel, tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    torch.save({**_lightning_dict(source_model), "state_dict": source_model.state_dict()}, path)
    assert is_lightning_checkpoint(path) and not is_lightning_checkpoint(tmp_path)
    config, state = read_lightning_checkpoint(path)
    assert config == source_model.config
    _assert_model_state(state, source_model)


def test_config_saved_as_a_mapping_by_the_cli(source_model: LitUniPixel, tmp_path: Path) -> None:
    import dataclasses

    checkpoint = {**_lightning_dict(source_model), "state_dict": source_model.state_dict()}
    checkpoint["hyper_parameters"] = {"config": dataclasses.asdict(source_model.config), "seed": 0}
    torch.save(checkpoint, tmp_path / "cli.ckpt")
    assert read_lightning_checkpoint(tmp_path / "cli.ckpt")[0] == source_model.config


def test_sharded_checkpoint_is_consolidated(source_model: LitUniPixel, tmp_path: Path) -> None:
    path = tmp_path / "epoch=0-step=3.ckpt"
    checkpoint = _lightning_dict(source_model)
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no process group: saving in a single process"
        dcp.save({"state_dict": source_model.state_dict(), "optimizer_0": optimizer}, checkpoint_id=path)
        torch.save({k: v for k, v in checkpoint.items() if k != "optimizer_states"}, path / "meta.pt")
        assert is_lightning_checkpoint(path)
        config, state = read_lightning_checkpoint(path)
    assert config == source_model.config
    _assert_model_state(state, source_model)


def test_pickles_that_would_run_code_are_refused(source_model: LitUniPixel, tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "hyper_parameters": {"config": _RunsCode()}}, tmp_path / "evil.ckpt")
    with pytest.raises(pickle.UnpicklingError, match="getpid"):
        read_lightning_checkpoint(tmp_path / "evil.ckpt")
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / ".metadata").write_bytes(pickle.dumps(_RunsCode()))
    torch.save(_lightning_dict(source_model), sharded / "meta.pt")
    with pytest.raises(pickle.UnpicklingError, match="posix.getpid, which is not allowed"):
        read_lightning_checkpoint(sharded)


def test_not_a_model_checkpoint(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a LitUniPixel training checkpoint"):
        read_lightning_checkpoint(tmp_path / "other.ckpt")
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / ".metadata").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no meta.pt"):
        read_lightning_checkpoint(tmp_path / "shards")


def test_lora_adapters_are_merged_into_the_exported_weights(source_model: LitUniPixel, tmp_path: Path) -> None:
    lora = LoraConfig(r=2, alpha=6.0, dropout=0.0, targets=["q_proj", "attn.qkv"])
    model = LitUniPixel(source_model.config, lora=lora)
    model.configure_model()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn_like(param) if "lora_B" in name else param)  # peft starts B at 0
    torch.save({**_lightning_dict(model), "state_dict": model.state_dict()}, tmp_path / "lora.ckpt")
    _, state = read_lightning_checkpoint(tmp_path / "lora.ckpt")
    attention = "backbone.model.model.language_model.layers.0.self_attn.q_proj"
    down = model.get_parameter(f"{attention}.lora_A.default.weight")
    up = model.get_parameter(f"{attention}.lora_B.default.weight")
    base = model.get_parameter(f"{attention}.base_layer.weight")
    torch.testing.assert_close(state[f"{attention}.weight"], base + 3.0 * up @ down)
    assert not any("lora_" in key or "base_layer" in key for key in state)
    assert state.keys() == {key for key in source_model.state_dict() if key != TIED_HEAD}
