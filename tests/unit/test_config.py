"""Typed configs: presets, YAML files under configs/, unknown keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO_ROOT
from unipixel_pl.cli import UniPixelCLI
from unipixel_pl.config import PRESETS, TokenIds, UniPixelConfig, from_dict, preset
from unipixel_pl.models.lit_unipixel import LitUniPixel

CONFIG_FILES = sorted((REPO_ROOT / "configs").rglob("*.yaml"))
STACK = {
    "model": "configs/model/unipixel-tiny.yaml",
    "data": "configs/data/synthetic.yaml",
    "trainer": "configs/trainer/cpu.yaml",
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_model_yaml_equals_its_preset(name: str) -> None:
    data = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / f"configs/model/{name}.yaml"))
    assert from_dict(data["model"]["config"]) == preset(name)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_config_parses_with_the_cli(path: Path) -> None:
    """Each YAML is stacked over the default stack (replacing the file of its own kind) and parsed by the CLI."""
    kind = path.relative_to(REPO_ROOT / "configs").parts[0]
    stack = {**STACK, kind: str(path.relative_to(REPO_ROOT))} if kind in STACK else {**STACK, "extra": str(path)}
    args = [arg for file in stack.values() for arg in ("--config", str(REPO_ROOT / file))]
    cli = UniPixelCLI(LitUniPixel, subclass_mode_data=True, run=False, args=args, auto_configure_optimizers=False)
    assert isinstance(cli.model, LitUniPixel)
    assert cli.datamodule.model_config == cli.model.config


def test_presets_are_fresh_copies() -> None:
    first = preset("unipixel-tiny")
    first.backbone.hidden_size = 1
    assert preset("unipixel-tiny").backbone.hidden_size == 64


def test_unknown_preset_and_keys_are_named() -> None:
    with pytest.raises(KeyError, match="unknown UniPixel preset 'unipixel-13b'"):
        preset("unipixel-13b")
    data = dataclasses.asdict(preset("unipixel-tiny"))
    data["mask_decoder"]["hiden_dim"] = 3
    with pytest.raises(ValueError, match="unknown config key\\(s\\) in 'mask_decoder': \\['hiden_dim'\\]"):
        from_dict(data)


def test_token_ids_follow_the_qwen_special_token_order() -> None:
    assert TokenIds.after_vocabulary(151643) == TokenIds()
    assert UniPixelConfig().backbone.tokens.seg == 151666
