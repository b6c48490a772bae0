"""Mask decoder part: SAM 2.1 with hidden prompt tokens, tracking, inference, switches, sizes and weight loading."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from sam2.modeling.sam2_base import NO_OBJ_SCORE, SAM2Base

from unipixel_pl.checkpoints.hf_config import config_to_official
from unipixel_pl.checkpoints.sam2_yaml import parse_sam2_yaml
from unipixel_pl.config import LossConfig, preset
from unipixel_pl.models.mask_decoder import (
    FrameFeatures,
    MaskDecoder,
    reference_key_to_upstream,
    upstream_key_to_reference,
)
from unipixel_pl.models.mask_loss import sam2_mask_loss

S, HIDDEN = 128, 32
"""The tiny preset: SAM 2 input size and width."""


def _decoder(seed: int = 0, **changes: object) -> MaskDecoder:
    torch.manual_seed(seed)
    return MaskDecoder(dataclasses.replace(preset("unipixel-tiny").mask_decoder, **changes))


def _frames(num_frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(num_frames, 3, S, S, generator=torch.Generator().manual_seed(seed))


def _tokens(num_objects: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(num_objects, 2, HIDDEN, generator=torch.Generator().manual_seed(seed))


def _gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick ``values[..., index, :, :]`` per (frame, object)."""
    index = index[..., None, None, None].expand(-1, -1, 1, *values.shape[-2:])
    return values.gather(2, index)


def _set_object_scores(decoder: MaskDecoder, value: float) -> None:
    head = decoder.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(value)


@pytest.mark.parametrize("num_frames", [1, 4])
def test_forward_shapes_and_best_mask_choice(num_frames: int) -> None:
    decoder = _decoder()
    out = decoder(_frames(num_frames), _tokens(2))
    t = num_frames
    assert out.multimask_logits.shape == (t, 2, 3, S, S)
    assert out.ious.shape == (t, 2, 3)
    assert out.object_score_logits.shape == (t, 2, 1)
    assert out.low_res_masks.shape == (t, 2, 1, S // 4, S // 4)
    assert out.high_res_masks.shape == (t, 2, 1, S, S)
    best = out.ious.argmax(-1)
    torch.testing.assert_close(out.high_res_masks, _gather(out.multimask_logits, best), rtol=0, atol=0)
    upsampled = F.interpolate(out.low_res_masks.flatten(0, 1), size=(S, S), mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsampled.view_as(out.high_res_masks), out.high_res_masks)


def test_hidden_tokens_follow_two_not_a_point_pads_with_the_no_mask_embedding() -> None:
    decoder = _decoder().eval()
    sam2 = decoder.sam2
    features = torch.randn(2, HIDDEN, S // 16, S // 16)
    high_res = [torch.randn(2, HIDDEN // 8, S // 4, S // 4), torch.randn(2, HIDDEN // 4, S // 8, S // 8)]
    tokens = _tokens(2)
    with torch.no_grad():
        ours = sam2._forward_sam_heads(
            features, high_res_features=high_res, multimask_output=True, hidden_inputs=tokens
        )
        encoder = sam2.sam_prompt_encoder
        sparse = torch.cat([encoder.not_a_point_embed.weight.expand(2, 2, -1), tokens], dim=1)
        dense = encoder.no_mask_embed.weight.view(1, -1, 1, 1).expand(2, -1, S // 16, S // 16)
        low, ious, _, scores = sam2.sam_mask_decoder(
            features, encoder.get_dense_pe(), sparse, dense, True, False, high_res
        )
    low = torch.where(scores[:, :, None, None] > 0, low, NO_OBJ_SCORE)
    torch.testing.assert_close(ours[0], low)
    torch.testing.assert_close(ours[2], ious)
    torch.testing.assert_close(ours[6], scores)


def test_point_prompts_match_upstream_sam_heads() -> None:
    decoder = _decoder().eval()
    features = torch.randn(2, HIDDEN, S // 16, S // 16)
    high_res = [torch.randn(2, HIDDEN // 8, S // 4, S // 4), torch.randn(2, HIDDEN // 4, S // 8, S // 8)]
    points = {"point_coords": torch.tensor([[[30.0, 40.0]], [[90.0, 12.5]]]), "point_labels": torch.ones(2, 1).int()}
    with torch.no_grad():
        ours = decoder.sam2._forward_sam_heads(features, points, None, high_res, True)
        upstream = SAM2Base._forward_sam_heads(decoder.sam2, features, points, None, high_res, True)
    for mine, theirs in zip(ours, upstream, strict=True):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("num_frames", [1, 3])
def test_single_mask_switch_decodes_the_single_mask_token_on_every_frame(num_frames: int) -> None:
    multi, single = _decoder(), _decoder(multimask_output=False)
    assert multi.state_dict().keys() == single.state_dict().keys()  # same weights, only the decoding differs
    out = single(_frames(num_frames), _tokens(2))
    assert out.multimask_logits.shape == (num_frames, 2, 1, S, S)
    torch.testing.assert_close(out.high_res_masks, out.multimask_logits, rtol=0, atol=0)
    features = torch.randn(2, HIDDEN, S // 16, S // 16)
    high_res = [torch.randn(2, HIDDEN // 8, S // 4, S // 4), torch.randn(2, HIDDEN // 4, S // 8, S // 8)]
    _set_object_scores(single, 10.0)  # objects present: inference keeps the logits
    with torch.no_grad():
        heads = single.eval().sam2._forward_sam_heads(features, None, None, high_res, False, _tokens(2))
        masks, _, _, _ = single.sam2.sam_mask_decoder.predict_masks(
            image_embeddings=features,
            image_pe=single.sam2.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=single.sam2._encode_prompts(2, None, None, _tokens(2))[0],
            dense_prompt_embeddings=single.sam2._encode_prompts(2, None, None, _tokens(2))[1],
            repeat_image=False,
            high_res_features=high_res,
        )
    torch.testing.assert_close(heads[0], masks[:, :1])  # SAM's mask token 0, not one of the 3 multimask tokens


def test_official_config_refuses_a_single_mask_model() -> None:
    config = preset("unipixel-tiny")
    config = dataclasses.replace(config, mask_decoder=dataclasses.replace(config.mask_decoder, multimask_output=False))
    with pytest.raises(ValueError, match="multimask_output"):
        config_to_official(config)


def test_gradients_reach_prompt_tokens_and_sam2() -> None:
    decoder = _decoder().train()
    tokens = _tokens(2).requires_grad_()
    targets = torch.zeros(3, 2, S, S, dtype=torch.bool)
    targets[:, 0, 20:60, 30:90] = True
    decoder.loss(decoder(_frames(3), tokens), targets).backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0
    sam2 = decoder.sam2
    for name, param in [
        ("trunk patch embedding", sam2.image_encoder.trunk.patch_embed.proj.weight),
        ("mask tokens", sam2.sam_mask_decoder.mask_tokens.weight),
        ("memory encoder", sam2.memory_encoder.pix_feat_proj.weight),
        ("memory attention values", sam2.memory_attention.layers[0].cross_attn_image.v_proj.weight),
        ("object pointer projection", sam2.obj_ptr_proj.layers[0].weight),
    ]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def _memory_attention_grads(rope_grad: bool) -> tuple[dict[str, torch.Tensor | None], torch.Tensor]:
    decoder = _decoder(rope_grad=rope_grad).train()
    out = decoder(_frames(3), _tokens(2))
    out.multimask_logits.square().mean().backward()
    layer = decoder.sam2.memory_attention.layers[0]
    names = [f"{attention}.{proj}" for attention in ("self_attn", "cross_attn_image") for proj in ("q", "k", "v")]
    grads = {name: layer.get_submodule(f"{name}_proj").weight.grad for name in names}
    return grads, out.multimask_logits.detach()


def test_rope_grad_switch_reproduces_the_reference_no_grad_rotation() -> None:
    reference, reference_logits = _memory_attention_grads(rope_grad=False)
    assert reference["self_attn.q"] is None and reference["cross_attn_image.q"] is None
    assert reference["self_attn.k"] is not None and reference["self_attn.k"].abs().sum() == 0
    assert reference["cross_attn_image.k"].abs().sum() > 0  # object-pointer keys skip the rotation
    corrected, corrected_logits = _memory_attention_grads(rope_grad=True)
    for name, grad in corrected.items():
        assert grad is not None and grad.abs().sum() > 0, name
    torch.testing.assert_close(reference_logits, corrected_logits, rtol=0, atol=0)


def test_no_object_masking_only_at_inference_in_reference_mode() -> None:
    frames, tokens = _frames(2), _tokens(2)
    reference = _decoder(mask_no_object_in_training=False).train()
    _set_object_scores(reference, -5.0)
    assert not (reference(frames, tokens).multimask_logits == NO_OBJ_SCORE).all()
    features = reference.encode_frames(frames)
    with torch.no_grad():
        reference.eval()
        for out in reference.sam2.track(features, 2, hidden_inputs=tokens):
            assert (out["low_res_masks"] == NO_OBJ_SCORE).all()
        reference.train()
    assert not reference.segment(features, tokens, (40, 50)).any()
    upstream = _decoder(mask_no_object_in_training=True).train()
    _set_object_scores(upstream, -5.0)
    assert (upstream(frames, tokens).multimask_logits == NO_OBJ_SCORE).all()


def test_segment_thresholds_the_upsampled_best_low_res_mask() -> None:
    decoder = _decoder().train()
    decoder.sam2.image_encoder.eval()  # a frozen part in eval mode must stay so
    frames, tokens = _frames(3), _tokens(2)
    masks = decoder.segment(frames, tokens, (50, 70))
    assert masks.dtype == torch.bool and masks.shape == (2, 3, 50, 70)
    assert decoder.training and decoder.sam2.memory_attention.training
    assert not decoder.sam2.image_encoder.training
    with torch.no_grad():
        decoder.eval()
        decoder.sam2.mask_no_object_in_training = True  # forward keeps the loss rule; segment always masks
        low = decoder(frames, tokens).low_res_masks[:, :, 0].transpose(0, 1)  # (O, T, S/4, S/4)
    expected = F.interpolate(low, size=(50, 70), mode="bilinear", align_corners=False) > 0
    assert torch.equal(masks, expected)
    assert 0 < masks.sum() < masks.numel()


def test_cached_frame_features_give_identical_masks() -> None:
    decoder = _decoder()
    frames = _frames(3)
    features = decoder.encode_frames(frames)
    assert isinstance(features, FrameFeatures) and features.num_frames == 3
    first = decoder.segment(features, _tokens(1, seed=5), (33, 47))
    assert torch.equal(first, decoder.segment(frames, _tokens(1, seed=5), (33, 47)))
    assert torch.equal(decoder.segment(features, _tokens(1, seed=5), (33, 47)), first)
    assert decoder.segment(features, _tokens(0), (33, 47)).shape == (0, 3, 33, 47)


def test_segment_with_point_and_box_prompts() -> None:
    decoder = _decoder()
    frames = _frames(2)
    point = decoder.segment_with_prompts(frames, torch.tensor([[[64.0, 64.0]]]), torch.tensor([[1]]), (60, 80))
    box = decoder.segment_with_prompts(
        frames, torch.tensor([[[10.0, 20.0], [100.0, 90.0]]]), torch.tensor([[2, 3]]), (60, 80)
    )
    assert point.shape == box.shape == (1, 2, 60, 80) and point.dtype == box.dtype == torch.bool
    assert not torch.equal(point, box)
    with pytest.raises(ValueError, match="point_labels"):
        decoder.segment_with_prompts(frames, torch.zeros(1, 2, 2), torch.zeros(1, 3), (60, 80))


def test_old_memories_are_dropped_without_changing_long_videos(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = _decoder(num_maskmem=3, max_obj_ptrs_in_encoder=4).eval()
    features, tokens = decoder.encode_frames(_frames(9)), _tokens(1)
    with torch.no_grad():
        pruned = [out["low_res_masks"] for out in decoder.sam2.track(features, 1, hidden_inputs=tokens)]
        monkeypatch.setattr(decoder.sam2, "_forget_unreachable", lambda frames, index: None)
        kept = [out["low_res_masks"] for out in decoder.sam2.track(features, 1, hidden_inputs=tokens)]
    torch.testing.assert_close(torch.stack(pruned), torch.stack(kept), rtol=0, atol=0)


def test_bad_inputs_name_the_expected_shapes() -> None:
    decoder = _decoder()
    with pytest.raises(ValueError, match=r"\(T, 3, 128, 128\)"):
        decoder(torch.zeros(1, 3, 64, 64), _tokens(1))
    with pytest.raises(ValueError, match=r"\(O, 2, 32\)"):
        decoder(_frames(1), torch.zeros(1, 3, HIDDEN))


def test_part_properties() -> None:
    decoder = _decoder()
    assert decoder.prompt_encoder is decoder.sam2.sam_prompt_encoder
    assert (decoder.hidden_dim, decoder.image_size) == (HIDDEN, S)


def test_hiera_b_plus_at_768_has_the_published_size() -> None:
    with torch.device("meta"):
        decoder = MaskDecoder(preset("unipixel-3b").mask_decoder)
    assert sum(p.numel() for p in decoder.parameters()) == 80_850_178
    state = decoder.sam2.state_dict()
    assert len(state) == 615
    assert [name for name, _ in decoder.sam2.named_buffers()] == [
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    ]
    reference_names = {upstream_key_to_reference(key) for key in state}
    assert {"memory_encoder.fuser.layers.0.weight", "memory_encoder.fuser.layers.1.weight"} <= reference_names
    assert not any(key.endswith("gamma") for key in reference_names)


def test_gamma_key_mapping_round_trips_and_touches_nothing_else() -> None:
    assert upstream_key_to_reference("memory_encoder.fuser.layers.1.gamma") == "memory_encoder.fuser.layers.1.weight"
    assert reference_key_to_upstream("sam2.memory_encoder.fuser.layers.0.weight") == (
        "sam2.memory_encoder.fuser.layers.0.gamma"
    )
    for key in ("memory_encoder.fuser.layers.0.dwconv.weight", "sam_mask_decoder.iou_token.weight"):
        assert reference_key_to_upstream(key) == upstream_key_to_reference(key) == key
    for key in _decoder().sam2.state_dict():
        assert reference_key_to_upstream(upstream_key_to_reference(key)) == key


def test_load_sam2_checkpoint_round_trip_and_key_errors(tmp_path: Path) -> None:
    source = _decoder(seed=1).sam2.state_dict()
    path = tmp_path / "sam2.pt"
    torch.save({"model": source}, path)
    target = _decoder(seed=2)
    target.load_sam2_checkpoint(path)
    for key, value in target.sam2.state_dict().items():
        assert torch.equal(value, source[key]), key

    torch.save({"model": {upstream_key_to_reference(k): v for k, v in source.items()}}, path)
    _decoder(seed=3).load_sam2_checkpoint(path)

    torch.save({"model": {k: v for k, v in source.items() if k != "no_obj_ptr"}}, path)
    with pytest.raises(KeyError, match="missing \\['no_obj_ptr'\\]"):
        target.load_sam2_checkpoint(path)
    torch.save({"model": {**source, "extra.weight": torch.zeros(1)}}, path)
    with pytest.raises(KeyError, match="unexpected \\['extra.weight'\\]"):
        target.load_sam2_checkpoint(path)
    torch.save(source, path)
    with pytest.raises(KeyError, match="no 'model' entry"):
        target.load_sam2_checkpoint(path)


def _parity_decoder(checkpoint: Path) -> MaskDecoder:
    """The fixture's tiny SAM 2 (checkpoint/configs/sam2.1_hiera_tiny_parity_b.yaml) in reference mode."""
    yaml_path = checkpoint / "configs" / "sam2.1_hiera_tiny_parity_b.yaml"
    parsed = parse_sam2_yaml(yaml.safe_load(yaml_path.read_text()), image_size=96)
    config = dataclasses.replace(parsed, rope_grad=False, mask_no_object_in_training=False)
    decoder = MaskDecoder(config)
    weights = load_file(checkpoint / "model.safetensors")
    state = {reference_key_to_upstream(k.removeprefix("sam2.")): v.float() for k, v in weights.items() if "sam2." in k}
    decoder.sam2.load_state_dict(state)
    return decoder


CASES = [("a_image_seg", "image"), ("b_video_seg", "video"), ("c_video_ref_seg", "video")]


def test_matches_the_reference_implementation(reference_tiny: Path) -> None:
    """Official outputs for the same prompt tokens: training multimasks and loss terms, inference masks."""
    decoder = _parity_decoder(reference_tiny / "checkpoint")
    inputs, outputs = (
        load_file(reference_tiny / "inputs.safetensors"),
        load_file(reference_tiny / "outputs.safetensors"),
    )
    seg_id = 403
    for case, media in CASES:
        frames = inputs[f"media.{media}.sam2_frames"]
        size = tuple(inputs[f"media.{media}.frame_size"].tolist())
        positions = torch.where(inputs[f"{case}.eval.input_ids"][0, 1:] == seg_id)[0]
        tokens = outputs[f"{case}.eval.seg_head_out"][0, positions].reshape(len(positions), 2, 32)
        targets = inputs[f"{case}.train.label_mask.0"]
        with torch.no_grad():
            out = decoder.train()(frames, tokens)
        low = outputs[f"{case}.train.sam2_lowres_multimasks"]
        high = F.interpolate(low.flatten(0, 1), size=(96, 96), mode="bilinear", align_corners=False)
        torch.testing.assert_close(out.multimask_logits, high.view_as(out.multimask_logits), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out.ious, outputs[f"{case}.train.sam2_ious"], rtol=1e-4, atol=1e-4)
        terms = sam2_mask_loss(out.multimask_logits, out.ious, out.object_score_logits, targets, LossConfig(), 1.0)
        for name, key in [("focal", "mask"), ("dice", "dice"), ("iou", "iou"), ("object_score", "class")]:
            expected = outputs[f"{case}.train.loss_seg_parts.loss_{key}"].item() * targets.shape[1]
            assert getattr(terms, name).item() == pytest.approx(expected, rel=1e-5, abs=1e-5), (case, name)
        loss = decoder.loss(out, targets).item()
        assert loss == pytest.approx(outputs[f"{case}.train.loss_seg"].item(), rel=1e-5), case
        masks = decoder.segment(frames, tokens, size)
        for k in range(len(positions)):
            logits = outputs[f"{case}.eval.seg_mask_logits.{k}"][0]
            decided = logits.abs() > 1e-3
            assert torch.equal(masks[k][decided], (logits > 0)[decided]), (case, k)


def test_inference_suppresses_absent_objects_like_the_reference(reference_tiny: Path) -> None:
    """The first generated ``<|seg|>`` of the video cases: its object score is negative on frame 0 (-1024 there)."""
    decoder = _parity_decoder(reference_tiny / "checkpoint")
    inputs, outputs = (
        load_file(reference_tiny / "inputs.safetensors"),
        load_file(reference_tiny / "outputs.safetensors"),
    )
    for case in ("b_video_seg", "c_video_ref_seg"):
        prompt_length = inputs[f"{case}.gen.input_ids"].shape[1]
        tokens = outputs[f"{case}.eval.seg_head_out"][0, prompt_length - 1].reshape(1, 2, 32)
        logits = outputs[f"{case}.gen.seg_mask_logits.0"][0]
        assert (logits[0] == NO_OBJ_SCORE).all()
        masks = decoder.segment(inputs["media.video.sam2_frames"], tokens, tuple(logits.shape[-2:]))[0]
        decided = logits.abs() > 1e-3
        assert torch.equal(masks[decided], (logits > 0)[decided]), case


def test_eval_mode_forward_keeps_the_training_no_object_rule() -> None:
    """A teacher-forced validation loss must not see the inference-only -1024 replacement."""
    torch.manual_seed(0)
    decoder = MaskDecoder(preset("unipixel-tiny").mask_decoder)
    frames, tokens = torch.randn(2, 3, 128, 128), torch.randn(1, 2, 32)
    decoder.train()
    train_logits = decoder(frames, tokens).multimask_logits
    decoder.eval()
    eval_logits = decoder(frames, tokens).multimask_logits
    assert eval_logits.min() > -1024 and train_logits.min() > -1024
    assert not decoder.sam2.decoding_for_loss
