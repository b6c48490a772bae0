"""Scoring data read from shard records: targets, ignore regions, boxes, ids, frame names, answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unipixel_pl.datamodules.reader import Record
from unipixel_pl.datamodules.rle import MaskTable, encode_mask
from unipixel_pl.datamodules.schema import GT, IGNORE, Media, ObjectInfo, SampleMeta, Turn
from unipixel_pl.evaluation.targets import EvalItem, object_ids, pad_masks


def _record(turn: int | None = 1, **meta: object) -> Record:
    """A 3-frame 4x5 record with two objects: object 0 at pixel (0, 0) of every frame, object 1 empty."""
    first = np.zeros((4, 5), dtype=bool)
    first[0, 0] = True
    table = MaskTable(4, 5, [[encode_mask(first)] * 3, [None] * 3])
    media = Media("frames", 3, 4, 5, ["f0000.jpg", "f0001.jpg", "f0002.jpg"], [10, 11, 12])
    turns = [Turn("query", "a", "", [0]), Turn("query", "b", "", [0, 1])]
    objects = [ObjectInfo(3, "", 0), ObjectInfo(5, "", 1)]
    document = SampleMeta("mevis", "valid_u", "seg", "seg_video", "vid", media, turns, "", objects, True, **meta)
    return Record("vid", "shard.tar", document, {}, masks=table, turn=turn)


def test_target_is_the_union_of_the_turn_objects_on_the_frames() -> None:
    item = EvalItem(_record(), [0, 2])
    assert item.object_masks([0, 2]).shape == (2, 2, 4, 5)
    target = item.target_mask([1])
    assert target.shape == (1, 4, 5) and target.sum() == 1 and target[0, 0, 0]
    assert object_ids(item) == [3, 5]


def test_ids_and_frame_names_from_meta_eval_or_defaults() -> None:
    plain = EvalItem(_record(), [0])
    assert plain.expression_id() == "1" and plain.frame_names([0, 2]) == ["00010", "00012"]
    named = EvalItem(_record(eval={"qids": ["7", "9"], "frame_names": ["a", "b", "c"], "type_ids": [0, 1]}), [0])
    assert named.expression_id() == "9" and named.frame_names([1]) == ["b"] and named.revos_type() == 1
    with pytest.raises(ValueError, match="no meta.eval\\['type_ids'\\]"):
        plain.revos_type()


def test_boxes_come_from_gt_json_else_from_the_target() -> None:
    record = _record(turn=0)
    item = EvalItem(record, [0])
    target = item.target_mask([0])[0]
    assert item.gt_box(target) == (0.0, 0.0, 1.0, 1.0)
    record.members[GT] = json.dumps({"boxes": [[1, 2, 3, 4], [0, 0, 1, 1]]}).encode()
    assert item.gt_box(target) == (1.0, 2.0, 3.0, 4.0)
    assert EvalItem(_record(turn=1), [0]).gt_box(target) == (0.0, 0.0, 1.0, 1.0)  # two objects: from the mask


def test_ignore_regions_are_read_from_ignore_json() -> None:
    record = _record()
    item = EvalItem(record, [0])
    assert item.ignore_mask() is None
    ignored = np.zeros((4, 5), dtype=bool)
    ignored[3, 4] = True
    record.members[IGNORE] = json.dumps(MaskTable(4, 5, [[encode_mask(ignored)]]).to_json()).encode()
    assert item.ignore_mask().nonzero().tolist() == [[3, 4]]


def test_answers_are_option_letters() -> None:
    item = EvalItem(_record(options=["x", "y", "z"], ans="c", task="t"), [0])
    assert item.answer_index() == 2 and item.num_options() == 3 and item.task() == "t"
    with pytest.raises(ValueError, match="answer 'D'.*\\['A', 'B', 'C'\\]"):
        EvalItem(_record(options=["x", "y", "z"], ans="D"), [0]).answer_index()
    assert EvalItem(_record(), [0]).task() == ()


def test_pad_masks_fills_objects_empty_on_every_frame() -> None:
    masks = np.zeros((2, 2, 3, 3), dtype=bool)
    masks[1, 0, 1, 1] = True
    padded = pad_masks(masks)
    assert padded[:, 1].all() and padded[:, 0].sum() == 1 and not masks[:, 1].any()
