"""The DAVIS-2017 boundary F-measure, vectorised over frames (``reference/EVAL.md`` §2.2).

The toolkit dilates each boundary map with a disk (OpenCV) and intersects it with the other map. Only whether a
boundary pixel has a pixel of the other boundary within its disk matters, so this module answers that question for
the sparse boundary pixels directly: for each row of the disk, one binary search in the sorted flat positions of
the other boundary. Dense work is limited to a few byte-wise passes over the masks, on any device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def boundary_radius(height: int, width: int, bound_th: float = 0.008) -> int:
    """Tolerance radius in pixels, as the DAVIS toolkit derives it.

    Args:
        height: frame height.
        width: frame width.
        bound_th: below 1, a fraction of the frame diagonal (rounded up); from 1 on, a whole number of pixels.

    Returns:
        The disk radius (480x854 with the default: 8).
    """
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th={bound_th} is neither a fraction of the diagonal (< 1) nor whole pixels")
        return int(bound_th)
    if bound_th <= 0:
        raise ValueError(f"bound_th={bound_th} must be positive: a fraction of the diagonal such as 0.008")
    return math.ceil(bound_th * math.sqrt(height * height + width * width))


def boundary_map(masks: Tensor) -> Tensor:
    """DAVIS ``seg2bmap``: pixels that differ from their east, south or south-east neighbour.

    The last row compares east only, the last column south only, and the bottom-right pixel is never a boundary.

    Args:
        masks: ``(..., H, W)`` bool.

    Returns:
        ``(..., H, W)`` bool boundary maps.
    """
    height, width = masks.shape[-2:]
    bits = _boundary_bits(masks.reshape(-1, height, width).view(torch.uint8))
    return bits[: masks.numel()].view(masks.shape).bool()


def frame_boundary_f(pred: Tensor, gt: Tensor, radius: int) -> Tensor:
    """Boundary F-measure of every frame.

    Args:
        pred: ``(T, H, W)`` bool predicted masks.
        gt: ``(T, H, W)`` bool ground truth masks.
        radius: tolerance disk radius in pixels (see :func:`boundary_radius`).

    Returns:
        ``(T,)`` float64 F; empty on both sides is 1, empty on one side only is 0.
    """
    frames, height, width = pred.shape
    code = torch.add(pred.view(torch.uint8), gt.view(torch.uint8), alpha=2)  # bit 0: prediction, bit 1: truth
    positions, planes = _nonzero_bytes(_boundary_bits(code))
    pred_points = positions[(planes & 1) > 0]
    gt_points = positions[(planes & 2) > 0]
    pred_near = _near(pred_points, gt_points, height, width, radius)
    gt_near = _near(gt_points, pred_points, height, width, radius)
    precision = _matched_fraction(pred_points // (height * width), pred_near, frames)
    recall = _matched_fraction(gt_points // (height * width), gt_near, frames)
    return torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)


def _boundary_bits(code: Tensor) -> Tensor:
    """``seg2bmap`` of each bit plane of ``code`` at once, as a flat byte array padded to whole int64 words.

    Args:
        code: ``(T, H, W)`` uint8, each bit one mask.

    Returns:
        ``(ceil(T*H*W / 8) * 8,)`` uint8; bit k set where plane k has a boundary pixel; the padding is 0.
    """
    frames, height, width = code.shape
    flat = code.reshape(-1)
    size = flat.numel()
    bits = torch.zeros(-(-size // 8) * 8, dtype=torch.uint8, device=code.device)
    # "Differs from E, S or SE" is "the 2x2 block is not uniform": east, south, or the east pixel's south differs.
    # In the flat layout i+1, i+W and i+W+1 are those neighbours except on the last row and column, whose values
    # are rewritten just below.
    interior = max(size - width - 1, 0)
    vertical = flat[: size - width] ^ flat[width:]
    torch.bitwise_xor(flat[:interior], flat[1 : interior + 1], out=bits[:interior])
    bits[:interior] |= vertical[:interior]
    bits[:interior] |= vertical[1 : interior + 1]
    grid = bits[:size].view(frames, height, width)
    grid[:, -1, :-1] = code[:, -1, :-1] ^ code[:, -1, 1:]
    grid[:, :-1, -1] = code[:, :-1, -1] ^ code[:, 1:, -1]
    grid[:, -1, -1] = 0
    return bits


def _nonzero_bytes(bits: Tensor) -> tuple[Tensor, Tensor]:
    """Ascending positions and values of the non-zero bytes, searching whole int64 words first.

    Args:
        bits: ``(8k,)`` uint8, freshly allocated (so int64-aligned).

    Returns:
        ``(K,)`` int64 positions and ``(K,)`` uint8 values.
    """
    words = bits.view(torch.int64).nonzero().squeeze(1)
    octets = bits.view(-1, 8)[words]
    word_index, byte_index = octets.nonzero(as_tuple=True)
    return words[word_index] * 8 + byte_index, octets[word_index, byte_index]


def _near(points: Tensor, targets: Tensor, height: int, width: int, radius: int) -> Tensor:
    """Whether each point has a target in its disk ``dx² + dy² <= radius²`` on the same frame.

    Args:
        points: ``(K,)`` int64 flat positions ``(t * H + y) * W + x``.
        targets: ``(M,)`` int64 flat positions, ascending.
        height: frame height H.
        width: frame width W.
        radius: disk radius.

    Returns:
        ``(K,)`` bool.
    """
    matched = torch.zeros_like(points, dtype=torch.bool)
    if targets.numel() == 0:
        return matched
    pending = torch.arange(points.numel(), device=points.device)
    columns, rows = points % width, points // width % height
    for dy in sorted(range(-radius, radius + 1), key=abs):  # near rows first: most points match early
        half_width = math.isqrt(radius * radius - dy * dy)
        column, row = columns[pending], rows[pending] + dy
        centre = points[pending] + dy * width
        low = centre - column.clamp(max=half_width)
        high = centre + (width - 1 - column).clamp(max=half_width)
        first = targets[torch.searchsorted(targets, low).clamp(max=targets.numel() - 1)]
        found = (first >= low) & (first <= high) & (row >= 0) & (row < height)
        matched[pending[found]] = True
        pending = pending[~found]
        if pending.numel() == 0:
            break
    return matched


def _matched_fraction(frame_of_point: Tensor, matched: Tensor, frames: int) -> Tensor:
    """Per frame, matched points / points, and 1 for a frame without points (the DAVIS convention).

    Args:
        frame_of_point: ``(K,)`` int64 frame index of each point.
        matched: ``(K,)`` bool.
        frames: number of frames T.

    Returns:
        ``(T,)`` float64.
    """
    total = torch.bincount(frame_of_point, minlength=frames).double()
    hits = torch.bincount(frame_of_point[matched], minlength=frames).double()
    return torch.where(total > 0, hits / total, 1.0)
