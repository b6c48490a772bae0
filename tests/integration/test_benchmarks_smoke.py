"""CI-sized runs of the benchmarks on the tiny preset (CPU), and the FLOP model they report against a counter."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from benchmarks import run_all
from benchmarks.batches import make_batch, remap_token_ids, tiny_token_ids, visual_tokens
from benchmarks.flops import Training, count_flops, grids_of, llm_flops, vision_flops, vision_window_lengths
from benchmarks.recipes import apply_recipe, recipe_training
from unipixel_pl.config import TokenIds, VisionConfig, preset
from unipixel_pl.models.lit_unipixel import LitUniPixel


def test_cpu_smoke_profile_runs_every_benchmark(tmp_path, capsys):
    reports = run_all.main(["--profile", "cpu-smoke", "--out", str(tmp_path)])

    assert set(reports) == {"ceilings", "train-tiny", "inference-tiny", "sam2-tiny"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved) == set(reports)
    train = saved["train-tiny"]["results"]
    assert [(r["recipe"], r["sample"], r["checkpointing"], r["status"]) for r in train] == [
        ("stage3", "video", True, "ok")
    ]
    record = train[0]
    assert record["samples_per_s"] == pytest.approx(1 / record["median_s"])
    assert record["mfu"] is None  # no datasheet peak for a CPU
    assert record["flops"]["counted_total"] == pytest.approx(record["model_tflop_per_step"] * 1e12)
    assert set(record["phases"]) == {"vision_forward_ms", "llm_forward_ms", "sam2_forward_ms", "step_ms"}
    query = saved["inference-tiny"]["results"][0]
    assert query["total_ms"] == pytest.approx(query["prefill_ms"] + query["decode_ms"] + query["mask_ms"])
    sam2 = saved["sam2-tiny"]
    assert sam2["clip"]["end_to_end_fps"] < min(sam2["clip"]["encode_fps"], sam2["clip"]["propagate_fps"])
    assert [record["status"] for record in sam2["long_video"]] == ["ok", "ok"]
    printed = capsys.readouterr().out
    assert "[train-tiny] cpu status: ok" in printed and "unipixel-tiny stage3 video B=1 ckpt=on" in printed


@pytest.mark.parametrize("recipe", ["full", "stage3"])
def test_analytic_llm_and_vit_flops_equal_the_counted_ones(recipe):
    torch.manual_seed(0)
    config = preset("unipixel-tiny")
    model = LitUniPixel(config)
    model.configure_model()
    apply_recipe(model, recipe)
    batch = make_batch(config, 2, 56, 56, batch_size=2)

    def backbone_step() -> None:
        model.run_backbone(batch).logits.float().sum().backward()

    training = recipe_training(recipe)
    lengths = [batch.input_ids.shape[1]] * batch.batch_size
    analytic = llm_flops(config.backbone, lengths, training)
    analytic += vision_flops(
        config.backbone.vision, config.backbone.hidden_size, grids_of(batch.video_grid_thw), training
    )
    assert count_flops(backbone_step) == analytic


def test_linear_flops_follow_six_n_per_token_for_a_trained_llm():
    config = preset("unipixel-tiny").backbone
    no_attention = dataclasses.replace(config, num_hidden_layers=0)  # only the LM head remains
    head = llm_flops(no_attention, [10], Training())
    assert head == 6 * 10 * config.hidden_size * config.vocab_size
    assert llm_flops(no_attention, [10], Training(embeddings=False)) == 4 * 10 * config.hidden_size * config.vocab_size


def test_vision_windows_tile_every_patch_of_each_frame_pair():
    vision = VisionConfig()  # 112 px windows: 4 x 4 merged tokens, 8 x 8 patches
    lengths = vision_window_lengths([2, 90, 90], vision)
    assert sum(lengths) == 2 * 90 * 90
    assert len(lengths) == 2 * 12 * 12 and max(lengths) == 64 and min(lengths) == 4  # 45 merged = 11 * 4 + 1


def test_reference_image_and_video_sizes():
    config = preset("unipixel-3b")
    image = make_batch(config, 1, 1260, 1260)
    assert image.video_grid_thw.tolist() == [[1, 90, 90]] and visual_tokens(image) == 2025
    assert int((image.input_ids == config.backbone.tokens.video).sum()) == 2025
    assert int((image.input_ids == config.backbone.tokens.seg).sum()) == 1


def test_remap_shifts_special_ids_only():
    batch = make_batch(preset("unipixel-tiny"), 1, 56, 56)
    source, target = tiny_token_ids(), TokenIds()
    moved = remap_token_ids(batch, source, target)
    special = batch.input_ids >= source.endoftext
    assert torch.equal(moved.input_ids[special], batch.input_ids[special] + target.endoftext - source.endoftext)
    assert torch.equal(moved.input_ids[~special], batch.input_ids[~special])
    assert torch.equal(moved.labels == -100, batch.labels == -100)
    with pytest.raises(ValueError, match="are not"):
        remap_token_ids(batch, source, dataclasses.replace(target, seg=target.seg + 1))


def test_stage3_recipe_trains_adapters_and_heads_only():
    model = LitUniPixel(preset("unipixel-tiny"))
    model.configure_model()
    counts = apply_recipe(model, "stage3")
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert counts["lora_modules"] == 2 * 4 + 2 * 2  # tiny: 2 LLM layers x q/k/v/o, 2 ViT blocks x qkv/proj
    assert all("base_layer" not in name and ".mlp." not in name for name in trainable if "backbone" in name)
    assert any("mask_decoder.sam2.image_encoder" in name for name in trainable)
    assert counts["trainable"] == sum(model.get_parameter(name).numel() for name in trainable)
