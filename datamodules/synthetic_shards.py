"""The synthetic corpus written as shards: coloured-shape images and short videos in every task family.

Record ``i`` of a split is a pure function of ``(seed, split, i)``. Records cycle through six kinds so every data
type is present: referring segmentation (``seg``, relations and sizes), reasoning segmentation (``seg`` with
``sentence``/``explanatory`` turns), point/box region QA (``ref``), mask-prompt region QA (``region``),
PixelQA-style refer-segment-answer (``mem``) and multiple choice (``mcq``); every other cycle is a video.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from unipixel_pl.config import REF_TOKEN
from unipixel_pl.datamodules import expressions as text
from unipixel_pl.datamodules.manifest import Manifest
from unipixel_pl.datamodules.rle import MaskTable
from unipixel_pl.datamodules.scenes import Scene, all_visible, make_scene
from unipixel_pl.datamodules.schema import Media, ObjectInfo, SampleMeta, Turn, frame_member
from unipixel_pl.datamodules.writer import ShardSample, write_shards

SOURCE = "synthetic"
KINDS: tuple[str, ...] = ("seg", "reason", "ref", "region", "mem", "mcq")
SPLIT_SEEDS: dict[str, int] = {"train": 0, "val": 1, "test": 2}


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 ``(H, W, 3)`` frame (deterministic for a given Pillow build)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _seg_turns(scene: Scene, rng: np.random.Generator) -> list[Turn]:
    return [Turn("query", text.referring_expression(scene, i, rng), "", [i]) for i in range(len(scene.objects))]


def _reason_turns(scene: Scene, rng: np.random.Generator) -> list[Turn]:
    turns = []
    for index in range(len(scene.objects)):
        question, explanation = text.reasoning_query(scene, index)
        explain = rng.random() < 0.5
        turns.append(Turn("explanatory" if explain else "sentence", question, explanation if explain else "", [index]))
    return turns


def _ref_turns(scene: Scene, rng: np.random.Generator) -> list[Turn]:
    return [
        Turn("qa", question, answer, [index])
        for index in range(len(scene.objects))
        for question, answer in text.region_questions(scene, index, REF_TOKEN)
    ]


def _region_turns(scene: Scene, rng: np.random.Generator) -> list[Turn]:
    pool = [
        Turn("qa", question, answer, [index])
        for index in range(len(scene.objects))
        for question, answer in text.region_questions(scene, index, f"[{index}]")
    ]
    picks = rng.choice(len(pool), size=int(rng.integers(1, 4)), replace=False)
    return [pool[i] for i in picks]


def _mem_turns(scene: Scene, rng: np.random.Generator) -> list[Turn]:
    turns = []
    for index in range(len(scene.objects)):
        for question, answer in text.region_questions(scene, index, f"[{index}] {REF_TOKEN}"):
            turns.append(Turn("mem", question, answer, [index]))
    return turns


def _mcq_turns(scene: Scene, rng: np.random.Generator) -> tuple[list[Turn], list[str], str]:
    question, options, answer = text.multiple_choice(scene, rng)
    return [Turn("mcq", question, "", [])], options, "ABCD"[answer]


TURN_BUILDERS: dict[str, Callable[[Scene, np.random.Generator], list[Turn]]] = {
    "seg": _seg_turns,
    "reason": _reason_turns,
    "ref": _ref_turns,
    "region": _region_turns,
    "mem": _mem_turns,
}
FAMILY_OF_KIND = {"seg": "seg", "reason": "seg", "ref": "ref", "region": "region", "mem": "mem", "mcq": "mcq"}


def _data_type(kind: str, media: str) -> str:
    return {
        "seg": f"seg_{media}",
        "reason": f"seg_{media}",
        "ref": "ref_{}",
        "region": f"region_{media}",
        "mem": f"mem_{{}}_{media}",
        "mcq": "multimodal",
    }[kind]


def _scene(rng: np.random.Generator, size: int, frames: int) -> Scene:
    """A scene where every object is visible on every frame (redrawn until it is)."""
    while True:
        scene = make_scene(rng, size, size, frames, num_objects=int(rng.integers(2, 4)))
        if all_visible(scene):
            return scene


def synthetic_sample(
    index: int, split: str, image_size: int = 448, video_frames: int = 12, seed: int = 0
) -> ShardSample:
    """Record ``index`` of the synthetic ``split``."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown synthetic split {split!r}; choose one of {sorted(SPLIT_SEEDS)}")
    rng = np.random.default_rng([seed, SPLIT_SEEDS[split], index])
    kind = KINDS[index % len(KINDS)]
    is_video = video_frames > 1 and (index // len(KINDS)) % 2 == 1
    scene = _scene(rng, image_size, video_frames if is_video else 1)
    media_name = "video" if is_video else "image"
    options, answer = [], ""
    if kind == "mcq":
        turns, options, answer = _mcq_turns(scene, rng)
    else:
        turns = TURN_BUILDERS[kind](scene, rng)
    names = [frame_member(t) for t in range(scene.num_frames)]
    media = Media(
        kind="frames" if is_video else "image",
        num_frames=scene.num_frames,
        height=image_size,
        width=image_size,
        frame_names=names,
        orig_frame_indices=list(range(scene.num_frames)),
    )
    objects = [ObjectInfo(i, obj.name, i) for i, obj in enumerate(scene.objects)]
    meta = SampleMeta(
        source=SOURCE,
        split=split,
        family=FAMILY_OF_KIND[kind],
        data_type_template=_data_type(kind, media_name),
        vid=f"{index:07d}",
        media=media,
        turns=turns,
        objects=objects if kind != "mcq" else [],
        expand=kind in ("reason",) or (kind == "seg" and is_video),
        options=options,
        ans=answer,
    )
    masks = None if kind == "mcq" else MaskTable.from_masks(scene.object_masks().transpose(1, 0, 2, 3))
    return ShardSample(meta, [encode_jpeg(frame) for frame in scene.frames], masks=masks)


def synthetic_samples(
    num_samples: int, split: str, image_size: int = 448, video_frames: int = 12, seed: int = 0
) -> Iterator[ShardSample]:
    """Records ``0 .. num_samples - 1`` of the synthetic ``split``."""
    for index in range(num_samples):
        yield synthetic_sample(index, split, image_size, video_frames, seed)


def write_synthetic(
    directory: str | Path,
    num_samples: int,
    split: str = "train",
    image_size: int = 448,
    video_frames: int = 12,
    seed: int = 0,
    samples_per_shard: int = 100,
) -> Manifest:
    """Write the synthetic ``split`` as a shard set in ``directory``; returns its manifest."""
    samples = synthetic_samples(num_samples, split, image_size, video_frames, seed)
    return write_shards(samples, directory, SOURCE, split, samples_per_shard)
