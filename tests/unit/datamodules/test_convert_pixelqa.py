"""PixelQA converter (built from ``VideoRefer-Bench-Q.json``, EVAL.md §4): point / box / mix records read back
through the evaluation pipeline into both passes of the ``pixelqa`` scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unipixel_pl.config import REF_TOKEN, SEG_TOKEN
from unipixel_pl.datamodules.converters import ConversionError
from unipixel_pl.datamodules.prompts import center_point
from unipixel_pl.evaluation.benchmarks import get_benchmark
from unipixel_pl.evaluation.pixelqa import answer_question
from unipixel_pl.evaluation.targets import object_ids
from unipixel_pl.metrics import MultipleChoiceAccuracy, VolumeJF

from .benchmark_helpers import OBJECT_3, OBJECT_5, SQUARE, built, eval_items, user_text, write_videorefer_bench
from .converter_helpers import convert

MEM_QUESTION = (
    f"What is [3] {REF_TOKEN} doing next to [5] {REF_TOKEN}? Is [3] moving?\n"
    "Options:\n(A) Eating\n(B) Sleeping with [5]"
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_videorefer_bench(tmp_path_factory.mktemp("videorefer"))


@pytest.mark.parametrize(("prompt", "data_type"), [("point", "mem_point_video"), ("mix", "mem_{}_video")])
def test_records_ask_the_memory_question_with_every_option(bench: Path, tmp_path: Path, prompt, data_type) -> None:
    manifest, (bear, clip) = convert("pixelqa", bench, tmp_path / "out", split="test", prompt=prompt)
    assert manifest.filtered == {"object_without_mask_on_frame_idx": 1} and manifest.data_types == {data_type: 2}
    turn = bear.meta.turns[0]
    assert (turn.type, turn.text, turn.answer, turn.objects) == ("mem", MEM_QUESTION, "", [0, 1])
    assert bear.refer is None and bear.meta.media.prompt_frame == 1 and bear.meta.ans == "B"
    assert clip.meta.turns[0].text.startswith(f"What colour is [0] {REF_TOKEN}?\nOptions:\n(A) Red")


def test_records_reach_both_passes_of_the_pixelqa_scorer(bench: Path, tmp_path: Path) -> None:
    convert("pixelqa", bench, tmp_path / "out", split="test", prompt="box")
    bear, clip = sorted(eval_items(tmp_path / "out"), key=lambda item: item.key)
    # pass 1: the teacher-forced memory question, one <|seg|> per object, box prompts on frame_idx
    first = built(bear)
    assert user_text(first) == f"{MEM_QUESTION} Please localize the relevant objects with IDs."
    assert first.task.messages[1]["content"] == f"[3] {SEG_TOKEN} [5] {SEG_TOKEN}"
    assert [p.frame for p in first.task.prompts] == [1, 1]
    np.testing.assert_array_equal(first.task.prompts[1].coords, [[10, 8], [19, 13]])  # OBJECT_5's tight box
    gt = bear.object_masks(bear.frame_indices).transpose(0, 1)  # (O, T, H, W)
    np.testing.assert_array_equal(gt[0, :3].numpy(), np.stack([OBJECT_3] * 3))
    assert not gt[0, 3].any() and gt[1, [1, 3]].all(dim=0).equal(torch.from_numpy(OBJECT_5))
    masks = VolumeJF()
    masks.update(gt, gt)
    assert masks.compute()["JF"] == pytest.approx(1.0, abs=1e-5) and object_ids(bear) == [3, 5]
    # pass 2: the question without <|ref|>, its options, the answer instruction
    assert answer_question(bear) == (
        "What is [3] doing next to [5]? Is [3] moving?\nOptions:\n(A) Eating\n(B) Sleeping with [5]\n"
        "Please only give the best option."
    )
    accuracy = MultipleChoiceAccuracy(get_benchmark("pixelqa").tasks)
    accuracy.update(["B", "A"], [bear.answer_index(), clip.answer_index()], [2, 3], [bear.task(), clip.task()])
    assert accuracy.compute()["accuracy"] == 1.0


def test_point_prompts_sit_at_the_center_of_the_frame_idx_mask(bench: Path, tmp_path: Path) -> None:
    convert("pixelqa", bench, tmp_path / "out", split="test", prompt="point")
    clip = sorted(eval_items(tmp_path / "out"), key=lambda item: item.key)[1]
    [prompt] = built(clip).task.prompts
    # annotated frames 1 and 3; frame_idx 3 is the second; the square has moved 6 pixels right there
    assert prompt.frame == 1 and prompt.coords.tolist() == [list(center_point(np.roll(SQUARE, 6, axis=1)))]


def test_unknown_prompt_kind_is_refused(bench: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="unknown PixelQA prompt 'dense'"):
        convert("pixelqa", bench, tmp_path / "out", split="test", prompt="dense")
