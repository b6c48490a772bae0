"""Frozen modules run in eval mode during training (``optimizer.frozen_modules_eval``, MODEL.md §11 #11)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from transformers.modeling_layers import GradientCheckpointingLayer

from tests.unit.models.test_lit_unipixel import batch_of
from unipixel_pl.config import OptimizerConfig, UniPixelConfig, preset
from unipixel_pl.datamodules.synthetic import SyntheticDataModule
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.models.optim import eval_frozen_modules, frozen_submodules

STAGE1 = ["ref_proj", "tem_emb", "tem_proj"]
STAGE2 = ["seg_head"]
"""What the reference's stages 1 and 2 train (MODEL.md §8.1): SAM 2 is frozen in both."""


def frozen(layer: nn.Module) -> nn.Module:
    return layer.requires_grad_(False)


def tiny_config(sam2_dropout: float = 0.0, gradient_checkpointing: bool = False) -> UniPixelConfig:
    config = preset("unipixel-tiny")
    config.mask_decoder.dropout = config.mask_decoder.drop_path_rate = sam2_dropout
    config.backbone.gradient_checkpointing = gradient_checkpointing
    return config


def staged_model(config: UniPixelConfig, trainable: list[str], frozen_eval: bool) -> LitUniPixel:
    torch.manual_seed(0)
    optimizer = OptimizerConfig(lr=1e-3, trainable=trainable, frozen_modules_eval=frozen_eval)
    model = LitUniPixel(config, optimizer=optimizer)
    model.configure_model()
    return model.train()


def decode(model: LitUniPixel) -> dict[str, Tensor]:
    """The mask decoder's training forward on fixed 3-frame input (memory attention runs on frames 1 and 2)."""
    cfg = model.config.mask_decoder
    generator = torch.Generator().manual_seed(1)
    frames = torch.randn(3, 3, cfg.image_size, cfg.image_size, generator=generator)
    tokens = torch.randn(2, cfg.prompt_tokens, cfg.hidden_dim, generator=generator)
    with torch.no_grad():
        return vars(model.mask_decoder(frames, tokens))


def test_frozen_submodules_are_the_largest_wholly_frozen_ones() -> None:
    trained = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    still = nn.Sequential(frozen(nn.Linear(2, 2)), nn.Dropout(0.5))
    mixed = nn.Sequential(frozen(nn.Linear(2, 2)), nn.Linear(2, 2))
    model = nn.Sequential(trained, still, mixed, nn.Dropout(0.5))
    assert frozen_submodules(model) == [still, mixed[0]]
    eval_frozen_modules(model)
    # a dropout has no parameters: it follows its parent (train beside trained layers, eval inside `still`)
    modes = [module.training for module in (model, trained, trained[1], still, still[1], mixed, mixed[0], model[3])]
    assert modes == [True, True, True, False, False, True, False, True]
    assert frozen_submodules(frozen(nn.Sequential(nn.Linear(2, 2)))) != []
    assert frozen_submodules(nn.Sequential(nn.Dropout(0.5))) == []


@pytest.mark.parametrize("frozen_eval", [True, False], ids=["corrected", "reference"])
def test_frozen_sam2_drops_out_only_in_the_reference_mode(frozen_eval: bool) -> None:
    model = staged_model(tiny_config(sam2_dropout=0.5), STAGE2, frozen_eval)
    first, second = decode(model)["multimask_logits"], decode(model)["multimask_logits"]
    assert torch.equal(first, second) == frozen_eval
    assert all(module.training != frozen_eval for module in model.mask_decoder.modules())
    assert model.training and all(module.training for module in model.pointer_head.modules())


def test_eval_mode_of_a_frozen_sam2_changes_nothing_but_dropout() -> None:
    """SAM 2's tracking also reads ``training`` (memory stride, pointer selection, NO_OBJ rule): none may change."""
    corrected = decode(staged_model(tiny_config(), STAGE2, frozen_eval=True))
    reference = decode(staged_model(tiny_config(), STAGE2, frozen_eval=False))
    assert corrected.keys() == reference.keys()
    assert all(torch.equal(corrected[name], reference[name]) for name in corrected)


def test_eval_and_train_switch_back_and_forth() -> None:
    model = staged_model(tiny_config(), STAGE2, frozen_eval=True)
    assert not any(module.training for module in model.eval().modules())
    model.train()
    assert model.pointer_head.training and not model.mask_decoder.training


def test_frozen_checkpointed_layers_still_checkpoint() -> None:
    """Stage 1's gradient runs through the frozen LLM to the <|ref|> rows: its layers must recompute, not store."""
    model = staged_model(tiny_config(gradient_checkpointing=True), STAGE1, frozen_eval=True)
    layers = [module for module in model.backbone.modules() if isinstance(module, GradientCheckpointingLayer)]
    assert len(layers) == 4 and all(layer.training for layer in layers)
    assert not any(inner.training for layer in layers for inner in layer.modules() if inner is not layer)
    assert not model.mask_decoder.training and model.prompt_encoder.ref_proj.training
    calls: list[None] = []
    model.backbone.hf_model.model.language_model.layers[0].mlp.register_forward_pre_hook(lambda *_: calls.append(None))
    model(batch_of("ref_point")).loss.backward()
    assert len(calls) == 2  # the forward and its replay in the backward pass (in eval mode it would not replay)
    assert model.prompt_encoder.ref_proj[1].weight.grad.abs().sum() > 0


class ModeRecorder(L.Callback):
    """Records, at every training and validation batch, which parts are in train mode."""

    def __init__(self) -> None:
        self.train_modes: list[tuple[bool, bool]] = []
        self.validation_modes: list[bool] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: object) -> None:
        self.train_modes.append((pl_module.pointer_head.training, pl_module.mask_decoder.training))

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: object) -> None:
        self.validation_modes.append(any(module.training for module in pl_module.modules()))


def test_frozen_modules_stay_in_eval_mode_across_validation_loops() -> None:
    model = LitUniPixel(tiny_config(), optimizer=OptimizerConfig(lr=1e-3, trainable=STAGE2))
    data = SyntheticDataModule(tasks=["seg"], train_samples=6, val_samples=2, batch_size=2, image_size=64)
    recorder = ModeRecorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        val_check_interval=1,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(model, data)
    assert recorder.train_modes == [(True, False)] * 3  # the steps after each validation loop included
    assert recorder.validation_modes == [False] * 4  # the sanity check and one loop after each step
