"""SAM 2 mask loss: the maths of MODEL.md §6.2 against a plain per-frame, per-object, per-mask loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist

from unipixel_pl.config import LossConfig, preset
from unipixel_pl.models.mask_decoder import MaskDecoder, MaskDecoderOutput
from unipixel_pl.models.mask_loss import object_normaliser, sam2_mask_loss

T, N, M, S = 2, 3, 3, 6
"""Frames, objects, candidate masks per object, mask side."""


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _loop_loss(logits, ious, scores, targets, config: LossConfig, normaliser: float) -> dict[str, float]:
    """The reference maths written out element by element, in float64."""
    sums = {"focal": 0.0, "dice": 0.0, "iou": 0.0, "object_score": 0.0}
    for t in range(logits.shape[0]):
        for o in range(logits.shape[1]):
            y = targets[t, o].flatten().double().tolist()
            present = float(any(v > 0 for v in y))
            per_mask = []
            for m in range(logits.shape[2]):
                z = logits[t, o, m].flatten().double().tolist()
                focal = dice_num = prob_sum = inter = union = 0.0
                for zi, yi in zip(z, y, strict=True):
                    p = _sigmoid(zi)
                    bce = -(yi * math.log(p) + (1 - yi) * math.log(1 - p))
                    p_t = p * yi + (1 - p) * (1 - yi)
                    alpha = config.focal_alpha
                    alpha_t = alpha * yi + (1 - alpha) * (1 - yi) if alpha >= 0 else 1.0  # alpha < 0: no weighting
                    focal += alpha_t * (1 - p_t) ** config.focal_gamma * bce
                    dice_num += p * yi
                    prob_sum += p
                    inter += float(zi > 0 and yi > 0)
                    union += float(zi > 0 or yi > 0)
                focal /= len(z)
                dice = 1 - (2 * dice_num + 1) / (prob_sum + sum(y) + 1)
                iou_err = abs(float(ious[t, o, m]) - inter / max(union, 1.0))
                per_mask.append((focal, dice, iou_err))
            best = min(range(len(per_mask)), key=lambda m: config.focal * per_mask[m][0] + config.dice * per_mask[m][1])
            s = float(scores[t, o, 0])
            p = _sigmoid(s)
            sums["focal"] += present * per_mask[best][0] / normaliser
            sums["dice"] += present * per_mask[best][1] / normaliser
            sums["iou"] += present * sum(e[2] for e in per_mask) / len(per_mask) / normaliser
            sums["object_score"] += -(present * math.log(p) + (1 - present) * math.log(1 - p)) / normaliser
    weights = {"focal": config.focal, "dice": config.dice, "iou": config.iou, "object_score": config.object_score}
    sums["total"] = sum(weights[k] * sums[k] for k in weights)
    return sums


def _inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, M, S, S, generator=generator) * 3
    ious = torch.rand(T, N, M, generator=generator)
    scores = torch.randn(T, N, 1, generator=generator)
    targets = torch.rand(T, N, S, S, generator=generator) > 0.6
    targets[1, 2] = False  # an object absent from one frame
    return logits, ious, scores, targets


def test_terms_match_an_elementwise_recomputation() -> None:
    config = LossConfig(focal=100.0, dice=5.0, iou=5.0, object_score=5.0, focal_alpha=0.25, focal_gamma=2.0)
    logits, ious, scores, targets = _inputs()
    terms = sam2_mask_loss(logits, ious, scores, targets, config, normaliser=3.0)
    expected = _loop_loss(logits, ious, scores, targets, config, normaliser=3.0)
    for name, value in expected.items():
        assert getattr(terms, name).item() == pytest.approx(value, rel=1e-5), name


def test_other_weights_change_the_best_mask_choice_like_the_loop() -> None:
    config = LossConfig(focal=1.0, dice=50.0, iou=2.0, object_score=0.5, focal_alpha=-1.0, focal_gamma=0.0)
    logits, ious, scores, targets = _inputs(seed=3)
    terms = sam2_mask_loss(logits, ious, scores, targets, config, normaliser=1.0)
    expected = _loop_loss(logits, ious, scores, targets, config, normaliser=1.0)
    for name, value in expected.items():
        assert getattr(terms, name).item() == pytest.approx(value, rel=1e-5), name


def test_the_supervised_mask_is_the_one_closest_to_the_target() -> None:
    targets = torch.zeros(1, 1, S, S, dtype=torch.bool)
    targets[..., :3, :] = True
    perfect = torch.where(targets, 20.0, -20.0)
    logits = torch.stack([-perfect, perfect, torch.zeros_like(perfect)], dim=2)  # (1, 1, 3, S, S)
    predicted_ious = torch.tensor([[[0.0, 1.0, 0.25]]])
    terms = sam2_mask_loss(logits, predicted_ious, torch.full((1, 1, 1), 10.0), targets, LossConfig(), 1.0)
    assert terms.focal.item() < 1e-6 and terms.dice.item() < 1e-6
    # the IoU term still averages all three masks: true IoUs 0, 1, 0 give errors 0, 0, 0.25
    assert terms.iou.item() == pytest.approx(0.25 / 3, abs=1e-7)


def test_empty_targets_only_train_the_object_score() -> None:
    logits, ious, _, _ = _inputs()
    empty = torch.zeros(T, N, S, S, dtype=torch.bool)
    confident_absent = torch.full((T, N, 1), -30.0)
    terms = sam2_mask_loss(logits, ious, confident_absent, empty, LossConfig(), 1.0)
    assert terms.focal.item() == terms.dice.item() == terms.iou.item() == 0.0
    assert 0.0 <= terms.total.item() < 1e-10
    unsure = sam2_mask_loss(logits, ious, torch.zeros(T, N, 1), empty, LossConfig(), 1.0)
    assert unsure.total.item() == pytest.approx(5.0 * T * N * math.log(2), rel=1e-6)


def test_a_perfect_prediction_costs_less_than_a_random_one() -> None:
    logits, _, _, targets = _inputs()
    perfect = torch.where(targets, 15.0, -15.0).unsqueeze(2).expand(-1, -1, M, -1, -1)
    true_ious = torch.ones(T, N, M)
    present_scores = torch.where(targets.flatten(2).any(-1, keepdim=True), 15.0, -15.0)
    good = sam2_mask_loss(perfect, true_ious, present_scores, targets, LossConfig(), N).total
    bad = sam2_mask_loss(logits, torch.rand(T, N, M), torch.randn(T, N, 1), targets, LossConfig(), N).total
    assert torch.isfinite(bad) and good.item() < 1e-3 < bad.item()


def test_mismatched_targets_are_rejected() -> None:
    logits, ious, scores, targets = _inputs()
    with pytest.raises(ValueError, match="resize_target_masks"):
        sam2_mask_loss(logits, ious, scores, targets[..., :4, :4], LossConfig(), 1.0)


def test_decoder_loss_is_the_sum_over_frames_and_objects_divided_by_frames() -> None:
    decoder = MaskDecoder(preset("unipixel-tiny").mask_decoder)
    logits, ious, scores, targets = _inputs()
    output = MaskDecoderOutput(logits, ious, scores, logits[:, :, :1], logits[:, :, :1])
    expected = _loop_loss(logits, ious, scores, targets, LossConfig(), normaliser=N)["total"] / T
    assert decoder.loss(output, targets).item() == pytest.approx(expected, rel=1e-5)


def test_normaliser_is_the_object_count_and_never_below_one(tmp_path) -> None:
    assert object_normaliser(4, torch.device("cpu")) == 4.0
    assert object_normaliser(0, torch.device("cpu")) == 1.0
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert object_normaliser(3, torch.device("cpu"), all_reduce=True) == 3.0
    finally:
        dist.destroy_process_group()
