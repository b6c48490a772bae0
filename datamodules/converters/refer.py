"""RefCOCO, RefCOCO+, RefCOCOg and RefClef from the REFER files: ``{dataset}/refs({split_by}).p`` and
``{dataset}/instances.json`` (COCO format) under ``root`` (``data/lisa/refer_seg``).

One record per image holding every referring sentence of the split as a ``query`` turn (one object per referred
annotation). Training draws up to ``max_conv_turns`` sentences per sample (DATA.md §8); evaluation splits are
expanded to one sample per sentence (``expand``), with the sentence ids in ``meta.eval`` and the boxes in
``gt.json``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
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

DATASETS: dict[str, tuple[str, str]] = {
    "refcoco": ("unc", "images/mscoco/images/train2014"),
    "refcoco+": ("unc", "images/mscoco/images/train2014"),
    "refcocog": ("umd", "images/mscoco/images/train2014"),
    "refclef": ("unc", "images/saiapr_tc-12"),
}


def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """Options: ``dataset`` (refcoco, refcoco+, refcocog, refclef), ``split_by`` (default unc, umd for
    refcocog), ``images`` (image directory, default under ``root``)."""
    require(options, ("dataset", "split_by", "images"), "refcoco")
    dataset = options.get("dataset", "refcoco")
    if dataset not in DATASETS:
        raise ConversionError(f"unknown REFER dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    split_by, images = DATASETS[dataset]
    refs = load_pickle(root / dataset / f"refs({options.get('split_by', split_by)}).p")
    instances = load_json(root / dataset / "instances.json")
    image_dir = Path(options.get("images", root / images))
    return dataset, _samples(dataset, split, refs, instances, image_dir)


def _samples(dataset: str, split: str, refs: list, instances: dict, image_dir: Path) -> Iterator[ShardSample | Drop]:
    images = {image["id"]: image for image in instances["images"]}
    annotations = {ann["id"]: ann for ann in instances["annotations"]}
    categories = {cat["id"]: cat["name"] for cat in instances.get("categories", [])}
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ref in refs:
        if ref["split"] == split:
            by_image[ref["image_id"]].append(ref)
    if not by_image:
        raise ConversionError(f"{dataset} has no refs in split {split!r}")
    for image_id, image_refs in by_image.items():
        yield _sample(dataset, split, images[image_id], image_refs, annotations, categories, image_dir)


def _sample(
    dataset: str, split: str, image: dict, refs: list, annotations: dict, categories: dict, image_dir: Path
) -> ShardSample | Drop:
    path = image_dir / image["file_name"]
    media, frames = frames_media([path])
    height, width = image["height"], image["width"]
    if (media.height, media.width) != (height, width):
        return Drop("image_size_differs_from_annotation")
    anns = [annotations[ref["ann_id"]] for ref in refs]
    objects = [ObjectInfo(i, categories.get(ann.get("category_id"), ""), i) for i, ann in enumerate(anns)]
    turns = [Turn("query", sent["sent"], "", [i]) for i, ref in enumerate(refs) for sent in ref["sentences"]]
    meta = SampleMeta(
        source=dataset,
        split=split,
        family="seg",
        data_type_template="seg_image",
        vid=path.stem,
        media=media,
        turns=turns,
        objects=objects,
        expand=split != "train",
        eval={"sent_ids": [sent["sent_id"] for ref in refs for sent in ref["sentences"]]},
    )
    table = mask_table([[[ann["segmentation"]]] for ann in anns], height, width)
    boxes = [[x, y, x + w, y + h] for x, y, w, h in (ann["bbox"] for ann in anns)]
    return ShardSample(meta, frames, masks=table, gt=None if split == "train" else {"boxes": boxes})
