"""Synthetic scenes: coloured shapes on a noisy background, as still images or short videos with motion.

The synthetic corpus needs no download, so tests, the demo and first experiments run anywhere. A scene carries its
frames, one mask per object and per frame, and each object's attributes for the text templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass
class SceneObject:
    """One object of a scene.

    Attributes:
        color: colour name (a key of ``COLORS``).
        shape: shape name (one of ``SHAPES``).
        masks: ``(T, H, W)`` bool, the object's visible pixels on every frame.
        radius: half-size of the shape in pixels (its intrinsic size, occlusion aside).
    """

    color: str
    shape: str
    masks: np.ndarray
    radius: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass
class Scene:
    """Frames and objects. ``frames``: ``(T, H, W, 3)`` uint8."""

    frames: np.ndarray
    objects: list[SceneObject]

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    def object_masks(self) -> np.ndarray:
        """``(T, O, H, W)`` bool masks of all objects."""
        return np.stack([obj.masks for obj in self.objects], axis=1)


def shape_mask(shape: str, center: tuple[float, float], radius: float, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool mask of a shape centred at ``center`` = (x, y) with half-size ``radius`` (pixels)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    dx, dy = xs - center[0], ys - center[1]
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
    if shape == "triangle":
        # apex up: inside when below the two slanted edges and above the base
        return (dy <= radius) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) / 2)
    raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def make_scene(
    rng: np.random.Generator, height: int = 112, width: int = 112, num_frames: int = 1, num_objects: int = 2
) -> Scene:
    """Draw a scene with distinct (colour, shape) objects moving linearly; later objects occlude earlier ones."""
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    chosen = rng.choice(len(pairs), size=num_objects, replace=False)
    frames = (rng.normal(128, 12, size=(num_frames, height, width, 3))).clip(0, 255).astype(np.uint8)
    visible = np.zeros((num_frames, height, width), dtype=bool)
    objects: list[SceneObject] = []
    for index in reversed(chosen.tolist()):  # draw top-most last object first so occlusion is easy to apply
        color, shape = pairs[index]
        radius = float(rng.uniform(0.12, 0.2) * min(height, width))
        start = rng.uniform([radius, radius], [width - radius, height - radius])
        velocity = rng.uniform(-0.06, 0.06, size=2) * np.array([width, height])
        masks = np.zeros((num_frames, height, width), dtype=bool)
        for t in range(num_frames):
            center = np.clip(start + velocity * t, radius, [width - radius, height - radius])
            masks[t] = shape_mask(shape, (float(center[0]), float(center[1])), radius, height, width) & ~visible[t]
            frames[t][masks[t]] = COLORS[color]
        visible |= masks
        objects.insert(0, SceneObject(color, shape, masks, radius))
    return Scene(frames, objects)


def centroids(masks: np.ndarray) -> np.ndarray:
    """``(T, 2)`` float (x, y) centroid of a ``(T, H, W)`` mask per frame; NaN where the mask is empty."""
    result = np.full((masks.shape[0], 2), np.nan)
    for t, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs):
            result[t] = xs.mean() + 0.5, ys.mean() + 0.5
    return result


def all_visible(scene: Scene, min_pixels: int = 16) -> bool:
    """Whether every object shows at least ``min_pixels`` pixels on every frame (occlusion can hide one)."""
    return all(bool((obj.masks.reshape(scene.num_frames, -1).sum(axis=1) >= min_pixels).all()) for obj in scene.objects)
