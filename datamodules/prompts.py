"""Visual prompts from object masks (``reference/DATA.md`` §6.1), in original-frame pixels.

Training: the prompt frame is a uniform choice among the sampled frames where the object is visible; a point is a
uniformly random foreground pixel, a box the tight box with every coordinate jittered by up to
``min(0.1 * side, 20 SAM pixels)``. Evaluation (no generator): the frame is the preferred one (benchmark
``frame_idx``) or the first visible, the point the pixel farthest from the mask boundary, the box exact.
"""

from __future__ import annotations

import numpy as np

from unipixel_pl.datamodules.tasks import PromptSpec

BOX_JITTER_FRACTION, BOX_JITTER_SAM_PIXELS = 0.1, 20.0


def visible_frames(masks: np.ndarray) -> np.ndarray:
    """Indices of the frames where a ``(T, H, W)`` mask is non-empty."""
    return np.flatnonzero(masks.reshape(masks.shape[0], -1).any(axis=1))


def prompt_frame(masks: np.ndarray, rng: np.random.Generator | None, preferred: int | None = None) -> int | None:
    """The frame to prompt on, or None when the object is empty on every frame."""
    frames = visible_frames(masks)
    if len(frames) == 0:
        return None
    if rng is not None:
        return int(rng.choice(frames))
    return preferred if preferred is not None and preferred in frames else int(frames[0])


def center_point(mask: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of the foreground pixel deepest inside an ``(H, W)`` mask (8-connected erosion depth).

    The reference uses OpenCV's L2 distance transform; erosion depth is the chessboard distance, which picks the
    same interior region; ties go to the pixel nearest the centroid of the deepest pixels.
    """
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    crop = np.pad(mask[y0 : ys.max() + 1, x0 : xs.max() + 1], 1)
    deepest = crop
    while crop.any():
        deepest = crop
        crop = _erode(crop)
    ys, xs = np.nonzero(deepest)
    pick = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return int(xs[pick] - 1 + x0), int(ys[pick] - 1 + y0)


def _erode(mask: np.ndarray) -> np.ndarray:
    """8-connected binary erosion; pixels outside the array count as background."""
    inner = mask[1:-1, 1:-1].copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            inner &= mask[1 + dy : mask.shape[0] - 1 + dy, 1 + dx : mask.shape[1] - 1 + dx]
    return np.pad(inner, 1)


def point_prompt(mask: np.ndarray, frame: int, rng: np.random.Generator | None) -> PromptSpec:
    """A positive point on an ``(H, W)`` mask: uniform foreground pixel (training) or the center (evaluation)."""
    if rng is None:
        x, y = center_point(mask)
    else:
        ys, xs = np.nonzero(mask)
        pick = int(rng.integers(len(xs)))
        x, y = int(xs[pick]), int(ys[pick])
    return PromptSpec(np.array([[x, y]], dtype=np.float32), np.array([1]), frame)


def box_prompt(mask: np.ndarray, frame: int, rng: np.random.Generator | None, sam_image_size: int) -> PromptSpec:
    """A box ``[[x0, y0], [x1, y1]]`` on an ``(H, W)`` mask: tight, jittered in training, clamped to the frame."""
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)
    if rng is not None:
        height, width = mask.shape
        limit_x = min(BOX_JITTER_FRACTION * (box[2] - box[0]), BOX_JITTER_SAM_PIXELS * width / sam_image_size)
        limit_y = min(BOX_JITTER_FRACTION * (box[3] - box[1]), BOX_JITTER_SAM_PIXELS * height / sam_image_size)
        limits = np.array([limit_x, limit_y, limit_x, limit_y], dtype=np.float32)
        box = box + rng.uniform(-1, 1, size=4).astype(np.float32) * limits
        box = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1]).astype(np.float32)
    return PromptSpec(box.reshape(2, 2), np.array([2, 3]), frame)


def make_prompt(
    kind: str,
    masks: np.ndarray,
    rng: np.random.Generator | None,
    sam_image_size: int,
    preferred_frame: int | None = None,
) -> PromptSpec | None:
    """A ``point`` or ``box`` prompt for an object's ``(T, H, W)`` masks; None when it is empty on every frame."""
    frame = prompt_frame(masks, rng, preferred_frame)
    if frame is None:
        return None
    if kind == "point":
        return point_prompt(masks[frame], frame, rng)
    if kind == "box":
        return box_prompt(masks[frame], frame, rng, sam_image_size)
    raise ValueError(f"unknown prompt kind {kind!r}; use 'point' or 'box'")
