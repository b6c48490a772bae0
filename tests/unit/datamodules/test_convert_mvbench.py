"""MVBench converter on tiny files in MVBench's layout (``json/{task}.json``, ``video/{folder}/...``): an mp4 task
and the TVQA frame-folder task, read back through the evaluation pipeline into the ``mvbench`` scorer's inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.inference.helpers import moving_square, write_mp4
from unipixel_pl.datamodules.converters import ConversionError
from unipixel_pl.datamodules.converters.mvbench import TASK_VIDEOS, fps_frame_indices
from unipixel_pl.datamodules.frames import decode_frames
from unipixel_pl.evaluation.benchmarks import MVBENCH_TASKS, get_benchmark
from unipixel_pl.inference.media import decode_video
from unipixel_pl.metrics import MultipleChoiceAccuracy

from .benchmark_helpers import built, eval_items, user_text
from .converter_helpers import convert, write_jpeg

CLIP_FRAMES, CLIP_FPS, TVQA_FRAMES = 30, 10, 64
SEQUENCE = [
    {"video": "clip.mp4", "question": "What  happened\n first?", "candidates": ["sat down", "Ran"], "answer": "Ran"},
    {"video": "clip.mp4", "question": "And then?", "candidates": ["opened a door", "slept", "ate"], "answer": "ate"},
]
EPISODIC = [{"video": "s01_clip", "question": "Who talks?", "candidates": ["Sheldon", "penny"], "answer": "penny"}]


def _mvbench(root: Path, sequence: list[dict] = SEQUENCE) -> Path:
    """Every task's json (empty but two) and the videos of the two tasks."""
    (root / "json").mkdir(parents=True)
    for task in TASK_VIDEOS:
        items = {"action_sequence": sequence, "episodic_reasoning": EPISODIC}.get(task, [])
        (root / "json" / f"{task}.json").write_text(json.dumps(items))
    clip = root / "video" / TASK_VIDEOS["action_sequence"] / "clip.mp4"
    clip.parent.mkdir(parents=True)
    write_mp4(clip, moving_square(CLIP_FRAMES), fps=CLIP_FPS)
    for number in range(1, TVQA_FRAMES + 1):
        write_jpeg(root / "video" / TASK_VIDEOS["episodic_reasoning"] / "s01_clip" / f"{number:05d}.jpg", 8, 8, number)
    return root


def test_task_folders_cover_the_registered_tasks() -> None:
    assert set(TASK_VIDEOS) == set(MVBENCH_TASKS) and len(TASK_VIDEOS) == 20


def test_fps_frames_follow_qwen_vl_utils() -> None:
    # 300 frames at 30 fps: 10 s x 2 fps = 20, clamped to 16; 5 frames at 30 fps: 0.3 frames, raised to 4;
    # 7 frames at 2 fps: 7, floored to the even 6.
    for frames, fps, count in ((300, 30.0, 16), (5, 30.0, 4), (7, 2.0, 6)):
        expected = np.linspace(0, frames - 1, count).round().astype(int).tolist()
        assert fps_frame_indices(frames, fps) == expected
    with pytest.raises(ConversionError, match="1 frame"):
        fps_frame_indices(1, 30.0)


def test_mp4_and_frame_folder_questions_become_mcq_records(tmp_path: Path) -> None:
    root = _mvbench(tmp_path / "mvbench")
    manifest, records = convert("mvbench", root, tmp_path / "out", split="test")
    assert manifest.num_records == 3 and manifest.data_types == {"multimodal": 3}
    first, second, tvqa = records
    clip = root / "video/star/Charades_v1_480/clip.mp4"
    # 30 frames at 10 fps = 3 s -> 6 frames spread over 0..29
    assert first.meta.media.kind == "mp4" and first.meta.media.orig_frame_indices == [0, 6, 12, 17, 23, 29]
    assert first.members["video.mp4"] == clip.read_bytes()
    assert (first.meta.options, first.meta.ans, first.meta.task) == (["Sat down", "Ran"], "B", "action_sequence")
    assert first.meta.turns[0].text == "What happened first?" and second.meta.ans == "C"
    assert first.key == "mvbench__clip_mp4__action_sequence_0"
    folder = root / "video/tvqa/frames_fps3_hq/s01_clip"
    assert tvqa.meta.media.orig_frame_indices == list(range(0, 63, 2))  # 00001.jpg, 00003.jpg, ... (64 // 31 = 2)
    assert tvqa.members["f0031.jpg"] == (folder / "00063.jpg").read_bytes()
    assert (tvqa.meta.options, tvqa.meta.ans, tvqa.meta.task) == (["Sheldon", "Penny"], "B", "episodic_reasoning")


def test_records_reach_the_mvbench_scorer(tmp_path: Path) -> None:
    _, records = convert("mvbench", _mvbench(tmp_path / "mvbench"), tmp_path / "out", split="test")
    items = sorted(eval_items(tmp_path / "out"), key=lambda item: item.key)
    assert [item.key for item in items] == sorted(record.key for record in records)
    accuracy = MultipleChoiceAccuracy(get_benchmark("mvbench").tasks)
    answers, counts = [i.answer_index() for i in items], [i.num_options() for i in items]
    accuracy.update(["B", "A", "B"], answers, counts, [i.task() for i in items])
    scores = accuracy.compute()
    assert scores["accuracy"] == pytest.approx(2 / 3) and scores["accuracy/action_sequence"] == pytest.approx(0.5)
    assert scores["accuracy/episodic_reasoning"] == 1.0
    clip_item = next(i for i in items if i.key.endswith("action_sequence_0"))
    assert clip_item.frame_indices == list(range(6))  # 16-frame sampling keeps all 6 frames of the 2 fps reading
    clip = tmp_path / "mvbench/video/star/Charades_v1_480/clip.mp4"
    expected = decode_video(clip, [0, 6, 12, 17, 23, 29])
    np.testing.assert_array_equal(decode_frames(clip_item.record, clip_item.frame_indices), expected)
    assert user_text(built(clip_item)) == (
        "What happened first?\nOptions:\n(A) Sat down\n(B) Ran\nPlease only give the best option."
    )


def test_bad_originals_are_errors_naming_them(tmp_path: Path) -> None:
    wrong = [dict(SEQUENCE[0], answer="walked")]
    root = _mvbench(tmp_path / "mvbench", wrong)
    with pytest.raises(ConversionError, match="answer 'walked' is not a candidate"):
        convert("mvbench", root, tmp_path / "out", split="test")
    (root / "json/state_change.json").unlink()
    with pytest.raises(ConversionError, match="state_change.json"):
        convert("mvbench", root, tmp_path / "out2", split="test")
    with pytest.raises(ConversionError, match="one split, test"):
        convert("mvbench", root, tmp_path / "out3", split="val")
