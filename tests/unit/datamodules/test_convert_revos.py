"""ReVOS valid in its original layout (``meta_expressions_valid_.json`` with ``type_id``, ``mask_dict.json``): the
expression types reach the ``revos`` scorer's referring / reasoning groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unipixel_pl.datamodules.converters import ConversionError
from unipixel_pl.metrics import ReVOSJF

from .benchmark_helpers import eval_items
from .converter_helpers import box_mask, convert, rle, write_jpeg

H, W = 12, 16
A, B = box_mask(H, W, 1, 6, 1, 8), box_mask(H, W, 6, 11, 8, 15)
EXPRESSIONS = {
    "0": {"exp": "the cat", "obj_id": [1], "anno_id": [3], "type_id": 0},
    "1": {"exp": "Which animal hunts?", "obj_id": [1], "anno_id": [3], "type_id": 1},
    "2": {"exp": "the dog", "obj_id": [2], "anno_id": [4], "type_id": 0},
}


def _revos(root: Path, expressions: dict = EXPRESSIONS) -> Path:
    videos = {"LVVIS/v1": {"frames": ["0", "1"], "expressions": expressions}}
    root.mkdir()
    (root / "meta_expressions_valid_.json").write_text(json.dumps({"videos": videos}))
    (root / "mask_dict.json").write_text(json.dumps({"3": [rle(A), rle(A)], "4": [None, rle(B)]}))
    for name in ("0", "1"):
        write_jpeg(root / "LVVIS/v1" / f"{name}.jpg", H, W)
    return root


def test_valid_records_keep_each_expression_type(tmp_path: Path) -> None:
    _, [record] = convert("revos", _revos(tmp_path / "revos"), tmp_path / "out", "valid")
    assert record.meta.eval == {"qids": ["0", "1", "2"], "frame_names": ["0", "1"], "type_ids": [0, 1, 0]}
    assert [turn.type for turn in record.meta.turns] == ["query", "sentence", "query"]


def test_types_group_the_revos_scores(tmp_path: Path) -> None:
    convert("revos", _revos(tmp_path / "revos"), tmp_path / "out", "valid")
    items = sorted(eval_items(tmp_path / "out"), key=lambda item: item.key)
    assert [item.revos_type() for item in items] == [0, 1, 0]
    metric = ReVOSJF()
    for item in items:  # a prediction of mask A on both frames for every expression
        metric.update(torch.from_numpy(np.stack([A, A])), item.target_mask([0, 1]), item.revos_type())
    scores = metric.compute()
    # referring: the cat (J 1) and the dog (frame 0: empty vs A -> 0, frame 1: A vs B -> 0) -> 0.5; reasoning: 1
    assert scores["referring/J"] == pytest.approx(0.5) and scores["reasoning/J"] == pytest.approx(1.0)
    assert scores["J"] == pytest.approx(0.75)


def test_valid_expressions_without_type_are_refused(tmp_path: Path) -> None:
    untyped = {"0": {"exp": "the cat", "obj_id": [1], "anno_id": [3]}}
    with pytest.raises(ConversionError, match="expression LVVIS/v1/0 has no type_id"):
        convert("revos", _revos(tmp_path / "revos", untyped), tmp_path / "out", "valid")
