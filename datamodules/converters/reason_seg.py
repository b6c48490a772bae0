"""ReasonSeg (LISA): ``{split}/*.jpg`` with a same-name LabelMe ``.json`` (``text``, ``is_sentence``, polygon
``shapes`` labelled ``target``/``ignore``/``flag``) and ``explanatory/train.json`` under ``root`` (``ReasonSeg``).

One record per image, one sample per text entry (``expand``; also at evaluation), plus an ``explanatory`` turn for
the training images listed in ``explanatory/train.json``. Polygons are drawn largest first, later (smaller) ones on
top, ``flag`` shapes dropped, as the reference does; the target mask is what ends up ``target``, ``ignore.json``
what ends up ``ignore``. Polygons are rasterised by pycocotools (the reference uses OpenCV, whose outline pixels
can differ by one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from unipixel_pl.datamodules.converters.common import (
    ConversionError,
    ConverterOutput,
    Drop,
    frames_media,
    load_json,
    require,
)
from unipixel_pl.datamodules.rle import MaskTable, encode_mask, polygons_to_mask
from unipixel_pl.datamodules.schema import ObjectInfo, SampleMeta, Turn
from unipixel_pl.datamodules.writer import ShardSample

SOURCE = "reason_seg"
SPLITS = {"train": "train", "val": "val", "valid": "val", "test": "test"}


def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """No options; ``split`` is ``train``, ``val`` or ``test``."""
    require(options, (), SOURCE)
    if split not in SPLITS:
        raise ConversionError(f"ReasonSeg has splits {sorted(SPLITS)}, got {split!r}")
    images = sorted((root / SPLITS[split]).glob("*.jpg"))
    if not images:
        raise ConversionError(f"no ReasonSeg images in {root / SPLITS[split]}")
    explanatory = {}
    if split == "train" and (root / "explanatory" / "train.json").is_file():
        explanatory = {Path(item["image"]).stem: item for item in load_json(root / "explanatory" / "train.json")}
    return SOURCE, _samples(images, split, explanatory)


def _samples(images: list[Path], split: str, explanatory: dict) -> Iterator[ShardSample | Drop]:
    for image in images:
        yield _sample(image, split, explanatory.get(image.stem))


def paint_shapes(shapes: list[dict], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(target, ignore)`` bool masks: shapes painted largest first, ``flag`` shapes skipped."""
    drawn = [s for s in shapes if s["label"] in ("target", "ignore")]
    masks = [
        polygons_to_mask([np.asarray(s["points"], dtype=float).reshape(-1).tolist()], height, width) for s in drawn
    ]
    labels = np.zeros((height, width), dtype=np.int8)
    for index in np.argsort([-int(mask.sum()) for mask in masks], kind="stable"):
        labels[masks[index]] = 1 if drawn[index]["label"] == "target" else -1
    return labels == 1, labels == -1


def _sample(image: Path, split: str, explanatory: dict | None) -> ShardSample | Drop:
    annotation = load_json(image.with_suffix(".json"))
    media, frames = frames_media([image])
    target, ignore = paint_shapes(annotation["shapes"], media.height, media.width)
    if not target.any():
        return Drop("empty_target")
    kind = "sentence" if annotation.get("is_sentence") else "query"
    turns = [Turn(kind, text, "", [0]) for text in annotation["text"]]
    if explanatory is not None:
        turns.append(Turn("explanatory", explanatory["query"], explanatory["outputs"], [0]))
    meta = SampleMeta(
        source=SOURCE,
        split=split,
        family="seg",
        data_type_template="seg_image",
        vid=image.stem,
        media=media,
        turns=turns,
        objects=[ObjectInfo(0, "target", 0)],
        expand=True,
    )
    masks = MaskTable(media.height, media.width, [[encode_mask(target)]])
    ignored = MaskTable(media.height, media.width, [[encode_mask(ignore) if ignore.any() else None]])
    return ShardSample(meta, frames, masks=masks, ignore=ignored)
