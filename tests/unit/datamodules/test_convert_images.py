"""Image-corpus converters on tiny files written in the original formats: REFER (RefCOCO family), ReasonSeg,
Osprey and LLaVA."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from unipixel_pl.config import MEM_TOKEN
from unipixel_pl.datamodules.converters import ConversionError, run_converter
from unipixel_pl.datamodules.encode import SampleEncoder
from unipixel_pl.datamodules.rle import decode_rle

from .converter_helpers import box_mask, build_every_unit, convert, rle, write_jpeg

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under numpy 2
H, W = 20, 30
POLYGON = [2.0, 2.0, 12.0, 2.0, 12.0, 10.0, 2.0, 10.0]


def _polygon_mask(polygon: list[float], height: int = H, width: int = W) -> np.ndarray:
    merged = coco_mask.merge(coco_mask.frPyObjects([polygon], height, width))
    return coco_mask.decode(merged).astype(bool)


@pytest.fixture
def refer_root(tmp_path: Path) -> Path:
    root = tmp_path / "refer_seg"
    images = [
        {"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": H, "width": W},
        {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "height": 16, "width": 12},
    ]
    annotations = [
        {"id": 10, "image_id": 1, "segmentation": [POLYGON], "bbox": [2, 2, 10, 8], "category_id": 1},
        {"id": 11, "image_id": 1, "segmentation": rle(box_mask(H, W, 12, 18, 20, 28)), "bbox": [20, 12, 8, 6]},
        {"id": 12, "image_id": 2, "segmentation": [[1, 1, 8, 1, 8, 8, 1, 8]], "bbox": [1, 1, 7, 7], "category_id": 2},
    ]
    refs = [
        {
            "ref_id": 0,
            "ann_id": 10,
            "image_id": 1,
            "split": "train",
            "sentences": [{"sent_id": 0, "sent": "man"}, {"sent_id": 1, "sent": "left guy"}],
        },
        {"ref_id": 1, "ann_id": 11, "image_id": 1, "split": "train", "sentences": [{"sent_id": 2, "sent": "the dog"}]},
        {
            "ref_id": 2,
            "ann_id": 12,
            "image_id": 2,
            "split": "val",
            "sentences": [{"sent_id": 3, "sent": "cup"}, {"sent_id": 4, "sent": "a mug"}],
        },
    ]
    for dataset in ("refcoco", "refcoco+"):
        (root / dataset).mkdir(parents=True)
        (root / dataset / "instances.json").write_text(
            json.dumps(
                {
                    "images": images,
                    "annotations": annotations,
                    "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "cup"}],
                }
            )
        )
        (root / dataset / "refs(unc).p").write_bytes(pickle.dumps(refs))
    for image in images:
        write_jpeg(root / "images/mscoco/images/train2014" / image["file_name"], image["height"], image["width"])
    return root


def test_refcoco_train_is_one_record_per_image_with_every_sentence(refer_root: Path, tmp_path: Path) -> None:
    manifest, [record] = convert("refcoco", refer_root, tmp_path / "out")
    assert manifest.source == "refcoco" and manifest.num_records == 1 and manifest.data_types == {"seg_image": 1}
    meta = record.meta
    assert record.key == "refcoco__COCO_train2014_000000000001" and not meta.expand
    assert [(t.text, t.objects) for t in meta.turns] == [("man", [0]), ("left guy", [0]), ("the dog", [1])]
    assert [o.category for o in meta.objects] == ["person", ""]
    np.testing.assert_array_equal(decode_rle(record.masks.objects[0][0]), _polygon_mask(POLYGON))
    np.testing.assert_array_equal(decode_rle(record.masks.objects[1][0]), box_mask(H, W, 12, 18, 20, 28))
    assert len(build_every_unit([record])) == 2


def test_refcoco_evaluation_splits_expand_per_sentence(refer_root: Path, tmp_path: Path) -> None:
    manifest, [record] = convert("refcoco+", refer_root, tmp_path / "out", split="val")
    assert manifest.source == "refcoco+" and manifest.num_samples == 2 and record.meta.expand
    assert record.meta.eval == {"sent_ids": [3, 4]}
    assert json.loads(record.members["gt.json"]) == {"boxes": [[1, 1, 8, 8]]}
    built = build_every_unit([record])
    assert [b.key for b in built[2:]] == [f"{record.key}__t0", f"{record.key}__t1"]
    assert built[2].task.messages[0]["content"][1]["text"] == "Can you segment the cup in this image?"
    with pytest.raises(ConversionError, match="no refs in split 'testB'"):
        run_converter("refcoco", refer_root, tmp_path / "none", "testB")


def test_reason_seg_paints_largest_first_and_keeps_ignore(tmp_path: Path) -> None:
    root = tmp_path / "ReasonSeg"
    write_jpeg(root / "train/a.jpg", H, W)
    write_jpeg(root / "train/b.jpg", H, W)
    big, small = [[2, 2], [20, 2], [20, 15], [2, 15]], [[5, 5], [10, 5], [10, 10], [5, 10]]
    shapes = [
        {"label": "ignore", "points": small, "shape_type": "polygon", "image_name": "a.jpg"},
        {"label": "target", "points": big, "shape_type": "polygon", "image_name": "a.jpg"},
        {"label": "flag", "points": small, "shape_type": "polygon", "image_name": "a.jpg"},
    ]
    (root / "train/a.json").write_text(
        json.dumps({"text": ["What holds food?", "A bowl"], "is_sentence": True, "shapes": shapes})
    )
    (root / "train/b.json").write_text(json.dumps({"text": ["x"], "is_sentence": False, "shapes": shapes[:1]}))
    (root / "explanatory").mkdir()
    (root / "explanatory/train.json").write_text(
        json.dumps([{"image": "a.jpg", "query": "Why?", "outputs": "Because."}])
    )
    manifest, [record] = convert("reason_seg", root, tmp_path / "out")
    assert manifest.filtered == {"empty_target": 1} and manifest.num_samples == 3
    flat = lambda points: [float(v) for point in points for v in point]  # noqa: E731
    big_mask, small_mask = _polygon_mask(flat(big)), _polygon_mask(flat(small))
    np.testing.assert_array_equal(decode_rle(record.masks.objects[0][0]), big_mask & ~small_mask)
    np.testing.assert_array_equal(decode_rle(json.loads(record.members["ignore.json"])["objects"][0][0]), small_mask)
    assert [t.type for t in record.meta.turns] == ["sentence", "sentence", "explanatory"]
    explained = build_every_unit([record])[-1]
    assert explained.task.messages[1]["content"] == "The target is <|seg|>. Because."


def test_osprey_region_tags_become_ids(tmp_path: Path) -> None:
    root = tmp_path / "osprey"
    write_jpeg(root / "coco/train2014/x.jpg", H, W)
    annotation = [{"segmentation": [POLYGON]}, {"segmentation": rle(box_mask(H, W, 12, 18, 20, 28))}]
    conversation = [
        {"from": "human", "value": "<image>\nWhat is <Region2> doing?"},
        {"from": "gpt", "value": "It looks at <region1>."},
    ]
    items = [
        {
            "id": 1,
            "file_name": "x.jpg",
            "height": H,
            "width": W,
            "annotation": annotation,
            "conversations": conversation,
        },
        {
            "id": 2,
            "file_name": "x.jpg",
            "height": H,
            "width": W,
            "annotation": annotation[:1],
            "conversations": conversation,
        },
    ]
    (root / "Osprey-724K").mkdir(parents=True)
    (root / "Osprey-724K/osprey_conversation.json").write_text(json.dumps(items))
    described = [
        {
            "id": 3,
            "file_name": "x.jpg",
            "height": H,
            "width": W,
            "annotation": annotation,
            "description": ["<region1>: A box."],
        }
    ]
    (root / "Osprey-724K/osprey_detail_description.json").write_text(json.dumps(described))
    manifest, [record] = convert("osprey", root, tmp_path / "conv")
    assert manifest.filtered == {"invalid_region_tags": 1}
    assert [(o.oid, o.mask_index) for o in record.meta.objects] == [(2, 0), (1, 1)]
    assert (record.meta.turns[0].text, record.meta.turns[0].answer) == ("What is [2] doing?", "It looks at [1].")
    np.testing.assert_array_equal(decode_rle(record.masks.objects[1][0]), _polygon_mask(POLYGON))
    built = build_every_unit([record])[1]
    prefix = f"Here is an image with the following highlighted regions:\n[2]: {MEM_TOKEN}\n[1]: {MEM_TOKEN}\n"
    assert built.task.messages[0]["content"][1]["text"] == prefix + "What is [2] doing?"
    _, [detail] = convert("osprey", root, tmp_path / "detail", kind="detail_description")
    question = build_every_unit([detail])[1].task.messages[0]["content"][1]["text"]
    assert question.endswith(
        "Can you provide me with a detailed description of the region in the picture marked by [1]?"
    )


def test_llava_keeps_images_and_text_and_drops_mp4_videos(tmp_path: Path, encoder: SampleEncoder) -> None:
    write_jpeg(tmp_path / "coco/1.jpg", H, W)
    items = [
        {
            "id": "a",
            "image": "coco/1.jpg",
            "conversations": [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "Grey."}],
        },
        {"id": "b", "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
        {
            "id": "c",
            "video": "v.mp4",
            "conversations": [{"from": "human", "value": "<video>\nWhat?"}, {"from": "gpt", "value": "x"}],
        },
        {"id": "d", "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]},
    ]
    (tmp_path / "mix.json").write_text(json.dumps(items))
    manifest, records = convert("llava", tmp_path, tmp_path / "out", annotations="mix.json")
    assert manifest.filtered == {"mp4_video_unsupported": 1, "turns_not_human_gpt_pairs": 1}
    assert manifest.data_types == {"multimodal": 1, "text": 1}
    assert records[0].meta.turns[0].text == "Describe." and records[1].meta.media.kind == "none"
    image, text = build_every_unit(records)[:2]
    assert image.task.messages[0]["content"][0] == {"type": "image"} and text.frames is None
    encoded = encoder(text.frames, text.task, text.key)
    assert encoded.video is None and encoded.frame_size is None
    assert encoder.processor.decode(encoded.text["input_ids"]).endswith(
        "Hi?<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>"
    )
