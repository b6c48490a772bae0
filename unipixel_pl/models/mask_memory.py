"""``<|mem|>`` pooling: mean merger-MLP inputs under each object's mask, per temporal slice (MODEL.md §4.4).

Qwen2.5-VL's vision tower keeps its merged tokens in *window order* (4x4-token windows) up to the merger MLP. The
reference pools those window-ordered rows with a raster-order mask (``reference`` mode, needed for the published
weights); the corrected ``raster`` mode first puts the rows back in raster order. Window order never crosses a
temporal slice, so slicing by ``g_h·g_w/4`` rows is right in both modes.
"""

from __future__ import annotations

import torch
from torch import Tensor


def count_mem_tokens(refer_mask: Tensor) -> int:
    """Number of ``<|mem|>`` embeddings a sample yields: its non-empty (object, temporal slice) masks.

    Args:
        refer_mask: ``(g_t, O, g_h/2, g_w/2)`` bool.
    """
    _check_refer_mask(refer_mask)
    return int(refer_mask.flatten(2).any(dim=-1).sum())


def raster_order(window_rows: Tensor, window_index: Tensor) -> Tensor:
    """Reorder one sample's window-ordered rows to raster order.

    Args:
        window_rows: ``(N, V)``; row ``j`` is the merged token ``window_index[j]``.
        window_index: ``(N,)`` a permutation of ``0..N-1`` (raster index of each row).

    Returns:
        ``(N, V)`` with row ``r`` = merged token ``r``.

    Raises:
        ValueError: ``window_index`` is not a permutation of the rows.
    """
    count = window_rows.shape[0]
    if window_index.shape != (count,):
        raise ValueError(f"window_index must have shape ({count},) like the rows, got {tuple(window_index.shape)}")
    order = torch.argsort(window_index)
    if not torch.equal(window_index[order], torch.arange(count, device=window_index.device)):
        raise ValueError(
            f"window_index must be a permutation of 0..{count - 1} (local to the sample); subtract the sample's "
            "first merged-token offset from the backbone's global window index"
        )
    return window_rows[order]


def masked_slice_means(features: Tensor, refer_mask: Tensor) -> Tensor:
    """Mean feature under every non-empty (object, temporal slice) mask, computed in fp32.

    Args:
        features: ``(g_t·h·w, V)`` one sample's rows, slice-major; row ``k·h·w + r`` is matched with mask cell ``r``
            (raster order) of slice ``k``.
        refer_mask: ``(g_t, O, h, w)`` bool.

    Returns:
        ``(N_mem, V)`` in ``features``' dtype, object-major then slice order, empty masks skipped.

    Raises:
        ValueError: the mask grid does not cover exactly the rows of ``features``.
    """
    _check_refer_mask(refer_mask)
    slices, objects, height, width = refer_mask.shape
    if features.dim() != 2 or features.shape[0] != slices * height * width:
        raise ValueError(
            f"refer_mask grid {tuple(refer_mask.shape)} covers {slices * height * width} merged tokens but the "
            f"sample has features of shape {tuple(features.shape)}; the mask must be (g_t, O, g_h/2, g_w/2) of "
            "the sample's video grid"
        )
    weights = refer_mask.permute(1, 0, 2, 3).flatten(2).float()
    sums = torch.einsum("oks,ksv->okv", weights, features.float().unflatten(0, (slices, height * width)))
    counts = weights.sum(dim=-1)
    present = counts > 0
    return (sums[present] / counts[present].unsqueeze(-1)).to(features.dtype)


def _check_refer_mask(refer_mask: Tensor) -> None:
    if refer_mask.dim() != 4 or refer_mask.dtype != torch.bool:
        raise ValueError(
            f"refer_mask must be a bool (g_t, O, g_h/2, g_w/2) tensor, got {refer_mask.dtype} {tuple(refer_mask.shape)}"
        )
