"""Helpers of the benchmark converter tests: converted shards read back the way ``unipixel test`` reads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.unit.inference.helpers import moving_square, write_mp4
from unipixel_pl.datamodules.build import BuildConfig, BuiltSample, build_sample
from unipixel_pl.datamodules.datamodule import UniPixelDataModule
from unipixel_pl.datamodules.mixing import Source
from unipixel_pl.evaluation.targets import EvalItem

from .converter_helpers import box_mask, rle, write_jpeg

EVAL_FRAMES = 16
"""Frames sampled per video by every benchmark config (``eval_sample_frames``)."""


def eval_items(directory: Path) -> list[EvalItem]:
    """Every evaluation sample of a shard set as the scorers get it: through the test dataloader (tiny tokenizer)
    into ``EvalItem``s (the record and the frames the LLM saw)."""
    data = UniPixelDataModule(test=[Source(str(directory))], eval_sample_frames=EVAL_FRAMES)
    items = []
    for batch in data.test_dataloader():
        items += [EvalItem(r, f) for r, f in zip(batch.records, batch.frame_indices, strict=True)]
    return items


def built(item: EvalItem) -> BuiltSample:
    """The evaluation sample of ``item``'s record as the data pipeline builds it (first templates, center prompts)."""
    config = BuildConfig(sample_frames=EVAL_FRAMES, frame_sampler="uniform", train=False)
    return build_sample(item.record, config, np.random.default_rng(0))


def user_text(sample: BuiltSample) -> str:
    """The text of the first user turn."""
    return sample.task.messages[0]["content"][-1]["text"]


H, W = 16, 24
"""Frame size of the VideoRefer-Bench frame folder."""
OBJECT_3, OBJECT_5 = box_mask(H, W, 1, 6, 1, 8), box_mask(H, W, 8, 14, 10, 20)
SQUARE = box_mask(48, 64, 12, 28, 0, 16)
"""The red square of ``moving_square`` on its first frame (it moves 2 pixels right per frame)."""


def _annotation(masks: dict[int, np.ndarray]) -> dict:
    return {str(frame): {"segmentation": rle(mask)} for frame, mask in masks.items()}


def write_videorefer_bench(root: Path) -> Path:
    """``root/VideoRefer-Bench``: three questions (a frame folder with two objects, an mp4 with a bare ``<region>``,
    and an object whose ``frame_idx`` mask is empty) and their videos."""
    bench = root / "VideoRefer-Bench"
    for frame in range(6):
        write_jpeg(bench / "videos/DAVIS/JPEGImages/480p/bear" / f"{frame:05d}.jpg", H, W, 20 * frame)
    (bench / "videos/MeViS").mkdir(parents=True)
    write_mp4(bench / "videos/MeViS/clip.mp4", moving_square(6))
    shifted = {frame: np.roll(SQUARE, 2 * frame, axis=1) for frame in (1, 3)}
    items = [
        {
            "id": 0,
            "video": "DAVIS/JPEGImages/480p/bear",
            "Question": "What is <object3><region> doing next to <object5><region>? Is <object3> moving?",
            "type": "Basic Questions",
            "options": ["(A) Eating", "(B) Sleeping with <object5>"],
            "Answer": "(B) Sleeping with <object5>",
            "frame_idx": "2",
            "annotation": [
                _annotation({0: OBJECT_3, 2: OBJECT_3, 4: OBJECT_3}),
                _annotation({2: OBJECT_5, 5: OBJECT_5}),
            ],
        },
        {
            "id": 1,
            "video": "MeViS/clip.mp4",
            "Question": "What colour is <region>?",
            "type": "Future Predictions",
            "options": ["(A) Red", "(B) Blue", "(C) Green"],
            "Answer": "(A) Red",
            "frame_idx": "3",
            "annotation": [_annotation(shifted)],
        },
        {
            "id": 2,
            "video": "DAVIS/JPEGImages/480p/bear",
            "Question": "Where is <object1><region>?",
            "type": "Basic Questions",
            "options": ["(A) Left", "(B) Right"],
            "Answer": "(A) Left",
            "frame_idx": "1",
            "annotation": [_annotation({1: np.zeros((H, W), dtype=bool), 3: OBJECT_3})],
        },
    ]
    (bench / "VideoRefer-Bench-Q.json").write_text(json.dumps(items))
    return root
