"""Referring video object segmentation sets sharing the ``meta_expressions.json`` layout (DATA.md §8):
``{"videos": {vid: {"frames": [name, ...], "expressions": {qid: {"exp": str, "obj_id": [...], "anno_id": [...]}}}}}``
plus a mask dictionary of per-frame RLEs (``None`` where absent).

* Ref-YouTube-VOS: ``mask_dict.pkl`` keyed by a running expression counter (train).
* Ref-DAVIS17: ``{split}/mask_dict.pkl``, same counter.
* MeViS, ReVOS, Ref-SAV (valid), LV-VIS: ``mask_dict.json`` keyed by ``anno_id``; an expression's mask is the
  union over its ``anno_id``s.
* MeViS ``valid`` and Ref-YouTube-VOS ``valid`` have no public masks (server-evaluated): their mask tables are all
  ``null`` (the data pipeline needs a table; nothing scores them).

One record per video (frames stored once) with one ``seg`` turn per expression, expanded online to one sample per
expression. ``meta.eval`` keeps the expression ids (``qids``), the frame names of the meta file (``frame_names``,
the names of the submission PNGs) and ReVOS's ``type_id`` per expression (``type_ids``: 0 referring, 1 reasoning;
required for ReVOS ``valid``, whose scorer groups by it). Training skips expressions without objects (MeViS,
ReVOS). ReVOS: ``sentence`` when the text ends with ``?``, else ``query``; TAO training videos are grouped by object
set and cropped to the frames where the target appears (at least 2), as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from unipixel_pl.datamodules.converters.common import (
    ConversionError,
    ConverterOutput,
    Drop,
    frames_media,
    load_json,
    load_pickle,
    mask_table,
    require,
)
from unipixel_pl.datamodules.schema import ObjectInfo, SampleMeta, Turn
from unipixel_pl.datamodules.writer import ShardSample


@dataclass
class Expression:
    """One referring expression with its per-frame mask parts (``parts[frame]`` = list of RLEs or None)."""

    qid: str
    text: str
    parts: list[list]
    turn_type: str = "query"
    type_id: int | None = None


@dataclass
class Layout:
    """Where a corpus keeps its files (relative to ``root``) and how it reads masks and turn types (no mask file:
    a mask-less server split)."""

    meta: str
    frames: str
    counter_masks: str | None = None
    anno_masks: str | None = None
    turn_type: Callable[[str], str] = lambda text: "query"
    skip_empty: bool = False
    crop_tao: bool = False
    text: Callable[[str], str] = str.strip
    require_type_ids: bool = False


LAYOUTS: dict[str, dict[str, Layout]] = {
    "ref_youtube_vos": {
        "train": Layout("meta_expressions/train/meta_expressions.json", "train/JPEGImages", "mask_dict.pkl"),
        "valid": Layout("meta_expressions/valid/meta_expressions.json", "valid/JPEGImages"),
    },
    "ref_davis17": {
        split: Layout(
            f"meta_expressions/{split}/meta_expressions.json", "DAVIS/JPEGImages/480p", f"{split}/mask_dict.pkl"
        )
        for split in ("train", "valid")
    },
    "mevis": {
        split: Layout(
            f"{split}/meta_expressions.json",
            f"{split}/JPEGImages",
            anno_masks=None if split == "valid" else f"{split}/mask_dict.json",
            skip_empty=split == "train",
        )
        for split in ("train", "valid_u", "valid")
    },
    "revos": {
        split: Layout(
            f"meta_expressions_{split}_.json",
            ".",
            anno_masks="mask_dict.json",
            turn_type=lambda text: "sentence" if text.endswith("?") else "query",
            skip_empty=split == "train",
            crop_tao=split == "train",
            require_type_ids=split == "valid",
        )
        for split in ("train", "valid")
    },
    "ref_sav": {
        "valid": Layout(
            "valid/meta_expressions_valid.json",
            "valid/videos",
            anno_masks="valid/mask_dict.json",
            turn_type=lambda text: "description",
        ),
    },
    "lvvis": {
        "train": Layout(
            "meta_expressions.json",
            "train/JPEGImages",
            anno_masks="mask_dict.json",
            text=lambda text: text.replace("_", " ").strip(),
        )
    },
}


def converter(corpus: str) -> Callable[..., tuple[str, ConverterOutput]]:
    """The ``convert(root, split)`` function of one corpus of ``LAYOUTS``."""

    def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
        require(options, (), corpus)
        if split not in LAYOUTS[corpus]:
            raise ConversionError(
                f"{corpus} split {split!r} is not convertible; convertible splits: {sorted(LAYOUTS[corpus])}"
            )
        layout = LAYOUTS[corpus][split]
        videos = load_json(root / layout.meta)["videos"]
        masks = _mask_lookup(root, layout)
        return corpus, _records(corpus, split, root / layout.frames, videos, masks, layout)

    convert.__doc__ = f"Convert {corpus} ({', '.join(sorted(LAYOUTS[corpus]))}); no options."
    return convert


def _mask_lookup(root: Path, layout: Layout) -> Callable[[dict, int, int], list[list]]:
    """``(expression, running index, frames) -> parts[frame]``: the expression's RLE parts on every frame."""
    if layout.counter_masks is None and layout.anno_masks is None:
        return lambda expression, index, frames: [[None]] * frames
    if layout.counter_masks is not None:
        counter = load_pickle(root / layout.counter_masks)
        return lambda expression, index, frames: [[rle] for rle in counter[str(index)]]
    by_anno = load_json(root / layout.anno_masks)  # type: ignore[operator]

    def union_parts(expression: dict, index: int, frames: int) -> list[list]:
        tracks = [by_anno[str(anno)] for anno in expression.get("anno_id", [])]
        return [list(parts) for parts in zip(*tracks, strict=True)] if tracks else [[None]] * frames

    return union_parts


def _records(
    corpus: str, split: str, frame_root: Path, videos: dict, masks: Callable, layout: Layout
) -> Iterator[ShardSample | Drop]:
    index = 0
    for vid, video in videos.items():
        expressions = []
        for qid, expression in video["expressions"].items():
            index += 1
            if layout.skip_empty and not expression.get("obj_id"):
                yield Drop("no_object")
                continue
            text = layout.text(expression["exp"])
            parts = masks(expression, index - 1, len(video["frames"]))
            type_id = _type_id(expression, f"{vid}/{qid}", layout.require_type_ids)
            expressions.append(Expression(qid, text, parts, layout.turn_type(text), type_id))
        if layout.crop_tao and vid.split("/")[0] == "TAO":
            groups = _tao_groups(video, expressions)
        else:
            groups = [("", expressions, 0, len(video["frames"]))]
        for group, members, start, end in groups:
            if group and end - start < 2:
                yield Drop("tao_span_below_2_frames")
                continue
            yield _record(corpus, split, frame_root, vid, group, video["frames"][start:end], members, start)


def _type_id(expression: dict, name: str, required: bool) -> int | None:
    """The expression's ReVOS ``type_id`` (None when absent); raises when ``required`` and absent."""
    if "type_id" in expression:
        return int(expression["type_id"])
    if required:
        raise ConversionError(
            f"expression {name} has no type_id; ReVOS valid needs meta_expressions_valid_.json with type_id"
        )
    return None


def _eval_fields(expressions: list[Expression], frames: list[str]) -> dict:
    """``meta.eval``: expression ids, frame names and, when every expression has one, the ReVOS type ids."""
    fields: dict = {"qids": [e.qid for e in expressions], "frame_names": list(frames)}
    if all(e.type_id is not None for e in expressions):
        fields["type_ids"] = [e.type_id for e in expressions]
    return fields


def _tao_groups(video: dict, expressions: list[Expression]) -> list[tuple[str, list[Expression], int, int]]:
    """TAO videos: expressions grouped by object set, each group cropped to the first object's visible span."""
    groups: dict[str, list[Expression]] = {}
    for expression, meta in zip(expressions, _expression_metas(video, expressions), strict=True):
        key = "_".join(str(o) for o in sorted(meta.get("obj_id", [])))
        groups.setdefault(key, []).append(expression)
    spans = []
    for key, members in groups.items():
        visible = [i for i, parts in enumerate(members[0].parts) if any(p is not None for p in parts)]
        start, end = (visible[0], visible[-1] + 1) if visible else (0, 0)
        spans.append((f"obj{key}", members, start, end))
    return spans


def _expression_metas(video: dict, expressions: list[Expression]) -> list[dict]:
    return [video["expressions"][expression.qid] for expression in expressions]


def _record(
    corpus: str,
    split: str,
    frame_root: Path,
    vid: str,
    group: str,
    frames: list[str],
    expressions: list[Expression],
    start: int,
) -> ShardSample | Drop:
    if not expressions:
        return Drop("no_expression")
    media, payload = frames_media(
        [frame_root / vid / f"{name}.jpg" for name in frames], range(start, start + len(frames))
    )
    cropped = [e.parts[start : start + len(frames)] for e in expressions]
    if any(len(parts) != len(frames) for parts in cropped):
        return Drop("mask_frame_count_mismatch")
    try:
        table = mask_table(cropped, media.height, media.width)
    except ConversionError:
        return Drop("mask_size_mismatch")
    meta = SampleMeta(
        source=corpus,
        split=split,
        family="seg",
        data_type_template="seg_video" if len(frames) > 1 else "seg_image",
        vid=vid,
        qid=group,
        media=media,
        turns=[Turn(e.turn_type, e.text, "", [i]) for i, e in enumerate(expressions)],
        objects=[ObjectInfo(i, "", i) for i in range(len(expressions))],
        expand=True,
        eval=_eval_fields(expressions, frames),
    )
    return ShardSample(meta, payload, masks=table)
