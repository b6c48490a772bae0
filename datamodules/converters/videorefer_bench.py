"""VideoRefer-Bench-Q (``VideoRefer-Bench/VideoRefer-Bench-Q.json``) and PixelQA, the two-pass benchmark built from
it (``reference/EVAL.md`` §3, §4).

An item has ``id``, ``video`` (a frame folder such as ``DAVIS/JPEGImages/480p/aerobatics``, or a video file, under
``VideoRefer-Bench/videos``), ``Question`` with ``<objectN><region>`` tags, ``type``, lettered ``options``
(``(A) ...``), ``Answer`` (``(A) ...``), ``frame_idx`` and ``annotation`` (per object, ``{frame: {"segmentation":
rle}}``). A record holds the annotated frames only (every object's, ascending) with ``prompt_frame`` at
``frame_idx`` (the sampler always keeps it), one mask row per object, ``meta.options`` (without their letters),
``meta.ans`` (the letter) and ``meta.task`` (the question type).

* ``videorefer_q`` (``region_video``): the question with every ``<objectN><region>`` and ``<objectN>`` as
  ``[N]``, the options and ``Please only give the best option.``; the mask prompts (``refer.json``) are the masks on
  ``frame_idx`` only (``--option masks=single``, default) or on every annotated frame (``masks=multi``).
* ``pixelqa`` (``mem_point_video``, ``mem_box_video``, or ``mem_{}_video`` by ``--option prompt=point|box|mix``):
  the question with ``[N] <|ref|>`` per tagged object and the options, no answer (so pass 1 lists every option and
  pass 2 finds them after ``Options:``). ``mix`` draws point or box per sample (the reference draws per object).

A bare ``<region>`` (one object) is object ``[0]``. Items whose tags do not match their objects are errors; an item
with an object without a mask on ``frame_idx`` is dropped (counted in the manifest): its prompt would be empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from unipixel_pl.config import REF_TOKEN
from unipixel_pl.datamodules import templates as tpl
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
from unipixel_pl.datamodules.converters.videos import read_video
from unipixel_pl.datamodules.rle import MaskTable
from unipixel_pl.datamodules.schema import Media, ObjectInfo, SampleMeta, Turn
from unipixel_pl.datamodules.writer import ShardSample

ANNOTATIONS, VIDEOS = "VideoRefer-Bench/VideoRefer-Bench-Q.json", "VideoRefer-Bench/videos"
TAGGED = re.compile(r"<object(\d+)><region>")
LETTER = re.compile(r"^\(([A-Z])\)\s*")
MASK_MODES = ("single", "multi")
PIXELQA_TYPES = {"point": "mem_point_video", "box": "mem_box_video", "mix": "mem_{}_video"}


@dataclass
class BenchItem:
    """One VideoRefer-Bench-Q question, parsed.

    Attributes:
        raw: the JSON entry.
        qid: the item's ``id``.
        oids: the ``[N]`` of each annotated object, in annotation order.
        frames: the annotated frames (original indices, ascending).
        prompt: position of ``frame_idx`` among ``frames``.
        rows: per object, per frame of ``frames``, its RLE parts (or None).
    """

    raw: dict
    qid: str
    oids: list[int]
    frames: list[int]
    prompt: int
    rows: list[list[list | None]]

    def text(self, mention: str) -> str:
        """``Question`` and lettered options with each tagged object written ``mention.format(N)``."""
        block = "\n".join([self.raw["Question"].strip(), "Options:", *self.raw["options"]])
        return rewrite(block, mention)

    def options(self) -> list[str]:
        """The options without their ``(A)`` letters, tags written ``[N]``."""
        return [LETTER.sub("", rewrite(option, "[{}]")).strip() for option in self.raw["options"]]

    def answer(self) -> str:
        """The answer letter (``Answer`` is ``(A) ...``)."""
        match = LETTER.match(self.raw["Answer"].strip())
        letters = [chr(ord("A") + i) for i in range(len(self.raw["options"]))]
        if match is None or match.group(1) not in letters:
            raise ConversionError(
                f"VideoRefer-Bench-Q item {self.qid}: Answer {self.raw['Answer']!r} is not one of {letters}"
            )
        return match.group(1)


def rewrite(text: str, mention: str) -> str:
    """``<objectN><region>`` -> ``mention.format(N)``, other ``<objectN>`` -> ``[N]``, bare ``<region>`` -> object 0."""
    text = TAGGED.sub(lambda match: mention.format(match.group(1)), text)
    text = re.sub(r"<object(\d+)>", r"[\1]", text)
    return text.replace("<region>", mention.format(0))


def object_ids(question: str, num_objects: int, qid: str) -> list[int]:
    """The ``[N]`` of each object: the tags' numbers, or ``[0]`` for one bare ``<region>``."""
    oids = [int(n) for n in TAGGED.findall(question)] or ([0] if question.count("<region>") == 1 else [])
    if len(oids) != num_objects or question.count("<region>") != num_objects:
        raise ConversionError(
            f"VideoRefer-Bench-Q item {qid}: {question.count('<region>')} <region> tag(s) for {num_objects} "
            f"annotated object(s): {question!r}"
        )
    return oids


def parse_item(index: int, raw: dict) -> BenchItem:
    """A ``BenchItem`` from one JSON entry (``index`` names it when it has no ``id``)."""
    qid = str(raw.get("id", index))
    annotation = raw["annotation"]
    frames = sorted({int(frame) for obj in annotation for frame in obj})
    frame_idx = int(raw["frame_idx"])
    if frame_idx not in frames:
        raise ConversionError(f"VideoRefer-Bench-Q item {qid}: frame_idx {frame_idx} is not an annotated frame")
    rows = [[_parts(obj.get(str(frame))) for frame in frames] for obj in annotation]
    oids = object_ids(raw["Question"], len(annotation), qid)
    return BenchItem(raw, qid, oids, frames, frames.index(frame_idx), rows)


def _parts(entry: dict | None) -> list | None:
    return None if entry is None or entry.get("segmentation") is None else [entry["segmentation"]]


def load_items(root: Path, split: str, options: dict[str, str], allowed: tuple[str, ...], corpus: str) -> list:
    """The JSON entries, after checking the options and the split (``test``)."""
    require(options, ("annotations", "videos", *allowed), corpus)
    if split != "test":
        raise ConversionError(f"{corpus} has one split, test; got {split!r}")
    return load_json(root / options.get("annotations", ANNOTATIONS))


def convert_q(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """VideoRefer-Bench-Q. ``root`` is ``data/videorefer``. Options: ``masks`` (single, multi; default single),
    ``annotations`` (relative to ``root``), ``videos`` (default ``root/VideoRefer-Bench/videos``)."""
    items = load_items(root, split, options, ("masks",), "videorefer_q")
    mode = options.get("masks", "single")
    if mode not in MASK_MODES:
        raise ConversionError(f"unknown mask prompt mode {mode!r}; choose one of {MASK_MODES}")
    videos = Path(options.get("videos", root / VIDEOS))
    return "videorefer_q", _samples(items, videos, _question_meta, single_frame_prompts=mode == "single")


def convert_pixelqa(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """PixelQA. ``root`` is ``data/videorefer``. Options: ``prompt`` (point, box, mix; default point),
    ``annotations`` (relative to ``root``), ``videos`` (default ``root/VideoRefer-Bench/videos``)."""
    items = load_items(root, split, options, ("prompt",), "pixelqa")
    prompt = options.get("prompt", "point")
    if prompt not in PIXELQA_TYPES:
        raise ConversionError(f"unknown PixelQA prompt {prompt!r}; choose one of {sorted(PIXELQA_TYPES)}")
    videos = Path(options.get("videos", root / VIDEOS))
    data_type = PIXELQA_TYPES[prompt]
    return "pixelqa", _samples(items, videos, lambda item, media: _pixelqa_meta(item, media, data_type))


def _samples(
    items: list, videos: Path, build: Callable[[BenchItem, Media], SampleMeta], single_frame_prompts: bool = False
) -> Iterator[ShardSample | Drop]:
    """One record per item (``build`` writes its meta); ``single_frame_prompts`` adds the ``frame_idx`` masks as
    ``refer.json``."""
    for index, raw in enumerate(items):
        item = parse_item(index, raw)
        media, frames, video = _media(videos / raw["video"], item.frames)
        media.prompt_frame = item.prompt
        table = mask_table(item.rows, media.height, media.width)
        on_prompt = table.decode(range(len(item.oids)), [item.prompt])[0]  # (O, H, W)
        if not on_prompt.reshape(len(item.oids), -1).any(axis=1).all():
            yield Drop("object_without_mask_on_frame_idx")
            continue
        refer = _single_frame(table, item) if single_frame_prompts else None
        yield ShardSample(build(item, media), frames, video=video, masks=table, refer=refer)


def _single_frame(table: MaskTable, item: BenchItem) -> MaskTable:
    """``table`` with every frame but ``frame_idx`` emptied (the single-frame mask prompts)."""
    rows = [[cell if frame == item.prompt else None for frame, cell in enumerate(row)] for row in table.objects]
    return MaskTable(table.height, table.width, rows)


def _media(path: Path, frames: list[int]) -> tuple[Media, list[bytes], bytes | None]:
    """The annotated ``frames`` of a frame folder (kept as files) or of a video file (kept as its bytes)."""
    if path.is_dir():
        paths = numbered(path.glob("*.jpg"))
        if frames[-1] >= len(paths):
            raise ConversionError(f"annotated frame {frames[-1]} is beyond the {len(paths)} frames of {path}")
        media, payload = frames_media([paths[i] for i in frames], frames)
        return media, payload, None
    video = read_video(path)
    return video.media(frames), [], video.data


def _meta(item: BenchItem, media: Media, source: str, data_type: str, family: str, turn: Turn) -> SampleMeta:
    return SampleMeta(
        source=source,
        split="test",
        family=family,
        data_type_template=data_type,
        vid=Path(item.raw["video"]).name,
        qid=item.qid,
        media=media,
        turns=[turn],
        objects=[ObjectInfo(oid, "", index) for index, oid in enumerate(item.oids)],
        options=item.options(),
        ans=item.answer(),
        task=item.raw["type"],
    )


def _question_meta(item: BenchItem, media: Media) -> SampleMeta:
    text = f"{item.text('[{}]')}\n{tpl.MCQ_SUFFIX}"
    turn = Turn("qa", text, tpl.MCQ_ANSWER.format(item.answer()), list(range(len(item.oids))))
    return _meta(item, media, "videorefer_q", "region_video", "region", turn)


def _pixelqa_meta(item: BenchItem, media: Media, data_type: str) -> SampleMeta:
    turn = Turn("mem", item.text("[{}] " + REF_TOKEN), "", list(range(len(item.oids))))
    return _meta(item, media, "pixelqa", data_type, "mem", turn)
