"""VideoRefer-700K: ``videorefer-{short-caption-500k,detailed-caption-125k,qa-75k}-wo-masks.json`` (``id``,
``video``, ``conversations``, ``annotation`` = per object a dict keyed by annotated frame, ``ratio``) with the
masks of item ``i`` in ``masks_{task}/{i}.json`` (per object, per annotated frame, a list of RLE parts).

Tasks (``--option task=...``):

* ``detailed_caption``, ``qa``, ``short_caption``: mask-prompt region QA (``region_video``). ``<region>`` becomes
  ``[k]`` with ``k`` drawn once per item from a seeded hash (the reference draws it per visit), and
  ``<objectN><region>`` intros become ``[N]`` objects.
* ``short_caption_ref``: stage-1 point/box captioning (``ref_{}``), ``<region>`` -> ``<|ref|>``.
* ``qa_mem``: PixelQA-style memory training (``mem_{}_video``): ``<objectN><region>`` -> ``[N] <|ref|>``, a bare
  ``<region>`` -> ``[k] <|ref|>``; the answer is appended online as an option and the response is the ids with
  ``<|seg|>``.

Filters as the reference: 0 or more than 5 objects, ``ratio < 0.3``, and (``qa_mem``) a single annotated frame.
Videos are frame folders (kept as JPEGs) or mp4 files (kept as bytes). Without single-frame mode a record holds
the annotated frames only (the reference samples among them); single-frame mode (short captions, one annotated
frame) holds the whole video with ``prompt_frame`` set, which for an mp4 needs ``decord`` to count its frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from unipixel_pl.config import REF_TOKEN
from unipixel_pl.datamodules.converters.common import (
    ConversionError,
    ConverterOutput,
    Drop,
    frames_media,
    load_json,
    mask_table,
    numbered,
    require,
    strip_media_marker,
)
from unipixel_pl.datamodules.schema import Media, ObjectInfo, SampleMeta, Turn, stable_hash
from unipixel_pl.datamodules.writer import ShardSample

ROOT = "VideoRefer-700K"
MAX_OBJECTS, MIN_RATIO, REGION_IDS = 5, 0.3, 16


@dataclass(frozen=True)
class Task:
    """Annotation file, mask folder, family and data type of one VideoRefer task."""

    annotations: str
    masks: str
    family: str
    data_type: str
    always_single_frame: bool = False


TASKS: dict[str, Task] = {
    "short_caption": Task("short-caption-500k", "masks_short_caption", "region", "region_video", True),
    "detailed_caption": Task("detailed-caption-125k", "masks_detailed_caption", "region", "region_video"),
    "qa": Task("qa-75k", "masks_qa", "region", "region_video"),
    "short_caption_ref": Task("short-caption-500k", "masks_short_caption", "ref", "ref_{}", True),
    "qa_mem": Task("qa-75k", "masks_qa", "mem", "mem_{}_video"),
}


def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """``root`` is ``data/videorefer``. Options: ``task`` (see the module doc, default ``qa``), ``videos``
    (default ``root/VideoRefer-700K/videos``)."""
    require(options, ("task", "videos"), "videorefer")
    name = options.get("task", "qa")
    if name not in TASKS:
        raise ConversionError(f"unknown VideoRefer task {name!r}; choose one of {sorted(TASKS)}")
    if split != "train":
        raise ConversionError(f"VideoRefer-700K is a training set; got split {split!r}")
    task = TASKS[name]
    items = load_json(root / ROOT / f"videorefer-{task.annotations}-wo-masks.json")
    videos = Path(options.get("videos", root / ROOT / "videos"))
    return f"videorefer_{name}", _samples(name, task, items, root / ROOT / task.masks, videos)


def _samples(name: str, task: Task, items: list, masks: Path, videos: Path) -> Iterator[ShardSample | Drop]:
    for index, item in enumerate(items):
        if not 0 < len(item["annotation"]) <= MAX_OBJECTS:
            yield Drop("objects_0_or_over_5")
        elif item.get("ratio", 1.0) < MIN_RATIO:
            yield Drop("ratio_below_0.3")
        else:
            yield _sample(name, task, item, load_json(masks / f"{index}.json"), videos)


def _sample(name: str, task: Task, item: dict, masks: list, videos: Path) -> ShardSample | Drop:
    frame_inds = sorted({int(k) for obj in item["annotation"] for k in obj})
    if name == "qa_mem" and len(frame_inds) == 1:
        return Drop("single_annotated_frame")
    single = task.always_single_frame or len(frame_inds) == 1
    if single and len(frame_inds) != 1:
        return Drop("single_frame_mode_needs_one_annotated_frame")
    question = strip_media_marker(item["conversations"][0]["value"])
    answer = item["conversations"][1]["value"].strip()
    key = f"videorefer_{name}__{item['id']}"
    text = _rewrite(name, question, answer, stable_hash(key) % REGION_IDS)
    if text is None:
        return Drop("region_tags_do_not_match_objects")
    question, answer, oids = text
    if len(oids) != len(item["annotation"]):
        return Drop("region_tags_do_not_match_objects")
    size = _mask_size(masks)
    if size is None:
        return Drop("no_mask")
    media_and_frames = _media(videos / item["video"], frame_inds, single, size)
    if isinstance(media_and_frames, Drop):
        return media_and_frames
    media, frames, video = media_and_frames
    if (media.height, media.width) != size:
        return Drop("mask_size_differs_from_frames")
    rows = _mask_rows(masks, frame_inds, media)
    meta = SampleMeta(
        source=f"videorefer_{name}",
        split="train",
        family=task.family,
        data_type_template=task.data_type,
        vid=Path(item["video"]).stem,
        qid=str(item["id"]),
        media=media,
        turns=[Turn("qa", question, answer, list(range(len(oids))))],
        objects=[ObjectInfo(oid, "", i) for i, oid in enumerate(oids)],
    )
    return ShardSample(meta, frames, video=video, masks=mask_table(rows, media.height, media.width))


def _rewrite(name: str, question: str, answer: str, region_id: int) -> tuple[str, str, list[int]] | None:
    """Question and answer with region tags replaced, and the object ids in annotation order."""
    intro = re.findall(r"<object(\d+)><region>", question)
    if intro:
        oids = [int(n) for n in intro]
        if name == "qa_mem":
            question = re.sub(r"<object(\d+)><region>", rf"[\1] {REF_TOKEN}", question)
        else:
            question = question.split("\n", 1)[-1]  # the <|mem|> prefix replaces the intro line
        question, answer = (re.sub(r"<object(\d+)>", r"[\1]", text) for text in (question, answer))
    else:
        oids = [region_id] * question.count("<region>")
        mention = {"short_caption_ref": REF_TOKEN, "qa_mem": f"[{region_id}] {REF_TOKEN}"}.get(name, f"[{region_id}]")
        question = question.replace("<region>", mention)
    if "<region>" in question or "<object" in question + answer or len(oids) == 0:
        return None
    return question, answer, oids


def _mask_size(masks: list) -> tuple[int, int] | None:
    """``(H, W)`` of the first RLE part of the item's masks."""
    for obj in masks:
        for parts in obj:
            for part in parts if isinstance(parts, list) else [parts]:
                if isinstance(part, dict) and "size" in part:
                    return int(part["size"][0]), int(part["size"][1])
    return None


def _media(
    path: Path, frame_inds: list[int], single: bool, size: tuple[int, int]
) -> tuple[Media, list[bytes], bytes | None] | Drop:
    if path.is_dir():
        paths = numbered(path.glob("*.jpg"))
        if frame_inds[-1] >= len(paths):
            return Drop("annotated_frame_beyond_video")
        chosen = paths if single else [paths[i] for i in frame_inds]
        media, frames = frames_media(chosen, range(len(paths)) if single else frame_inds)
    elif path.is_file():
        count = _mp4_frame_count(path) if single else len(frame_inds)
        if count is None:
            return Drop("mp4_single_frame_mode_needs_decord")
        orig = list(range(count)) if single else frame_inds
        media = Media(kind="mp4", num_frames=len(orig), height=size[0], width=size[1], orig_frame_indices=orig)
        return _with_prompt(media, frame_inds, single), [], path.read_bytes()
    else:
        raise ConversionError(f"VideoRefer video not found: {path}")
    return _with_prompt(media, frame_inds, single), frames, None


def _with_prompt(media: Media, frame_inds: list[int], single: bool) -> Media:
    if single:
        media.prompt_frame, media.single_frame_mode = frame_inds[0], True
    return media


def _mp4_frame_count(path: Path) -> int | None:
    try:
        import decord  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    return len(decord.VideoReader(str(path)))


def _mask_rows(masks: list, frame_inds: list[int], media: Media) -> list[list]:
    """Per object, per record frame, the RLE parts (annotated frames only; empty elsewhere)."""
    position = {frame: i for i, frame in enumerate(frame_inds)}
    rows = []
    for obj in masks:
        cells = []
        for orig in media.orig_frame_indices:
            parts = obj[position[orig]] if orig in position else None
            cells.append(parts if parts is None or isinstance(parts, list) else [parts])
        rows.append(cells)
    return rows
