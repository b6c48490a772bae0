"""Held-out metrics: teacher-forced exact match, per-task and per-source cIoU and answer accuracy, video J&F,
against hand-made cases."""

from __future__ import annotations

import pytest
import torch

from unipixel_pl.config import IGNORE_INDEX
from unipixel_pl.datamodules.collate import ShardBatch
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


def _batch(targets: list[torch.Tensor | None], tasks: list[str], labels: torch.Tensor | None = None) -> UniPixelBatch:
    ids = torch.zeros(len(tasks), 3, dtype=torch.long)
    return UniPixelBatch(ids, ids, torch.zeros(3, len(tasks), 3), ids, labels, target_masks=targets, task=tasks)


def _shard_batch(
    targets: list[torch.Tensor | None], tasks: list[str], sources: list[str], labels: torch.Tensor | None = None
) -> ShardBatch:
    """A batch as the shard data module yields it, naming each sample's source."""
    return ShardBatch.wrap(_batch(targets, tasks, labels), [""] * len(tasks), sources, {}, 0)


def _ciou(preds: list[torch.Tensor], targets: list[torch.Tensor]) -> float:
    """Cumulative IoU of ``(O, T, S, S)`` predictions against ``(T, O, S, S)`` targets: summed over everything."""
    inter = sum((p & t.transpose(0, 1)).sum() for p, t in zip(preds, targets, strict=True))
    union = sum((p | t.transpose(0, 1)).sum() for p, t in zip(preds, targets, strict=True))
    return float(inter / union)


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
    # a plain UniPixelBatch names no sources: no per-source scores
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


def test_per_source_metrics_are_kept_apart_from_each_other_and_from_the_tasks() -> None:
    generator = torch.Generator().manual_seed(2)
    targets = [torch.rand(1, 1, 8, 8, generator=generator) > 0.5 for _ in range(3)]  # (T, O, S, S)
    preds = [torch.rand(1, 1, 8, 8, generator=generator) > 0.5 for _ in range(3)]  # (O, T, S, S)
    logits = _logits_predicting([[2, 3, 0], [2, 4, 0], [1, 1, 1]])
    labels = torch.tensor([[NO, 2, 3], [NO, 2, 3], [NO, 1, NO]])  # samples 0 and 2 answer right, 1 wrong
    batch = _shard_batch(targets, ["seg_image"] * 3, ["refcoco/val", "synthetic/val", "refcoco/val"], labels)
    metrics = HeldOutMetrics()
    metrics.update_answers(batch, logits)
    metrics.update(batch, preds)
    scores = {name: value.item() for name, value in metrics.compute_and_reset().items()}
    assert scores.pop("ciou/source/refcoco/val") == pytest.approx(_ciou(preds[::2], targets[::2]))
    assert scores.pop("ciou/source/synthetic/val") == pytest.approx(_ciou(preds[1:2], targets[1:2]))
    assert scores.pop("ciou/seg_image") == pytest.approx(_ciou(preds, targets))  # per task: every sample
    assert scores.pop("answer_acc/source/refcoco/val") == 1.0
    assert scores.pop("answer_acc/source/synthetic/val") == 0.0
    assert scores.pop("answer_acc/seg_image") == pytest.approx(2 / 3)
    assert scores == {}  # no video sample, so no J&F


def _rank_data(rank: int, world_size: int) -> list[tuple[ShardBatch, list[torch.Tensor | None], torch.Tensor]]:
    """Four samples split over ranks so that each rank meets a task and a source the other never sees; per batch
    its predicted masks and answer logits (samples 1 and 2 answer right)."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.tensor([[NO, 2, 3]])
    data = []
    for index, (task, source) in enumerate(
        [("seg_image", "a"), ("seg_video", "b"), ("seg_image", "b"), ("region", "c")]
    ):
        frames = 1 if task == "seg_image" else 3
        target = torch.rand(frames, 1, 6, 6, generator=generator) > 0.5
        pred = torch.rand(1, frames, 6, 6, generator=generator) > 0.4
        logits = _logits_predicting([[2, 3, 0] if index in (1, 2) else [2, 4, 0]])
        data.append((_shard_batch([target], [task], [source], labels), [pred], logits))
    return data[rank::world_size]


def _held_out_scores(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    metrics = HeldOutMetrics()
    for batch, masks, logits in _rank_data(rank, world_size):
        metrics.update(batch, masks)
        metrics.update_answers(batch, logits)
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
    assert {f"{kind}/source/{source}" for kind in ("ciou", "answer_acc") for source in "abc"} <= set(expected)
    assert expected["answer_acc/source/b"] == 1.0 and expected["answer_acc/source/a"] == 0.0
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert torch.equal(got[name], value), (rank, name)
