"""LoRA (unipixel_pl/models/lora.py): targets, counts, merge-and-unload, adapter-only checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from unipixel_pl.config import LoraConfig, OptimizerConfig, preset
from unipixel_pl.datamodules.synthetic import SyntheticDataModule
from unipixel_pl.models.backbone import Backbone
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.models.lora import (
    inject_lora,
    lora_layers,
    lora_state_dict,
    merge_and_unload,
    merge_lora_state,
    save_adapter,
)

SMALL = LoraConfig(r=4, alpha=8.0, dropout=0.0)


def tiny_model(lora: LoraConfig | None = SMALL, seed: int = 0) -> LitUniPixel:
    torch.manual_seed(seed)
    return LitUniPixel.from_preset("unipixel-tiny", lora=lora).eval()


def randomise_b(model: nn.Module, seed: int = 1) -> None:
    """peft starts B at zero (the adapter is a no-op); give it values so merging has something to merge."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


@pytest.fixture(scope="module")
def batch():
    return next(iter(SyntheticDataModule(tasks=["mem_point"], image_size=64).train_dataloader()))


@pytest.mark.parametrize(
    ("name", "modules", "parameters"), [("unipixel-3b", 208, 90_439_680), ("unipixel-7b", 176, 112_197_632)]
)
def test_reference_counts_of_adapted_layers_and_parameters(name: str, modules: int, parameters: int) -> None:
    """MODEL.md §8.3: qkvo_all at r 128 adapts 208 (3B) / 176 (7B) layers holding 90.4 M / 112.2 M parameters."""
    with torch.device("meta"):
        backbone = Backbone(preset(name).backbone)
        backbone.configure_model()
        names = inject_lora(backbone.hf_model, LoraConfig())
    assert len(names) == modules
    assert sum(p.numel() for n, p in backbone.named_parameters() if "lora_" in n) == parameters


def test_only_backbone_attention_is_adapted_never_sam2() -> None:
    model = tiny_model()
    layers = lora_layers(model)
    suffixes = ("q_proj", "k_proj", "v_proj", "o_proj", "attn.qkv", "attn.proj")
    assert len(layers) == 12 and all(n.startswith("backbone.") and n.endswith(suffixes) for n in layers)
    sam2_projections = [n for n, m in model.mask_decoder.named_modules() if n.endswith("q_proj")]
    assert sam2_projections and all(
        isinstance(model.mask_decoder.get_submodule(n), nn.Linear) for n in sam2_projections
    )
    assert all(layer.scaling["default"] == 2.0 for layer in layers.values())


def test_lora_trains_with_the_listed_modules_and_freezes_the_base() -> None:
    torch.manual_seed(0)
    model = LitUniPixel.from_preset("unipixel-tiny", lora=SMALL, optimizer=OptimizerConfig(trainable=["seg_head"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if "lora_" in n or "seg_head" in n}


def test_unknown_target_is_rejected() -> None:
    backbone = tiny_model(lora=None).backbone.hf_model
    with pytest.raises(ValueError, match=r"lora.targets \['qkv_proj'\] match no Linear layer"):
        inject_lora(backbone, LoraConfig(targets=["qkv_proj"]))


def test_merge_and_unload_gives_the_unmerged_outputs_and_the_plain_names(batch) -> None:
    plain_keys = set(tiny_model(lora=None).state_dict())
    model = tiny_model()
    randomise_b(model)
    with torch.no_grad():
        unmerged = model(batch)
        assert merge_and_unload(model) == 12
        merged = model(batch)
    assert not lora_layers(model) and set(model.state_dict()) == plain_keys
    torch.testing.assert_close(merged.logits, unmerged.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(merged.loss, unmerged.loss, rtol=1e-6, atol=1e-6)


def test_merged_weight_is_base_plus_scaled_product() -> None:
    model = tiny_model()
    randomise_b(model)
    layer = model.backbone.hf_model.model.language_model.layers[0].self_attn.q_proj
    down, up = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected = layer.base_layer.weight + (SMALL.alpha / SMALL.r) * up @ down
    state = model.state_dict()
    merge_and_unload(model)
    merged = model.backbone.hf_model.model.language_model.layers[0].self_attn.q_proj.weight
    torch.testing.assert_close(merged, expected)
    # The state-dict merge (for checkpoints, no model needed) agrees with the module merge.
    offline = merge_lora_state(state, SMALL.alpha / SMALL.r)
    assert offline.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(offline[key], value, rtol=0, atol=1e-6)


def test_adapter_only_checkpoint_round_trips(batch, tmp_path: Path) -> None:
    trained = tiny_model()
    randomise_b(trained)
    path = tmp_path / "adapter.safetensors"
    save_adapter(trained.backbone.hf_model, path)  # keys relative to the transformers model
    assert set(lora_state_dict(trained)) == {k for k in trained.state_dict() if "lora_" in k}
    # Same base weights (same seed), fresh adapters replaced by the adapter-only file named in the config.
    restored = tiny_model(lora=LoraConfig(r=4, alpha=8.0, dropout=0.0, adapter=str(path)))
    assert lora_state_dict(restored).keys() == lora_state_dict(trained).keys()
    for key, value in lora_state_dict(trained).items():
        assert torch.equal(restored.state_dict()[key], value), key
    with torch.no_grad():
        torch.testing.assert_close(restored(batch).logits, trained(batch).logits, rtol=0, atol=0)


def test_adapter_of_other_targets_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "adapter.safetensors"
    save_adapter(tiny_model().backbone.hf_model, path)
    more_targets = [*SMALL.targets, "gate_proj"]
    with pytest.raises(KeyError, match="adapter checkpoint does not fit the model: missing"):
        tiny_model(lora=LoraConfig(r=4, alpha=8.0, targets=more_targets, adapter=str(path)))
