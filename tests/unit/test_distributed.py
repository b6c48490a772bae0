"""The FSDP2 plan (unipixel_pl/distributed.py), applied in one process over a one-rank gloo group."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy

from unipixel_pl.config import LoraConfig, preset
from unipixel_pl.datamodules.synthetic import SyntheticDataModule
from unipixel_pl.distributed import FSDP2Strategy, mixed_precision_policy, shard_model, sharded_units
from unipixel_pl.models.lit_unipixel import LitUniPixel


@pytest.fixture
def one_rank_group(tmp_path: Path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield init_device_mesh("cpu", (1,))
    dist.destroy_process_group()


def tiny(tied: bool = True, lora: LoraConfig | None = None) -> LitUniPixel:
    config = preset("unipixel-tiny")
    config.backbone.tie_word_embeddings = tied
    torch.manual_seed(0)
    model = LitUniPixel(config, lora=lora)
    model.configure_model()
    return model


def test_precision_maps_to_a_policy() -> None:
    assert mixed_precision_policy("bf16-mixed") == MixedPrecisionPolicy(torch.bfloat16, torch.float32)
    assert mixed_precision_policy("32-true") == MixedPrecisionPolicy()
    with pytest.raises(ValueError, match="not '16-mixed'"):
        mixed_precision_policy("16-mixed")


@pytest.mark.parametrize("tied", [True, False])
def test_units_are_blocks_layers_vision_and_embeddings(tied: bool) -> None:
    model = tiny(tied)
    hf = model.backbone.hf_model.model
    units = sharded_units(model)
    expected = [*hf.visual.blocks, hf.visual, *hf.language_model.layers]
    assert units[: len(expected)] == expected
    embed, head = hf.language_model.embed_tokens, model.backbone.hf_model.lm_head
    assert units[len(expected) :] == ([[embed, head]] if tied else [embed, head])


def test_sharded_model_trains_like_the_plain_one(one_rank_group) -> None:
    batch = next(iter(SyntheticDataModule(tasks=["mem_point"], image_size=64).train_dataloader()))
    reference, sharded = tiny(lora=LoraConfig(r=4, dropout=0.0)), tiny(lora=LoraConfig(r=4, dropout=0.0))
    shard_model(sharded, one_rank_group, "32-true")
    hf = sharded.backbone.hf_model
    assert all(isinstance(layer, FSDPModule) for layer in [*hf.model.language_model.layers, *hf.model.visual.blocks])
    assert isinstance(sharded, FSDPModule) and hf.lm_head.weight is hf.model.language_model.embed_tokens.weight
    losses = []
    for model in (reference, sharded):
        model.log = lambda *args, **kwargs: None  # no Trainer attached
        loss = model.training_step(batch, 0)  # a registered FSDP forward method: gathers the root unit
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        losses.append((loss.detach(), grads))
    torch.testing.assert_close(losses[1][0], losses[0][0])
    assert losses[1][1].keys() == losses[0][1].keys()
    for name, grad in losses[0][1].items():
        torch.testing.assert_close(losses[1][1][name].full_tensor(), grad, msg=name)


def test_strategy_auto_sizes_are_pure_data_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    monkeypatch.setattr(
        ModelParallelStrategy,
        "setup_environment",
        lambda self: seen.update(dp=self._data_parallel_size, tp=self._tensor_parallel_size),
    )
    strategy = FSDP2Strategy()
    strategy.parallel_devices = [torch.device("cpu")] * 4
    strategy.num_nodes = 2
    strategy.setup_environment()
    assert seen == {"dp": 8, "tp": 1}
