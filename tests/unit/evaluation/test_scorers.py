"""Protocol switches of the scorers that act before any generation: LISA's first query, DAVIS frame averaging."""

from __future__ import annotations

import torch

from unipixel_pl.datamodules.reader import Record
from unipixel_pl.datamodules.schema import Media, ObjectInfo, SampleMeta, Turn
from unipixel_pl.evaluation.benchmarks import get_benchmark
from unipixel_pl.evaluation.scorers import ImageSegScorer, VideoSegScorer
from unipixel_pl.evaluation.targets import EvalItem


def _item(turn: int) -> EvalItem:
    media = Media("image", 1, 2, 2, ["f0000.jpg"], [0])
    turns = [Turn("sentence", "q1", "", [0]), Turn("sentence", "q2", "", [0])]
    meta = SampleMeta("reason_seg", "val", "seg", "seg_image", "img", media, turns, "", [ObjectInfo(0, "", 0)], True)
    return EvalItem(Record("img", "x.tar", meta, {}, turn=turn), [0])


def test_lisa_scores_only_the_first_query_of_reason_seg() -> None:
    scorer = ImageSegScorer(get_benchmark("reason_seg"), "lisa")
    assert scorer.score(None, None, 0, _item(turn=1), None) is None  # type: ignore[arg-type]  # skipped unanswered
    refcoco = ImageSegScorer(get_benchmark("refcoco"), "lisa")  # LISA scores every RefCOCO sentence
    assert refcoco.benchmark.lisa_first_query is False


def test_davis_protocol_drops_first_and_last_frames() -> None:
    masks = torch.arange(5)[:, None, None].expand(5, 2, 2)
    davis = VideoSegScorer(get_benchmark("mevis"), "davis")
    unipixel = VideoSegScorer(get_benchmark("mevis"), "unipixel")
    assert davis._frames_scored(masks)[:, 0, 0].tolist() == [1, 2, 3]
    assert torch.equal(unipixel._frames_scored(masks), masks)
    assert torch.equal(davis._frames_scored(masks[:2]), masks[:2])  # too short to trim
