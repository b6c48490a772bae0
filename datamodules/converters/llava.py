"""LLaVA-style general QA (``llava_v1_5_mix665k...json``): a list of ``{id, image | video, conversations:
[{from: human | gpt, value}]}``.

Image items keep the original image bytes (``multimodal``), text-only items have no media; the ``<image>`` /
``<video>`` marker is removed from the first human turn (the media opens it online). Video items are frame
folders (kept as JPEGs); mp4 videos need fps-based sampling and a video decoder, not supported yet, and are
dropped (``mp4_video_unsupported``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from unipixel_pl.datamodules.converters.common import (
    ConverterOutput,
    Drop,
    frames_media,
    load_json,
    numbered,
    require,
    strip_media_marker,
)
from unipixel_pl.datamodules.schema import Media, SampleMeta, Turn
from unipixel_pl.datamodules.writer import ShardSample

SOURCE = "llava"
ANNOTATIONS = "llava_v1_5_mix665k_with_videogpt_plus_576k.json"


def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """``root`` holds the annotation file. Options: ``annotations`` (file name), ``images`` (default ``root``),
    ``videos`` (default ``root``), ``source`` (shard set name, default ``llava``)."""
    require(options, ("annotations", "images", "videos", "source"), SOURCE)
    items = load_json(root / options.get("annotations", ANNOTATIONS))
    images, videos = Path(options.get("images", root)), Path(options.get("videos", root))
    source = options.get("source", SOURCE)
    return source, _samples(source, split, items, images, videos)


def _samples(source: str, split: str, items: list, images: Path, videos: Path) -> Iterator[ShardSample | Drop]:
    for index, item in enumerate(items):
        yield _sample(source, split, index, item, images, videos)


def _turns(conversations: list[dict]) -> list[Turn] | None:
    roles = [conv["from"] for conv in conversations]
    if len(roles) % 2 or roles != ["human", "gpt"] * (len(roles) // 2):
        return None
    values = [conv["value"] for conv in conversations]
    values[0] = strip_media_marker(values[0])
    return [Turn("qa", values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _sample(source: str, split: str, index: int, item: dict, images: Path, videos: Path) -> ShardSample | Drop:
    turns = _turns(item["conversations"])
    if turns is None:
        return Drop("turns_not_human_gpt_pairs")
    if "image" in item:
        media, frames = frames_media([images / item["image"]])
    elif "video" in item:
        path = videos / item["video"]
        if not path.is_dir():
            return Drop("mp4_video_unsupported")
        media, frames = frames_media(numbered(path.glob("*.jpg")))
    else:
        media, frames = Media(kind="none", num_frames=0), []
    meta = SampleMeta(
        source=source,
        split=split,
        family="mm",
        data_type_template="multimodal" if media.kind != "none" else "text",
        vid=str(item.get("id", index)),
        qid=str(index),
        media=media,
        turns=turns,
    )
    return ShardSample(meta, frames)
