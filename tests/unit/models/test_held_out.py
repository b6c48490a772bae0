"""Held-out metrics: teacher-forced exact match, per-task cIoU and video J&F, against hand-made cases."""

from __future__ import annotations

import pytest
import torch

from unipixel_pl.config import IGNORE_INDEX
from unipixel_pl.models.held_out import HeldOutMetrics, answer_exact_match
from unipixel_pl.types import UniPixelBatch

NO = IGNORE_INDEX


def _logits_predicting(tokens: list[list[int]], vocab: int = 6) -> torch.Tensor:
    """``(B, L, vocab)`` logits whose argmax at position ``i`` is ``tokens[b][i]``."""
    return torch.nn.functional.one_hot(torch.tensor(tokens), vocab).float()


def test_exact_match_needs_every_supervised_token() -> None:
    # position i predicts token i + 1; labels are aligned with the inputs
    logits = _logits_predicting([[2, 3, 0, 0], [2, 4, 0, 0], [1, 1, 1, 1]])
    labels = torch.tensor([[NO, 2, 3, NO], [NO, 2, 3, NO], [NO, NO, NO, NO]])
    assert answer_exact_match(logits, labels).tolist() == [True, False, False]


def test_exact_match_ignores_unsupervised_positions() -> None:
    logits = _logits_predicting([[5, 2, 5, 5]])
    labels = torch.tensor([[NO, NO, 2, NO]])
    assert answer_exact_match(logits, labels).tolist() == [True]


def _batch(targets: list[torch.Tensor | None], tasks: list[str]) -> UniPixelBatch:
    ids = torch.zeros(len(tasks), 3, dtype=torch.long)
    return UniPixelBatch(ids, ids, torch.zeros(3, len(tasks), 3), ids, target_masks=targets, task=tasks)


def test_held_out_metrics_per_task_and_video() -> None:
    generator = torch.Generator().manual_seed(0)
    image_gt = torch.rand(1, 1, 8, 8, generator=generator) > 0.5  # (T, O, S, S)
    video_gt = torch.rand(3, 1, 8, 8, generator=generator) > 0.5
    image_pred = torch.rand(1, 1, 8, 8, generator=generator) > 0.5  # (O, T, S, S)
    video_pred = video_gt.transpose(0, 1).clone()
    video_pred[0, 0] = ~video_pred[0, 0]
    metrics = HeldOutMetrics()
    metrics.update(
        _batch([image_gt, video_gt, None], ["seg_image", "seg_video", "multimodal"]), [image_pred, video_pred, None]
    )
    scores = metrics.compute_and_reset()
    inter = (image_pred[0, 0] & image_gt[0, 0]).sum()
    union = (image_pred[0, 0] | image_gt[0, 0]).sum()
    assert scores["ciou/seg_image"].item() == pytest.approx(inter.item() / union.item())
    pred, gt = video_pred[0], video_gt[:, 0]
    expected_j = ((pred & gt).sum((1, 2)) / (pred | gt).sum((1, 2))).mean()
    assert scores["video_J"].item() == pytest.approx(expected_j.item(), abs=1e-6)
    assert set(scores) == {"ciou/seg_image", "ciou/seg_video", "video_J", "video_F", "video_jf"}
    assert metrics.compute_and_reset() == {}  # reset after compute
