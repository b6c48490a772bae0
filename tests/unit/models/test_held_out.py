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


def test_answer_accuracy_per_task_is_sample_weighted() -> None:
    logits = _logits_predicting([[2, 3, 0], [2, 4, 0], [1, 1, 1]])
    labels = torch.tensor([[NO, 2, 3], [NO, 2, 3], [NO, 1, NO]])
    batch = UniPixelBatch(labels, labels, torch.zeros(3, 3, 3), labels, labels=labels, task=["mc", "mc", "ref"])
    metrics = HeldOutMetrics()
    metrics.update_answers(batch, logits)
    metrics.update_answers(batch, logits)
    scores = metrics.compute_and_reset()
    assert scores == {"answer_acc/mc": pytest.approx(0.5), "answer_acc/ref": pytest.approx(1.0)}


def _rank_data(rank: int, world_size: int) -> tuple[list[UniPixelBatch], list[list[torch.Tensor | None]]]:
    """Four samples split over ranks so that each rank meets a task the other never sees."""
    generator = torch.Generator().manual_seed(1)
    samples = []
    for index, task in enumerate(["seg_image", "seg_video", "seg_image", "region"]):
        frames = 1 if task == "seg_image" else 3
        target = torch.rand(frames, 1, 6, 6, generator=generator) > 0.5
        pred = torch.rand(1, frames, 6, 6, generator=generator) > 0.4
        samples.append((index, task, target, pred))
    batches, masks = [], []
    for _, task, target, pred in samples[rank::world_size]:
        batches.append(_batch([target], [task]))
        masks.append([pred])
    return batches, masks


def _held_out_scores(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    metrics = HeldOutMetrics()
    for batch, masks in zip(*_rank_data(rank, world_size), strict=True):
        metrics.update(batch, masks)
    return metrics.compute_and_reset()


def _held_out_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.save(_held_out_scores(rank, 2), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.multiprocess
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork")
def test_two_processes_give_the_single_process_values(tmp_path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_held_out_worker, args=(port, str(tmp_path)), nprocs=2, start_method="fork")
    expected = _held_out_scores(0, 1)
    assert {"ciou/seg_image", "ciou/seg_video", "ciou/region", "video_jf"} <= set(expected)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert torch.equal(got[name], value), (rank, name)
