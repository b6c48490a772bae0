"""VideoRefer-Bench-Q converter on a tiny ``VideoRefer-Bench-Q.json`` with a frame folder and an mp4, read back
through the evaluation pipeline into the ``videorefer_q`` scorer's inputs (single- and multi-frame mask prompts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unipixel_pl.config import MEM_TOKEN
from unipixel_pl.datamodules.converters import ConversionError
from unipixel_pl.datamodules.rle import decode_rle
from unipixel_pl.evaluation.benchmarks import get_benchmark
from unipixel_pl.metrics import MultipleChoiceAccuracy

from .benchmark_helpers import OBJECT_3, OBJECT_5, built, eval_items, user_text, write_videorefer_bench
from .converter_helpers import convert

QUESTION = (
    "What is [3] doing next to [5]? Is [3] moving?\nOptions:\n(A) Eating\n(B) Sleeping with [5]\n"
    "Please only give the best option."
)


def test_questions_keep_annotated_frames_options_and_single_frame_prompts(tmp_path: Path) -> None:
    root = write_videorefer_bench(tmp_path / "videorefer")
    manifest, (bear, clip) = convert("videorefer_q", root, tmp_path / "out", split="test")
    assert manifest.filtered == {"object_without_mask_on_frame_idx": 1} and manifest.data_types == {"region_video": 2}
    media = bear.meta.media
    assert (media.kind, media.orig_frame_indices, media.prompt_frame) == ("frames", [0, 2, 4, 5], 1)
    folder = root / "VideoRefer-Bench/videos/DAVIS/JPEGImages/480p/bear"
    assert [bear.members[name] for name in media.frame_names] == [
        (folder / f"0000{i}.jpg").read_bytes() for i in (0, 2, 4, 5)
    ]
    assert [o.oid for o in bear.meta.objects] == [3, 5] and bear.meta.turns[0].text == QUESTION
    assert (bear.meta.options, bear.meta.ans, bear.meta.task) == (
        ["Eating", "Sleeping with [5]"],
        "B",
        "Basic Questions",
    )
    assert [cell is not None for cell in bear.masks.objects[0]] == [True, True, True, False]
    assert [cell is not None for row in bear.refer.objects for cell in row] == [False, True, False, False] * 2
    np.testing.assert_array_equal(decode_rle(bear.refer.objects[1][1]), OBJECT_5)
    assert clip.meta.media.kind == "mp4" and clip.meta.media.orig_frame_indices == [1, 3]
    assert clip.meta.turns[0].text.startswith("What colour is [0]?\nOptions:\n(A) Red") and clip.meta.ans == "A"
    _, (multi, _) = convert("videorefer_q", root, tmp_path / "multi", split="test", masks="multi")
    assert multi.refer is None and multi.masks.objects == bear.masks.objects


def test_records_reach_the_videorefer_q_scorer(tmp_path: Path) -> None:
    root = write_videorefer_bench(tmp_path / "videorefer")
    convert("videorefer_q", root, tmp_path / "out", split="test")
    items = sorted(eval_items(tmp_path / "out"), key=lambda item: item.key)
    assert [item.key for item in items] == ["videorefer_q__bear__0", "videorefer_q__clip_mp4__1"]
    accuracy = MultipleChoiceAccuracy(get_benchmark("videorefer_q").tasks)
    answers, counts = [i.answer_index() for i in items], [i.num_options() for i in items]
    accuracy.update(["B", "C"], answers, counts, [i.task() for i in items])
    scores = accuracy.compute()
    assert scores["accuracy/Basic Questions"] == 1.0 and scores["accuracy/Future Predictions"] == 0.0
    bear = built(items[0])
    # single-frame prompts: both objects only on frame_idx, the second of the 4 frames (pair <1>-<2>)
    prefix = (
        "Here is a video with 4 frames denoted as <1> to <4>. The highlighted regions are as follows:\n"
        f"[3]: <1>-<2> {MEM_TOKEN}\n[5]: <1>-<2> {MEM_TOKEN}\n"
    )
    assert user_text(bear) == prefix + QUESTION and bear.task.messages[1]["content"] == "The best option is (B)."
    np.testing.assert_array_equal(bear.task.refer_masks[1], np.stack([OBJECT_3, OBJECT_5]))
    assert not bear.task.refer_masks[[0, 2, 3]].any()


def test_multi_frame_prompts_cover_every_annotated_frame(tmp_path: Path) -> None:
    root = write_videorefer_bench(tmp_path / "videorefer")
    convert("videorefer_q", root, tmp_path / "out", split="test", masks="multi")
    bear = built(sorted(eval_items(tmp_path / "out"), key=lambda item: item.key)[0])
    # object 3 on frames 0, 2, 4 (positions 0-2: pairs 1, 2), object 5 on frames 2, 5 (positions 1, 3: pairs 1, 2)
    lines = user_text(bear).split("\n")[1:3]
    assert lines == [f"[3]: <1>-<2> {MEM_TOKEN} <3>-<4> {MEM_TOKEN}", f"[5]: <1>-<2> {MEM_TOKEN} <3>-<4> {MEM_TOKEN}"]


def test_inconsistent_items_are_errors(tmp_path: Path) -> None:
    root = write_videorefer_bench(tmp_path / "videorefer")
    path = root / "VideoRefer-Bench/VideoRefer-Bench-Q.json"
    items = json.loads(path.read_text())
    path.write_text(json.dumps([dict(items[0], Question="What is <object3><region> doing?")]))
    with pytest.raises(ConversionError, match="item 0: 1 <region> tag\\(s\\) for 2 annotated object"):
        convert("videorefer_q", root, tmp_path / "out", split="test")
    path.write_text(json.dumps([dict(items[0], Answer="(E) Flying")]))
    with pytest.raises(ConversionError, match="Answer '\\(E\\) Flying' is not one of \\['A', 'B'\\]"):
        convert("videorefer_q", root, tmp_path / "out2", split="test")
    with pytest.raises(ConversionError, match="unknown mask prompt mode 'all'"):
        convert("videorefer_q", root, tmp_path / "out3", split="test", masks="all")
