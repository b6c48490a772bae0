"""An independent, straightforward NumPy implementation of the DAVIS-2017 J and boundary F (one frame at a time),
written from the algorithm (``reference/EVAL.md`` §2.1-2.2) to check the vectorised torch code against."""

from __future__ import annotations

import numpy as np


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Pixels differing from the east, south or south-east neighbour, with DAVIS's last-row/column rules."""
    seg = seg.astype(bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def dilate(bmap: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation with the disk ``x² + y² <= radius²``; outside the image counts as background."""
    height, width = bmap.shape
    padded = np.pad(bmap, radius)
    out = np.zeros_like(bmap)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy <= radius * radius:
                out |= padded[radius + dy : radius + dy + height, radius + dx : radius + dx + width]
    return out


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """DAVIS boundary F-measure of one frame."""
    radius = int(bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred.shape)))
    pred_boundary, gt_boundary = seg2bmap(pred), seg2bmap(gt)
    n_pred, n_gt = pred_boundary.sum(), gt_boundary.sum()
    if n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = (pred_boundary & dilate(gt_boundary, radius)).sum() / float(n_pred)
        recall = (gt_boundary & dilate(pred_boundary, radius)).sum() / float(n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def j_measure(pred: np.ndarray, gt: np.ndarray) -> float:
    """DAVIS region similarity of one frame (1 when both masks are empty)."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    union = (pred | gt).sum()
    return 1.0 if union == 0 else (pred & gt).sum() / union


def random_video(generator: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
    """``(frames, height, width)`` bool masks mixing blocky blobs, pixel noise, empty and full frames."""
    kind = generator.integers(0, 4)
    if kind == 0:
        coarse = generator.random((frames, (height + 3) // 4, (width + 3) // 4)) < generator.random()
        return coarse.repeat(4, axis=1).repeat(4, axis=2)[:, :height, :width]
    if kind == 1:
        return generator.random((frames, height, width)) < generator.random()
    if kind == 2:
        return np.zeros((frames, height, width), dtype=bool)
    video = generator.random((frames, height, width)) < 0.97
    video[0] = True
    return video
