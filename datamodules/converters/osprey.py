"""Osprey-724K region conversations: ``osprey_{conversation,lvis_positive_negative,detail_description}.json``
(``id``, ``file_name``, ``height``, ``width``, ``annotation`` = COCO objects with ``segmentation``, and
``conversations`` or ``description``) over COCO images.

``<regionN>`` (after the reference's fixes of malformed tags) becomes ``[N]`` and object ``N`` is
``annotation[N - 1]``; an item with a tag that cannot be fixed or points past its annotations is dropped
(``invalid_region_tags``). Detail descriptions become ``description`` turns whose question is templated online.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from unipixel_pl.datamodules.converters.common import (
    ConversionError,
    ConverterOutput,
    Drop,
    frames_media,
    load_json,
    mask_table,
    require,
    strip_media_marker,
)
from unipixel_pl.datamodules.schema import ObjectInfo, SampleMeta, Turn
from unipixel_pl.datamodules.writer import ShardSample

KINDS: dict[str, tuple[str, str]] = {
    "conversation": ("osprey_conversation.json", "coco/train2014"),
    "pos_neg": ("osprey_lvis_positive_negative.json", "coco/imgs"),
    "detail_description": ("osprey_detail_description.json", "coco/train2014"),
}
TAG_FIXES: tuple[tuple[str, str], ...] = (
    (r"<Region(\d+)>", r"<region\1>"),
    (r"<regin ?(\d+)>", r"<region\1>"),
    (r"<region(\d+)\]", r"<region\1>"),
    (r"<region(\d+)[^\d>]", r"<region\1>"),
    (r"<region (\d+)>", r"<region\1>"),
    (r"<region of(\d+)>", r"<region\1>"),
)


def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """``root`` is ``data/osprey``. Options: ``kind`` (conversation, pos_neg, detail_description; default
    conversation) and ``images`` (default per kind under ``root``)."""
    require(options, ("kind", "images"), "osprey")
    kind = options.get("kind", "conversation")
    if kind not in KINDS:
        raise ConversionError(f"unknown Osprey kind {kind!r}; choose one of {sorted(KINDS)}")
    annotations, images = KINDS[kind]
    items = load_json(root / "Osprey-724K" / annotations)
    return f"osprey_{kind}", _samples(kind, split, items, Path(options.get("images", root / images)))


def _samples(kind: str, split: str, items: list, images: Path) -> Iterator[ShardSample | Drop]:
    for item in items:
        parsed = _description(item) if kind == "detail_description" else _conversation(item)
        yield Drop("invalid_region_tags") if parsed is None else _sample(kind, split, item, images, *parsed)


def fix_tags(text: str) -> str:
    """Apply the reference's repairs of malformed ``<regionN>`` tags."""
    for pattern, replacement in TAG_FIXES:
        text = re.sub(pattern, replacement, text)
    return text


def _objects_of(text: str, count: int, order: list[int]) -> str | None:
    """``text`` with ``<regionN>`` -> ``[N]``, appending new ids to ``order``; None on an invalid tag."""
    if "<region>" in text:
        return None
    for match in re.findall(r"<region(\d+)>", text):
        if not 1 <= int(match) <= count:
            return None
        if int(match) not in order:
            order.append(int(match))
    text = re.sub(r"<region(\d+)>", r"[\1]", text)
    return None if "<region" in text else text


def _conversation(item: dict) -> tuple[list[Turn], list[int]] | None:
    order: list[int] = []
    values = [fix_tags(conv["value"]) for conv in item["conversations"]]
    values[0] = strip_media_marker(values[0])
    texts = [_objects_of(value, len(item["annotation"]), order) for value in values]
    if any(text is None for text in texts) or not order or len(texts) % 2:
        return None
    turns = [
        Turn("qa", texts[i], texts[i + 1], _mentioned(texts[i] + texts[i + 1], order)) for i in range(0, len(texts), 2)
    ]
    return turns, order


def _mentioned(text: str, order: list[int]) -> list[int]:
    return [order.index(int(n)) for n in dict.fromkeys(re.findall(r"\[(\d+)\]", text)) if int(n) in order]


def _description(item: dict) -> tuple[list[Turn], list[int]] | None:
    order: list[int] = []
    turns = []
    for description in item["description"]:
        text = fix_tags(description).strip()
        found = re.findall(r"<region(\d+)>", text)
        body = re.findall(r"<region\d+>: (.*)", text)
        if len(found) != 1 or not body or not 1 <= int(found[0]) <= len(item["annotation"]):
            return None
        if int(found[0]) not in order:
            order.append(int(found[0]))
        turns.append(Turn("description", "", body[0].strip(), [order.index(int(found[0]))]))
    return (turns, order) if order else None


def _sample(kind: str, split: str, item: dict, images: Path, turns: list[Turn], order: list[int]) -> ShardSample | Drop:
    media, frames = frames_media([images / item["file_name"]])
    height, width = item["height"], item["width"]
    if (media.height, media.width) != (height, width):
        return Drop("image_size_differs_from_annotation")
    meta = SampleMeta(
        source=f"osprey_{kind}",
        split=split,
        family="region",
        data_type_template="region_image",
        vid=Path(item["file_name"]).stem,
        qid=str(item["id"]),
        media=media,
        turns=turns,
        objects=[ObjectInfo(n, item["annotation"][n - 1].get("category_name", ""), i) for i, n in enumerate(order)],
    )
    rows = [[[item["annotation"][n - 1]["segmentation"]]] for n in order]
    return ShardSample(meta, frames, masks=mask_table(rows, height, width))
