"""Functional forms of the metrics (``reference/EVAL.md`` §2): boolean masks in, ground truth second.

Masks may be bool or integer (non-zero is foreground, e.g. 0/255 PNGs); floating masks are refused because
probabilities or logits must be thresholded by the caller.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unipixel_pl.metrics.boundary import boundary_map, boundary_radius, frame_boundary_f
from unipixel_pl.metrics.boxes import box_hit, box_iou, mask_box, prediction_box

__all__ = [
    "boundary_f",
    "boundary_f_per_frame",
    "boundary_map",
    "boundary_radius",
    "box_hit",
    "box_iou",
    "intersection_and_union",
    "mask_box",
    "parse_choice",
    "prediction_box",
    "query_iou",
    "region_j",
    "region_j_per_frame",
    "volume_jf",
]

PIXELQA_EPS = 1e-6
"""The stabiliser of UniPixel's PixelQA J and F (``infer_pixelqa.py``)."""


def region_j(pred: Tensor, gt: Tensor) -> float:
    """Region similarity J of one frame: ``|P∩G| / |P∪G|``, and 1 when both are empty.

    Args:
        pred: ``(H, W)`` predicted mask.
        gt: ``(H, W)`` ground truth mask.
    """
    pred, gt = _mask_pair(pred, gt, ndim=2)
    return region_j_per_frame(pred[None], gt[None]).item()


def boundary_f(pred: Tensor, gt: Tensor, bound_th: float = 0.008) -> float:
    """DAVIS boundary F-measure of one frame.

    Args:
        pred: ``(H, W)`` predicted mask.
        gt: ``(H, W)`` ground truth mask.
        bound_th: tolerance, a fraction of the diagonal below 1, else pixels (see :func:`boundary_radius`).
    """
    pred, gt = _mask_pair(pred, gt, ndim=2)
    return boundary_f_per_frame(pred[None], gt[None], bound_th).item()


def region_j_per_frame(pred: Tensor, gt: Tensor) -> Tensor:
    """Region similarity J of every frame.

    Args:
        pred: ``(T, H, W)`` predicted masks.
        gt: ``(T, H, W)`` ground truth masks.

    Returns:
        ``(T,)`` float64.
    """
    pred, gt = _mask_pair(pred, gt, ndim=3)
    intersection, union = _count_each(pred & gt).double(), _count_each(pred | gt).double()
    return torch.where(union > 0, intersection / union, 1.0)


def boundary_f_per_frame(pred: Tensor, gt: Tensor, bound_th: float = 0.008) -> Tensor:
    """DAVIS boundary F-measure of every frame.

    Args:
        pred: ``(T, H, W)`` predicted masks.
        gt: ``(T, H, W)`` ground truth masks.
        bound_th: tolerance, a fraction of the diagonal below 1, else pixels (see :func:`boundary_radius`).

    Returns:
        ``(T,)`` float64.
    """
    pred, gt = _mask_pair(pred, gt, ndim=3)
    return frame_boundary_f(pred, gt, boundary_radius(pred.shape[1], pred.shape[2], bound_th))


def intersection_and_union(pred: Tensor, gt: Tensor, ignore: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per query pixel counts of ``P∩G`` and ``P∪G`` outside the ignored pixels.

    Args:
        pred: ``(H, W)`` one query or ``(N, H, W)`` queries of one size.
        gt: same shape as ``pred``.
        ignore: same shape, true where pixels are not scored (ReasonSeg's ignore polygons), or None.

    Returns:
        ``(N,)`` int64 intersections and unions (N = 1 for a single query).
    """
    pred, gt = _mask_pair(_as_queries(pred), _as_queries(gt), ndim=3)
    if ignore is not None:
        keep = ~_as_mask(_as_queries(ignore), "ignore")
        if keep.shape != pred.shape:
            raise ValueError(f"ignore mask {tuple(keep.shape)} does not match the masks {tuple(pred.shape)}")
        pred, gt = pred & keep, gt & keep
    return _count_each(pred & gt), _count_each(pred | gt)


def query_iou(intersection: Tensor, union: Tensor, union_eps: float = 0.0) -> Tensor:
    """Per query IoU ``inter / (union + union_eps)``, and 1 for an empty union (empty prediction, empty target).

    Args:
        intersection: ``(N,)`` pixel counts.
        union: ``(N,)`` pixel counts.
        union_eps: 0 in UniPixel (the default), 1e-5 in LISA's validation.

    Returns:
        ``(N,)`` float64.
    """
    return torch.where(union > 0, intersection.double() / (union.double() + union_eps), 1.0)


def volume_jf(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """PixelQA per object J and pixel F1 over the whole frame stack (``reference/EVAL.md`` §2.5).

    ``J = |P∩G| / (|P∪G| + 1e-6)`` (empty on both sides gives 0, unlike :func:`region_j`) and F is the pixel-level
    F1 with UniPixel's 1e-6 terms, not the boundary F. Computed in float64 (the reference uses float32; the two
    differ by about 1e-7).

    Args:
        pred: ``(N, ...)`` predicted mask volumes, one per object (e.g. ``(N, T, H, W)``).
        gt: same shape as ``pred``.

    Returns:
        ``(N,)`` float64 J and ``(N,)`` float64 F.
    """
    pred, gt = _mask_pair(pred, gt, ndim=pred.dim())
    true_pos = _count_each(pred & gt).double()
    pred_pos, gt_pos = _count_each(pred).double(), _count_each(gt).double()
    region = true_pos / (pred_pos + gt_pos - true_pos + PIXELQA_EPS)
    precision = true_pos / (pred_pos + PIXELQA_EPS)
    recall = true_pos / (gt_pos + PIXELQA_EPS)
    return region, 2 * precision * recall / (precision + recall + PIXELQA_EPS)


def parse_choice(response: str, num_options: int) -> int | None:
    """The option a multiple-choice response picks, as UniPixel's ``eval_general.py`` reads it.

    Lower-case, take the first space-separated token, delete ``(``, ``)`` and ``.``, keep its first character.
    A letter outside the options, or nothing left (where the reference script crashes), is unparseable.

    Args:
        response: the generated text (after the ``The best option is (`` pre-fill).
        num_options: how many options the question had.

    Returns:
        The 0-based option index, or None when unparseable (scored wrong).
    """
    token = response.lower().split(" ")[0].replace("(", "").replace(")", "").replace(".", "")
    if not token:
        return None
    index = ord(token[0]) - ord("a")
    return index if 0 <= index < num_options else None


def _as_mask(mask: Tensor, name: str) -> Tensor:
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"{name} is a {mask.dtype} tensor: pass boolean masks (threshold logits with `> 0` first)")
    return mask if mask.dtype == torch.bool else mask != 0


def _mask_pair(pred: Tensor, gt: Tensor, ndim: int) -> tuple[Tensor, Tensor]:
    """Both masks as bool after checking they have the same ``ndim``-dimensional, non-empty shape."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    if pred.dim() != ndim or pred.numel() == 0:
        raise ValueError(f"expected non-empty {ndim}-D masks, got shape {tuple(pred.shape)}")
    return _as_mask(pred, "pred"), _as_mask(gt, "gt")


def _as_queries(masks: Tensor) -> Tensor:
    """``(H, W)`` as a batch of one query; ``(N, H, W)`` unchanged."""
    return masks.unsqueeze(0) if masks.dim() == 2 else masks


def _count_each(masks: Tensor) -> Tensor:
    """``(N,)`` int64 true pixels of each ``masks[i]``; whole-tensor counts are far faster than a dim reduction."""
    return torch.stack([item.count_nonzero() for item in masks])
