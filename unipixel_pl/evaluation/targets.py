"""What scoring reads from a shard record: ground truth at the original resolution, ids, answers, groups.

Conventions of evaluation records (``docs/EVAL.md``): a segmentation record is scored on its expanded turn (turn
0 when not expanded); ``meta.eval`` may hold ``qids`` (expression ids, per turn), ``type_ids`` (ReVOS, per turn)
and ``frame_names`` (original frame names, per frame, for submissions); ``gt.json`` may hold ``boxes`` (per object,
``[x0, y0, x1, y1]``); ``ignore.json`` holds ReasonSeg's ignore regions; multiple-choice records carry
``meta.options``, the answer letter ``meta.ans`` and an optional task name ``meta.task``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from unipixel_pl.datamodules.reader import Record
from unipixel_pl.datamodules.rle import MaskTable
from unipixel_pl.datamodules.schema import GT, IGNORE, Turn
from unipixel_pl.metrics.functional import mask_box


@dataclass
class EvalItem:
    """One evaluation sample's record and the frames the LLM saw (``frame_indices``, among the record's)."""

    record: Record
    frame_indices: list[int]

    @property
    def key(self) -> str:
        return self.record.unit_key

    @property
    def turn_index(self) -> int:
        """The scored turn: the expanded record's turn, else the first."""
        return 0 if self.record.turn is None else self.record.turn

    @property
    def turn(self) -> Turn:
        return self.record.meta.turns[self.turn_index]

    def object_masks(self, frames: list[int]) -> Tensor:
        """``(T, O, H, W)`` bool ground truth of the turn's objects on ``frames``."""
        meta, table = self.record.meta, self.record.masks
        rows = [meta.objects[o].mask_index for o in self.turn.objects]
        if table is None or not rows or min(rows) < 0:
            raise ValueError(f"sample {self.key!r} has no ground-truth masks for its objects {self.turn.objects}")
        return torch.from_numpy(table.decode(rows, frames))

    def target_mask(self, frames: list[int]) -> Tensor:
        """``(T, H, W)`` bool: the union of the turn's objects on ``frames`` (one expression's target)."""
        return self.object_masks(frames).any(dim=1)

    def ignore_mask(self) -> Tensor | None:
        """``(H, W)`` bool pixels not scored (ReasonSeg), or None."""
        if IGNORE not in self.record.members:
            return None
        table = MaskTable.from_json(json.loads(self.record.members[IGNORE]))
        return torch.from_numpy(table.decode([0], [0])[0, 0])

    def gt_box(self, target: Tensor) -> tuple[float, float, float, float]:
        """The ground-truth box of an image query: ``gt.json`` ``boxes`` of its object, else the tight box of
        ``target: (H, W)``; an empty target gives a zero-area box (every prediction misses it)."""
        boxes = json.loads(self.record.members[GT]).get("boxes") if GT in self.record.members else None
        if boxes is not None and len(self.turn.objects) == 1:
            x0, y0, x1, y1 = boxes[self.record.meta.objects[self.turn.objects[0]].mask_index]
            return float(x0), float(y0), float(x1), float(y1)
        return mask_box(target) or (0.0, 0.0, 0.0, 0.0)

    def eval_value(self, name: str, default: object = None) -> object:
        """``meta.eval[name][turn]`` (a per-turn list), or ``default`` when absent."""
        values = self.record.meta.eval.get(name)
        return default if values is None else values[self.turn_index]

    def revos_type(self) -> int:
        """The ReVOS ``type_id`` of the expression (0 referring, 1 reasoning, others unscored)."""
        type_id = self.eval_value("type_ids")
        if type_id is None:
            raise ValueError(
                f"ReVOS sample {self.key!r} has no meta.eval['type_ids']: convert ReVOS valid with a converter that "
                "keeps each expression's type_id"
            )
        return int(type_id)  # type: ignore[call-overload]

    def expression_id(self) -> str:
        """The benchmark's expression id (``meta.eval["qids"]``, RefCOCO's ``sent_ids``), else the turn index."""
        return str(self.eval_value("qids", self.eval_value("sent_ids", self.turn_index)))

    def frame_names(self, frames: list[int]) -> list[str]:
        """Original names of ``frames`` (``meta.eval["frame_names"]``), else their original indices as ``%05d``."""
        media = self.record.meta.media
        names = self.record.meta.eval.get("frame_names")
        if names is not None:
            return [str(names[f]) for f in frames]
        return [f"{media.orig_frame_indices[f] if media.orig_frame_indices else f:05d}" for f in frames]

    def answer_index(self) -> int:
        """The 0-based correct option of a multiple-choice record (``meta.ans`` is its letter)."""
        meta = self.record.meta
        letter = meta.ans.strip().upper()
        index = ord(letter) - ord("A") if len(letter) == 1 else -1
        if not 0 <= index < len(meta.options):
            letters = [chr(ord("A") + i) for i in range(len(meta.options))]
            raise ValueError(
                f"sample {self.key!r} has answer {meta.ans!r}: expected one of its option letters {letters}"
            )
        return index

    def num_options(self) -> int:
        return len(self.record.meta.options)

    def task(self) -> str | tuple[()]:
        """The sample's task name, or ``()`` (overall only) when it has none."""
        return self.record.meta.task or ()


def object_ids(item: EvalItem) -> list[int]:
    """The ``[oid]`` of each object of the scored turn, in order."""
    return [item.record.meta.objects[o].oid for o in item.turn.objects]


def pad_masks(masks: np.ndarray) -> np.ndarray:
    """``(T, O, H, W)`` masks where an object empty on every frame becomes all ones (PixelQA pass 2, EVAL.md §4)."""
    empty = ~masks.reshape(masks.shape[0], masks.shape[1], -1).any(axis=(0, 2))
    masks = masks.copy()
    masks[:, empty] = True
    return masks
