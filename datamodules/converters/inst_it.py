"""Inst-IT video QA: ``inst_it_dataset_video_21k_w_mask.json`` (``video_id``, ``video_path``, ``segmentations``
= ``{frame file: {oid: {"mask": rle}}}``, ``question_answer_pairs``) over frame folders (``videos_raw``).

Tasks (``--option task=...``):

* ``video_qa``: mask-prompt region QA (``region_video``), at most 10 frames and 5 objects, one sample per QA.
* ``video_qa_mem``: PixelQA-style memory training (``mem_{}_video``/``mem_{}_image``), at most 8 frames, 1-5
  objects per QA; ``<|ref|>`` follows the first mention of each ``[k]`` in the question. Objects are ordered by
  first occurrence (the reference uses set order, quirk Q1).

The reference's annotation fixes are applied (``<0>`` -> ``<1>``, ``[0k]`` -> ``[k]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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
)
from unipixel_pl.datamodules.schema import ObjectInfo, SampleMeta, Turn
from unipixel_pl.datamodules.writer import ShardSample

ANNOTATIONS = "Inst-IT-Dataset/inst_it_dataset_video_21k_w_mask.json"
TASKS: dict[str, tuple[int, str]] = {"video_qa": (10, "region"), "video_qa_mem": (8, "mem")}
MAX_OBJECTS = 5


def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """``root`` is ``data/inst_it``. Options: ``task`` (video_qa, video_qa_mem; default video_qa) and ``videos``
    (default ``root/Inst-IT-Dataset/videos_raw``)."""
    require(options, ("task", "videos"), "inst_it")
    task = options.get("task", "video_qa")
    if task not in TASKS:
        raise ConversionError(f"unknown Inst-IT task {task!r}; choose one of {sorted(TASKS)}")
    items = load_json(root / ANNOTATIONS)
    videos = Path(options.get("videos", root / "Inst-IT-Dataset" / "videos_raw"))
    return f"inst_it_{task}", _samples(task, split, items, videos)


def fix_markup(text: str) -> str:
    """The reference's fixes: frame ``<0>`` -> ``<1>`` and zero-padded ids ``[0k]`` -> ``[k]``."""
    return re.sub(r"\[0(\d)\]", r"[\1]", text.replace("<0>", "<1>"))


def _samples(task: str, split: str, items: list, videos: Path) -> Iterator[ShardSample | Drop]:
    max_frames, _ = TASKS[task]
    for item in items:
        paths = numbered(
            [p for p in (videos / item["video_path"].split("/", 1)[1]).iterdir() if p.suffix in (".jpg", ".png")]
        )
        if len(paths) > max_frames:
            yield Drop(f"over_{max_frames}_frames")
            continue
        yield from _records(task, split, item, paths)


def _first_mentions(text: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\[(\d+)\]", text)))


def _records(task: str, split: str, item: dict, paths: list[Path]) -> Iterator[ShardSample | Drop]:
    for index, pair in enumerate(item["question_answer_pairs"]):
        question, answer = fix_markup(pair["question"]), fix_markup(pair["answer"])
        oids = _first_mentions(question if task == "video_qa_mem" else question + " " + answer)
        if not 0 < len(oids) <= MAX_OBJECTS:
            yield Drop("objects_0_or_over_5")
            continue
        if task == "video_qa_mem":
            for oid in oids:
                question = question.replace(f"[{oid}]", f"[{oid}] {REF_TOKEN}", 1)
        yield _sample(
            task,
            split,
            item,
            paths,
            index,
            Turn("qa" if task == "video_qa" else "mem", question, answer, list(range(len(oids)))),
            oids,
        )


def _sample(
    task: str, split: str, item: dict, paths: list[Path], index: int, turn: Turn, oids: list[str]
) -> ShardSample | Drop:
    media, frames = frames_media(paths)
    segmentations = item["segmentations"]
    rows = [[_cell(segmentations, path.name, oid) for path in paths] for oid in oids]
    if all(cell is None for row in rows for cell in row):
        return Drop("no_mask")
    media_type = "video" if len(paths) > 1 else "image"
    meta = SampleMeta(
        source=f"inst_it_{task}",
        split=split,
        family=TASKS[task][1],
        data_type_template="region_video" if task == "video_qa" else f"mem_{{}}_{media_type}",
        vid=str(item["video_id"]),
        qid=str(index),
        media=media,
        turns=[turn],
        objects=[ObjectInfo(int(oid), "", i) for i, oid in enumerate(oids)],
    )
    try:
        table = mask_table(rows, media.height, media.width)
    except ConversionError:
        return Drop("mask_size_differs_from_frames")
    return ShardSample(meta, frames, masks=table)


def _cell(segmentations: dict, frame: str, oid: str) -> list | None:
    entry = segmentations.get(frame, {}).get(oid)
    return None if entry is None else [entry["mask"]]
