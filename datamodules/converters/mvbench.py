"""MVBench (``data/mvbench``): ``json/{task}.json`` per task, a list of ``{video, question, candidates, answer}``,
over the videos of each task under ``video/{folder}/`` (``TASK_VIDEOS``); 20 tasks, one ``mcq`` record per question.

A record has ``meta.options`` = the candidates with the first letter upper-cased (as the reference's prompt shows
them), ``meta.ans`` = the letter of ``answer`` among them and ``meta.task`` = the task (the ``json`` file's stem);
the question has its whitespace collapsed. Frames follow the reference's readers:

* video files (mp4, webm, avi: whatever PyAV decodes) are kept as their original bytes; the sampler gets the frames
  ``qwen-vl-utils`` reads at 2 fps: ``duration * 2`` clamped to ``[4, min(16, frames)]``, floored to even, spread
  by ``linspace(0, frames - 1, n).round()``. With 16-frame evaluation sampling the LLM sees exactly those.
* frame folders (episodic reasoning: TVQA's 1-based ``%05d.jpg``) keep the reference's 32 frames, every
  ``(n // 31)``-th from ``00001.jpg``. The reference gives all 32 to the LLM; 16-frame sampling gives it 16 of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import torch

from unipixel_pl.datamodules.converters.common import (
    ConversionError,
    ConverterOutput,
    frames_media,
    load_json,
    require,
)
from unipixel_pl.datamodules.converters.videos import read_video
from unipixel_pl.datamodules.schema import Media, SampleMeta, Turn
from unipixel_pl.datamodules.writer import ShardSample

SOURCE = "mvbench"
TASK_VIDEOS: dict[str, str] = {
    "action_sequence": "star/Charades_v1_480",
    "action_prediction": "star/Charades_v1_480",
    "action_antonym": "ssv2_video",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "unexpected_action": "FunQA_test/test",
    "object_existence": "clevrer/video_validation",
    "object_interaction": "star/Charades_v1_480",
    "object_shuffle": "perception/videos",
    "moving_direction": "clevrer/video_validation",
    "action_localization": "sta/sta_video",
    "scene_transition": "scene_qa/video",
    "action_count": "perception/videos",
    "moving_count": "clevrer/video_validation",
    "moving_attribute": "clevrer/video_validation",
    "state_change": "perception/videos",
    "fine_grained_pose": "nturgbd",
    "character_order": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "episodic_reasoning": "tvqa/frames_fps3_hq",
    "counterfactual_inference": "clevrer/video_validation",
}
"""Task -> folder of its videos under ``video/`` (MVBench's release layout)."""
VIDEO_FPS, MIN_FRAMES, MAX_FRAMES, FOLDER_FRAMES = 2.0, 4, 16, 32


def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """``root`` is ``data/mvbench`` (``json/``, ``video/``); ``split`` is ``test``. Option ``videos`` (default
    ``root/video``)."""
    require(options, ("videos",), SOURCE)
    if split != "test":
        raise ConversionError(f"MVBench has one split, test; got {split!r}")
    questions = {task: load_json(root / "json" / f"{task}.json") for task in TASK_VIDEOS}
    return SOURCE, _samples(questions, Path(options.get("videos", root / "video")))


def _samples(questions: dict[str, list], videos: Path) -> Iterator[ShardSample]:
    for task, items in questions.items():
        for index, item in enumerate(items):
            yield _sample(task, index, item, videos / TASK_VIDEOS[task] / item["video"])


def fps_frame_indices(num_frames: int, fps: float) -> list[int]:
    """The frames ``qwen-vl-utils`` reads from a video at ``VIDEO_FPS`` (``MIN_FRAMES`` to ``MAX_FRAMES``, even).

    Raises:
        ConversionError: a video of fewer than 2 frames.
    """
    count = min(max(num_frames / fps * VIDEO_FPS, MIN_FRAMES), MAX_FRAMES, num_frames)
    count = int(count // 2 * 2)
    if count < 2:
        raise ConversionError(f"a video of {num_frames} frame(s) is too short: the reference reads at least 2")
    return torch.linspace(0, num_frames - 1, count).round().long().tolist()


def folder_frames(folder: Path) -> list[Path]:
    """The reference's ``FOLDER_FRAMES`` frames of a 1-based ``%05d.jpg`` folder.

    Raises:
        ConversionError: an empty or missing folder.
    """
    count = len(list(folder.glob("*.jpg")))
    if count == 0:
        raise ConversionError(f"no jpg frames in {folder}")
    step = max(count // (FOLDER_FRAMES - 1), 1)
    return [folder / f"{number:05d}.jpg" for number in range(1, count + 1, step)][:FOLDER_FRAMES]


def _media(path: Path) -> tuple[Media, list[bytes], bytes | None]:
    """A folder's frames, or a video file's bytes with the frames read at 2 fps."""
    if path.is_dir():
        paths = folder_frames(path)
        media, frames = frames_media(paths, [int(p.stem) - 1 for p in paths])
        return media, frames, None
    video = read_video(path)
    return video.media(fps_frame_indices(video.num_frames, video.fps)), [], video.data


def _sample(task: str, index: int, item: dict, path: Path) -> ShardSample:
    candidates = [str(c) for c in item["candidates"]]
    if item["answer"] not in candidates:
        raise ConversionError(f"MVBench {task} question {index}: answer {item['answer']!r} is not a candidate")
    media, frames, video = _media(path)
    meta = SampleMeta(
        source=SOURCE,
        split="test",
        family="mcq",
        data_type_template="multimodal",
        vid=item["video"],
        qid=f"{task}_{index}",
        media=media,
        turns=[Turn("mcq", re.sub(r"\s+", " ", item["question"]).strip())],
        options=[c[:1].upper() + c[1:] for c in candidates],
        ans=chr(ord("A") + candidates.index(item["answer"])),
        task=task,
    )
    return ShardSample(meta, frames, video=video)
