"""The stage recipes (configs/recipes/): their commands, and the three stages chained on the tiny preset.

Each chain runs the recipes as written (tuned modules, learning rates, LoRA, precision, clipping, gradient
checkpointing, checkpoint paths, stage-to-stage initialisation) stacked over the tiny model and the synthetic
data, with short limits. Stage 1 starts from a tiny "stage-0" checkpoint where the real run starts from the
Qwen2.5-VL + SAM 2.1 conversion.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import REPO_ROOT
from unipixel_pl.checkpoints.ours import save_ours
from unipixel_pl.checkpoints.safetensors_io import read_weights
from unipixel_pl.cli import UniPixelCLI, run_cli
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.models.lora import lora_layers
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import build_tiny_tokenizer

CONFIGS = REPO_ROOT / "configs"
RECIPES = sorted((CONFIGS / "recipes").glob("*.yaml"))
FOURIER_BUFFERS = (
    "prompt_encoder.tem_pe.positional_encoding_gaussian_matrix",
    "prompt_encoder.ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
)
STAGE_TASKS = {1: ["ref_point", "ref_box"], 2: ["seg"], 3: ["seg", "ref_point", "ref_box", "region", "mem_point"]}
"""Synthetic task families standing in for each stage's corpus mix (referring / segmentation / everything)."""
PARITY_OVERRIDES = [
    "--trainer.gradient_clip_val=null",
    "--model.optimizer.frozen_modules_eval=false",
    "--model.config.bf16_prompt_coords=true",
]
"""What each recipe's header gives for the reference's training numerics (MODEL.md §11 #10, #11, #9)."""


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["unipixel"])


def recipe(stage: int, size: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / f"recipes/stage{stage}-{size}.yaml"))


def test_there_is_one_recipe_per_stage_and_size() -> None:
    assert [path.name for path in RECIPES] == [f"stage{s}-{m}.yaml" for s in (1, 2, 3) for m in ("3b", "7b")]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_header_is_the_command_that_runs_the_recipe(path: Path) -> None:
    command = next(line for line in path.read_text().splitlines() if line.startswith("# unipixel fit"))
    files = re.findall(r"--config (\S+)", command)
    size = path.stem.split("-")[1]
    assert files[0] == f"configs/model/unipixel-{size}.yaml" and files[-1] == f"configs/recipes/{path.name}"
    assert all((REPO_ROOT / file).is_file() for file in files)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_7b_recipe_is_the_3b_recipe_with_7b_paths(stage: int) -> None:
    """launch_7b.sh differs from launch_3b.sh only in the base model (MODEL.md §8.1)."""
    text = (CONFIGS / f"recipes/stage{stage}-3b.yaml").read_text().replace("3b", "7b").replace("3B", "7B")
    assert OmegaConf.to_container(OmegaConf.create(text)) == recipe(stage, "7b")


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_recipe_settings_follow_the_reference(stage: int) -> None:
    """MODEL.md §8.1: learning rates, global batch 256/256/32 on 8 GPUs, LoRA only in stage 3."""
    config = recipe(stage, "3b")
    optimizer, trainer = config["model"]["optimizer"], config["trainer"]
    assert (optimizer["lr"], optimizer["warmup_ratio"], optimizer["weight_decay"]) == (
        {1: 1e-3, 2: 1e-3, 3: 2e-5}[stage],
        0.03,
        0.0,
    )
    assert optimizer.get("module_lrs") == ({"sam2": 5e-6} if stage == 3 else None)
    assert (
        trainer["accumulate_grad_batches"] * 8 * config["data"]["init_args"]["batch_size"]
        == {1: 256, 2: 256, 3: 32}[stage]
    )
    assert (trainer["precision"], trainer["max_epochs"]) == ("bf16-mixed", 1)
    assert config["model"]["config"]["backbone"]["gradient_checkpointing"] is True
    assert config["model"].get("lora") == ({"r": 128, "alpha": 256.0, "dropout": 0.1} if stage == 3 else None)


def parity_overrides(path: Path) -> list[str]:
    """The ``--key=value`` overrides in the header, from ``# Reference parity`` to the command line."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Reference parity"))
    end = next(i for i, line in enumerate(lines) if line.startswith("# unipixel fit"))
    return re.findall(r"--[\w.]+=\S+", " ".join(lines[start:end]))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_states_the_corrected_setting_of_each_training_quirk(path: Path) -> None:
    """MODEL.md §11: clipping at 1.0 (#10), frozen modules in eval mode (#11), fp32 prompt coordinates (#9)."""
    config = OmegaConf.to_container(OmegaConf.load(path))
    assert config["trainer"]["gradient_clip_val"] == 1.0
    assert config["model"]["optimizer"]["frozen_modules_eval"] is True
    assert config["model"]["config"]["bf16_prompt_coords"] is False
    assert parity_overrides(path) == PARITY_OVERRIDES


def test_the_header_overrides_select_the_reference_numerics() -> None:
    files = ["model/unipixel-tiny.yaml", "trainer/cpu.yaml", "recipes/stage2-3b.yaml"]
    args = [*[arg for file in files for arg in ("--config", str(CONFIGS / file))], *PARITY_OVERRIDES]
    cli = UniPixelCLI(LitUniPixel, subclass_mode_data=True, run=False, args=args, auto_configure_optimizers=False)
    assert cli.trainer.gradient_clip_val is None
    assert cli.model.optimizer_config.frozen_modules_eval is False
    assert cli.model.config.bf16_prompt_coords is True


def write_stage0(directory: Path) -> dict[str, torch.Tensor]:
    """A tiny stand-in for the Qwen2.5-VL + SAM 2.1 conversion (our checkpoint layout, tokenizer included)."""
    torch.manual_seed(0)
    model = LitUniPixel.from_preset("unipixel-tiny")
    save_ours(model, UniPixelProcessor.from_config(build_tiny_tokenizer(), model.config.backbone), directory)
    return read_weights(directory)


def fit_stage(stage: int, size: str) -> LitUniPixel:
    configs = [
        "model/unipixel-tiny.yaml",
        "trainer/cpu.yaml",
        f"recipes/stage{stage}-{size}.yaml",
        "data/synthetic.yaml",
    ]
    cli = run_cli(
        [
            "fit",
            *[arg for file in configs for arg in ("--config", str(CONFIGS / file))],
            "--trainer.max_steps=3",
            "--trainer.accumulate_grad_batches=2",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--data.init_args.train_samples=12",
            "--data.init_args.image_size=64",
            f"--data.init_args.tasks={STAGE_TASKS[stage]}",
        ]
    )
    assert cli.trainer.global_step == 3
    assert (cli.trainer.precision, cli.trainer.gradient_clip_val) == ("bf16-mixed", 1.0)
    return cli.model


def check_tuning(model: LitUniPixel, stage: int, size: str, before: dict[str, torch.Tensor]) -> None:
    """Frozen parameters are bit-identical to the stage's initial weights; each tuned module moved."""
    tuned = recipe(stage, size)["model"]["optimizer"]["trainable"]
    after = model.state_dict()
    for name, param in model.named_parameters():
        initial = before[name.replace(".base_layer", "")] if "lora_" not in name else None
        wanted = any(key in name for key in tuned) or "lora_" in name
        assert param.requires_grad == wanted, name
        if not wanted:
            assert torch.equal(after[name], initial), f"frozen {name} changed"
    names = [name for name, _ in model.named_parameters() if "lora_" not in name]
    for key in tuned:  # the 3B's lm_head is embed_tokens: it has no name of its own here
        moved = any(key in name and not torch.equal(after[name], before[name]) for name in names)
        assert moved or key == "lm_head", f"no parameter matching {key!r} was updated"
    if stage == 3:  # B starts at zero (peft), so a non-zero B has been trained
        assert any(after[n].abs().sum() > 0 for n, _ in model.named_parameters() if "lora_B" in n)


def check_stage_model(model: LitUniPixel, stage: int) -> None:
    groups = {group["name"]: group["initial_lr"] for group in model.trainer.optimizers[0].param_groups}
    assert groups == ({"sam2": 5e-6, "default": 2e-5} if stage == 3 else {"default": 1e-3})
    assert model.backbone.hf_model.is_gradient_checkpointing
    layers = lora_layers(model)
    if stage < 3:
        assert not layers
        return
    # Tiny backbone: 2 decoder layers x q/k/v/o + 2 ViT blocks x qkv/proj; SAM 2's q/k/v_proj are never adapted.
    assert len(layers) == 12 and all(name.startswith("backbone.") for name in layers)
    assert all(layer.r["default"] == 128 and layer.scaling["default"] == 2.0 for layer in layers.values())


@pytest.mark.parametrize("size", ["3b", "7b"])
def test_three_stages_chain_on_the_tiny_preset(size: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the recipes' relative paths (checkpoints/, runs/) land here
    stage0 = write_stage0(tmp_path / f"checkpoints/unipixel-{size}-stage0")
    before = stage0
    for stage in (1, 2, 3):
        model = fit_stage(stage, size)
        check_stage_model(model, stage)
        check_tuning(model, stage, size, before)
        checkpoint = torch.load(tmp_path / f"runs/stage{stage}-{size}/checkpoints/last.ckpt", weights_only=False)
        before = checkpoint["state_dict"]
        for buffer in FOURIER_BUFFERS:  # persisted by every stage, never re-drawn (MODEL.md §8.6)
            assert torch.equal(before[buffer], stage0[buffer]), buffer
