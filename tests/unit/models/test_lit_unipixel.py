"""``LitUniPixel``: composition, losses, gradients, bad-input errors, generation and full-size parameter counts."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unipixel_pl.config import OptimizerConfig, preset
from unipixel_pl.datamodules.synthetic import SyntheticDataModule
from unipixel_pl.models.backbone import BackboneOutput
from unipixel_pl.models.generation import greedy_generate
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.types import UniPixelBatch

# Qwen2.5-VL totals (derived from the shapes in tests/unit/models/test_backbone.py), SAM 2.1 Hiera-B+ (MODEL.md
# §5.3, checked in test_mask_decoder.py) and the UniPixel heads (MODEL.md §10: seg_head, ref_proj, msk_proj,
# ref_proj_single, ref_proj_double, tem_proj, tem_emb, ref_encoder).
QWEN = {"unipixel-3b": 3_754_622_976, "unipixel-7b": 8_292_166_656}
SAM2_B_PLUS = 80_850_178
HEADS = {
    "unipixel-3b": 5_247_488 + 3_147_776 + 36_707_328 + 393_984 + 590_592 + 197_376 + 256 + 6_220,
    "unipixel-7b": 14_687_744 + 5_508_608 + 44_573_184 + 393_984 + 590_592 + 197_376 + 256 + 6_220,
}


def tiny_model(**kwargs: object) -> LitUniPixel:
    torch.manual_seed(0)
    return LitUniPixel.from_preset("unipixel-tiny", **kwargs)


def batch_of(task: str, video_frames: int = 1, batch_size: int = 1) -> UniPixelBatch:
    data = SyntheticDataModule(tasks=[task], batch_size=batch_size, video_frames=video_frames, image_size=64)
    loader = data.train_dataloader()
    index = batch_size if video_frames > 1 else 0  # blocks alternate between images and videos
    return loader.collate_fn([loader.dataset[index + i] for i in range(batch_size)])


@pytest.mark.parametrize("name", ["unipixel-3b", "unipixel-7b"])
def test_full_size_parameter_counts_on_meta(name: str) -> None:
    with torch.device("meta"):
        model = LitUniPixel(preset(name))
        model.configure_model()
    total = sum(p.numel() for p in model.parameters())  # tied 3B embeddings are counted once
    assert sum(p.numel() for p in model.backbone.parameters()) == QWEN[name]
    assert sum(p.numel() for p in model.mask_decoder.parameters()) == SAM2_B_PLUS
    assert total == QWEN[name] + SAM2_B_PLUS + HEADS[name]


@pytest.mark.parametrize(("task", "frames"), [("seg", 1), ("seg", 3), ("mem_point", 1), ("region", 3)])
def test_forward_shapes_and_losses(task: str, frames: int) -> None:
    model, batch = tiny_model(), batch_of(task, frames, batch_size=2)
    output = model(batch)
    assert output.logits.shape == (*batch.input_ids.shape, model.config.backbone.vocab_size)
    assert torch.isfinite(output.loss) and torch.isfinite(output.lm_loss)
    has_masks = task in ("seg", "mem_point")
    assert (output.mask_loss is not None) == has_masks
    if has_masks:
        size = model.config.mask_decoder.image_size
        assert [tuple(m.shape) for m in output.mask_logits] == [(batch.sam_frames[0].shape[0], 1, size, size)] * 2
        assert torch.allclose(output.loss, output.lm_loss + output.mask_loss)


def grads(model: LitUniPixel) -> set[str]:
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_gradients_reach_the_parts_a_task_uses() -> None:
    model = tiny_model()
    model(batch_of("seg", 3)).loss.backward()
    touched = grads(model)
    for prefix in ("backbone.model.model.language_model", "backbone.model.model.visual", "pointer_head.seg_head"):
        assert any(n.startswith(prefix) for n in touched), prefix
    assert any(n.startswith("mask_decoder.sam2.image_encoder") for n in touched)
    assert not any(n.startswith("prompt_encoder") for n in touched)  # no <|ref|> or <|mem|> in this task

    model.zero_grad(set_to_none=True)
    model(batch_of("ref_box")).loss.backward()
    touched = grads(model)
    assert "prompt_encoder.ref_proj_double.weight" in touched
    assert not {"prompt_encoder.ref_proj_single.weight", "prompt_encoder.msk_proj.0.weight"} & touched
    assert not any(n.startswith(("pointer_head", "mask_decoder")) for n in touched)

    model.zero_grad(set_to_none=True)
    model(batch_of("region")).loss.backward()
    assert "prompt_encoder.msk_proj.0.weight" in grads(model)


def test_freezing_by_name_limits_gradients_and_optimizer_groups() -> None:
    optimizer = OptimizerConfig(lr=1e-3, trainable=["pointer_head", "mask_decoder"], module_lrs={"mask_decoder": 5e-6})
    model = tiny_model(optimizer=optimizer)
    model(batch_of("seg")).loss.backward()
    assert grads(model) and all(n.startswith(("pointer_head", "mask_decoder")) for n in grads(model))
    from unipixel_pl.models.optim import parameter_groups

    groups = {g["name"]: g for g in parameter_groups(model, optimizer)}
    assert groups["mask_decoder"]["lr"] == 5e-6 and groups["default"]["lr"] == 1e-3
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == trainable


def test_optimizer_config_typos_raise() -> None:
    with pytest.raises(ValueError, match="match no parameter: \\['pointer_haed'\\]"):
        tiny_model(optimizer=OptimizerConfig(trainable=["pointer_haed"]))
    from unipixel_pl.models.optim import parameter_groups

    with pytest.raises(ValueError, match="module_lrs keys match no trainable parameter"):
        parameter_groups(tiny_model(), OptimizerConfig(module_lrs={"sam3": 1e-5}))


def test_same_seed_gives_the_same_loss() -> None:
    batch = batch_of("mem_point", 3)
    assert torch.equal(tiny_model()(batch).loss, tiny_model()(batch).loss)


def test_seg_count_must_match_target_masks() -> None:
    batch = batch_of("seg")
    batch.frame_masks[0] = torch.cat([batch.frame_masks[0]] * 2, dim=1)
    with pytest.raises(ValueError, match="1 <\\|seg\\|> token\\(s\\) but 2 target mask object\\(s\\)"):
        tiny_model()(batch)


def test_mask_and_frame_shapes_must_agree() -> None:
    batch = batch_of("seg", 3)
    batch.frame_masks[0] = batch.frame_masks[0][:-1]
    with pytest.raises(ValueError, match="do not match frames"):
        tiny_model()(batch)


def test_ref_token_without_prompt_raises() -> None:
    batch = batch_of("ref_point")
    batch.prompts[0] = []
    with pytest.raises(ValueError, match="sample 0 has 1 <\\|ref\\|> token\\(s\\) but 0 visual prompt\\(s\\)"):
        tiny_model()(batch)


def test_mem_token_count_must_match_refer_mask() -> None:
    batch = batch_of("region")
    batch.refer_masks[0] = torch.cat([batch.refer_masks[0]] * 2, dim=1)
    with pytest.raises(ValueError, match="<\\|mem\\|> token\\(s\\) but its refer mask has 2 cell"):
        tiny_model()(batch)


def force_tokens(model: LitUniPixel, sequence: list[int]) -> None:
    """Make the backbone's argmax follow ``sequence``, one token per forward call (a forward hook)."""
    calls = iter(sequence)

    def hook(module: object, args: object, kwargs: object, output: BackboneOutput) -> BackboneOutput:
        logits = output.logits.clone()
        logits[:, -1, next(calls)] = 1e4
        return dataclasses.replace(output, logits=logits)

    model.backbone.register_forward_hook(hook, with_kwargs=True)


def test_generation_decodes_a_mask_per_prompt_and_generated_seg() -> None:
    model = tiny_model().eval()
    tokens = model.config.backbone.tokens
    batch = batch_of("seg", 3)  # the teacher-forced answer holds one <|seg|> already
    force_tokens(model, [tokens.seg, tokens.seg, tokens.im_end])
    output = greedy_generate(model, batch, 0, max_new_tokens=8)
    assert output.sequences.tolist() == [[tokens.seg, tokens.seg, tokens.im_end]]
    height, width = batch.frame_sizes[0]
    assert output.masks[0].shape == (3, 3, height, width) and output.masks[0].dtype == torch.bool


def test_generation_stops_at_the_token_budget() -> None:
    model = tiny_model().eval()
    output = greedy_generate(model, batch_of("ref_point"), 0, max_new_tokens=4)
    assert output.sequences.shape[1] <= 4
    assert output.masks == [None]  # no frames for SAM 2 in a captioning sample
