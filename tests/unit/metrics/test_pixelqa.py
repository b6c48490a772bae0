"""PixelQA volume J and pixel F1, averaged over all objects of all questions."""

from __future__ import annotations

import pytest
import torch

from unipixel_pl.metrics import VolumeJF

EPS = 1e-6


def test_mean_over_objects_of_all_questions() -> None:
    metric = VolumeJF()
    volume = torch.zeros(2, 3, 3, dtype=torch.bool)
    target = volume.clone()
    target[1, :, 0] = True  # 3 pixels
    partial = volume.clone()
    partial[1, 0, 0] = True  # 1 of them
    metric.update(torch.stack([target, volume]), torch.stack([target, volume]))  # perfect, then empty/empty (0)
    metric.update(partial[None], target[None])
    j_values = [3 / (3 + EPS), 0.0, 1 / (3 + EPS)]
    precision, recall = 1 / (1 + EPS), 1 / (3 + EPS)
    perfect = 3 / (3 + EPS)
    f_values = [2 * perfect * perfect / (2 * perfect + EPS), 0.0, 2 * precision * recall / (precision + recall + EPS)]
    scores = metric.compute()
    assert scores["J"].item() == pytest.approx(sum(j_values) / 3, abs=1e-9)
    assert scores["F"].item() == pytest.approx(sum(f_values) / 3, abs=1e-9)
    assert scores["JF"].item() == pytest.approx((sum(j_values) + sum(f_values)) / 6, abs=1e-9)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        VolumeJF().update(torch.zeros(1, 2, 3, 3, dtype=torch.bool), torch.zeros(1, 2, 3, 4, dtype=torch.bool))
