"""BBox accuracy of referring segmentation masks (``reference/EVAL.md`` §2.4).

The predicted mask loses its 8-connected components of fewer than ``min_component`` pixels, the tight box of what
is left is compared with the ground-truth box, and IoU >= 0.5 is a hit (no pixel left: a miss). Components are
found on row runs with a union-find, so only the runs (not every pixel) are visited in Python.

Boxes are ``(x0, y0, x1, y1)`` in pixel-edge coordinates: a mask's tight box spans ``[min_x, max_x + 1)`` x
``[min_y, max_y + 1)``, so a one-pixel mask has area 1, as a COCO ``[x, y, x + w, y + h]`` box of it would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` pixel edges."""


def _row_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of foreground pixels: ``(rows, starts, ends)`` with ``ends`` exclusive, in raster order."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)
    return rows, starts, ends


def _find(parent: list[int], run: int) -> int:
    while parent[run] != run:
        parent[run] = parent[parent[run]]
        run = parent[run]
    return run


def _run_components(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[int]:
    """The component root of every run; runs on adjacent rows touching diagonally or directly are joined."""
    parent = list(range(len(rows)))
    previous: list[int] = []  # runs of the row above the current one
    current: list[int] = []
    for run in range(len(rows)):
        if run and rows[run] != rows[run - 1]:
            previous = current if rows[run] == rows[run - 1] + 1 else []
            current = []
        for above in previous:
            # 8-connectivity: [s, e) touches [s', e') when s <= e' and s' <= e (one column of diagonal slack)
            if starts[run] <= ends[above] and starts[above] <= ends[run]:
                parent[_find(parent, above)] = _find(parent, run)
        current.append(run)
    return [_find(parent, run) for run in range(len(rows))]


def prediction_box(pred: Tensor, min_component: int = 10) -> Box | None:
    """Tight box of a predicted mask after removing its 8-connected components below ``min_component`` pixels.

    Args:
        pred: ``(H, W)`` bool (or integer, non-zero is foreground) mask.
        min_component: components with fewer pixels are dropped (UniPixel: 10).

    Returns:
        The box, or None when no pixel is left.
    """
    rows, starts, ends = _row_runs(_as_numpy_mask(pred))
    if len(rows) == 0:
        return None
    roots = np.asarray(_run_components(rows, starts, ends))
    sizes = np.bincount(roots, weights=ends - starts, minlength=len(rows))
    keep = sizes[roots] >= min_component
    if not keep.any():
        return None
    return (float(starts[keep].min()), float(rows[keep].min()), float(ends[keep].max()), float(rows[keep].max() + 1))


def mask_box(mask: Tensor) -> Box | None:
    """Tight box of every pixel of ``mask: (H, W)`` (no component is dropped), or None when it is empty."""
    return prediction_box(mask, min_component=0)


def box_iou(first: Box, second: Box) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes (0 when both are degenerate)."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    inter = max(width, 0.0) * max(height, 0.0)
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    union = area - inter
    return inter / union if union > 0 else 0.0


def box_hit(pred: Tensor, gt_box: Box | Tensor, min_component: int = 10, threshold: float = 0.5) -> bool:
    """Whether the box of a predicted mask (small components dropped) has IoU >= ``threshold`` with ``gt_box``.

    Args:
        pred: ``(H, W)`` predicted mask.
        gt_box: ``(x0, y0, x1, y1)``, e.g. a COCO ``[x, y, x + w, y + h]`` box or :func:`mask_box` of the truth.
        min_component: see :func:`prediction_box`.
        threshold: the IoU that counts as a hit.
    """
    box = prediction_box(pred, min_component)
    target = tuple(float(v) for v in (gt_box.tolist() if isinstance(gt_box, Tensor) else gt_box))
    if len(target) != 4:
        raise ValueError(f"gt_box must be (x0, y0, x1, y1), got {target}")
    return box is not None and box_iou(box, target) >= threshold  # type: ignore[arg-type]


def _as_numpy_mask(mask: Tensor) -> np.ndarray:
    if mask.dim() != 2:
        raise ValueError(f"expected one (H, W) mask, got shape {tuple(mask.shape)}")
    if mask.is_floating_point():
        raise TypeError(f"mask is a {mask.dtype} tensor: pass a boolean mask (threshold logits with `> 0` first)")
    return (mask != 0).cpu().numpy()


class BoxAccuracy(Metric):
    """Fraction of queries whose predicted mask's box (components < ``min_component`` px dropped) has IoU >= 0.5
    with the ground-truth box; a prediction with no pixel left is a miss. NaN before any query.

    Args:
        min_component: components with fewer pixels are dropped before taking the box (UniPixel: 10).
        threshold: box IoU that counts as a hit.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, min_component: int = 10, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_component, self.threshold = min_component, threshold
        self.add_state("hits", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt_boxes: Tensor) -> None:
        """Add queries.

        Args:
            pred: ``(H, W)`` or ``(N, H, W)`` predicted masks.
            gt_boxes: ``(4,)`` or ``(N, 4)`` ground-truth ``(x0, y0, x1, y1)`` boxes.
        """
        masks, boxes = (pred[None], gt_boxes[None]) if pred.dim() == 2 else (pred, gt_boxes)
        if boxes.shape != (masks.shape[0], 4):
            raise ValueError(f"{masks.shape[0]} masks need ({masks.shape[0]}, 4) boxes, got {tuple(boxes.shape)}")
        hits = sum(
            box_hit(mask, box, self.min_component, self.threshold) for mask, box in zip(masks, boxes, strict=True)
        )
        self.hits += hits
        self.count += masks.shape[0]

    def compute(self) -> Tensor:
        return self.hits.double() / self.count  # 0 / 0 is NaN
