"""Text about synthetic scenes: referring expressions, reasoning queries, region and multiple-choice questions.

Every statement is checked against the scene: a size word only when the object is clearly the smallest or
largest, a spatial relation only when it holds on every frame where both objects are visible, a motion only when
the object moved. Objects have distinct (colour, shape) pairs, so "red circle" already identifies one object;
sizes and relations add true detail ("the small red circle left of the blue square").
"""

from __future__ import annotations

import numpy as np

from unipixel_pl.datamodules.scenes import COLORS, Scene, centroids

SIZE_RATIO = 1.25
"""An object is "small"/"large" when every other object's radius differs from its own by this factor."""
COLOR_HINTS: dict[str, str] = {
    "red": "a ripe tomato",
    "green": "fresh grass",
    "blue": "a clear sky",
    "yellow": "a banana",
}
SHAPE_HINTS: dict[str, str] = {
    "circle": "has no corners",
    "square": "has four equal sides",
    "triangle": "has three corners",
}
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")


def size_word(scene: Scene, index: int) -> str | None:
    """``small`` or ``large`` when object ``index`` is clearly the smallest or largest, else None."""
    radius = scene.objects[index].radius
    others = [obj.radius for i, obj in enumerate(scene.objects) if i != index]
    if not others:
        return None
    if all(other >= radius * SIZE_RATIO for other in others):
        return "small"
    if all(radius >= other * SIZE_RATIO for other in others):
        return "large"
    return None


def relation(scene: Scene, index: int, other: int) -> str | None:
    """Where object ``index`` is relative to ``other`` on every frame where both are visible, or None."""
    a, b = centroids(scene.objects[index].masks), centroids(scene.objects[other].masks)
    both = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
    if not both.any():
        return None
    margin = 0.5 * scene.objects[index].radius
    dx, dy = b[both, 0] - a[both, 0], b[both, 1] - a[both, 1]
    tests = {"left of": dx > margin, "right of": -dx > margin, "above": dy > margin, "below": -dy > margin}
    holding = [name for name in RELATIONS if tests[name].all()]
    return holding[0] if holding else None


def referring_expression(scene: Scene, index: int, rng: np.random.Generator) -> str:
    """A true expression naming object ``index``: optional size word, colour, shape, optional relation."""
    obj = scene.objects[index]
    words = [obj.color, obj.shape]
    size = size_word(scene, index)
    if size is not None and rng.random() < 0.7:
        words.insert(0, size)
    others = [i for i in range(len(scene.objects)) if i != index]
    rng.shuffle(others)
    for other in others:
        where = relation(scene, index, other)
        if where is not None and rng.random() < 0.7:
            words += [where, "the", scene.objects[other].name]
            break
    return "the " + " ".join(words)


def reasoning_query(scene: Scene, index: int) -> tuple[str, str]:
    """A question that needs world knowledge to resolve to object ``index``, and its explanation."""
    obj = scene.objects[index]
    same_color = sum(o.color == obj.color for o in scene.objects)
    same_shape = sum(o.shape == obj.shape for o in scene.objects)
    color_clause = f"is the colour of {COLOR_HINTS[obj.color]}"
    shape_clause = SHAPE_HINTS[obj.shape]
    if same_color == 1:
        clause = color_clause
    elif same_shape == 1:
        clause = shape_clause
    else:
        clause = f"{shape_clause} and {color_clause}"
    explanation = f"The {obj.name} {color_clause}, and a {obj.shape} {shape_clause}."
    return f"Which object {clause}?", explanation


def motion(scene: Scene, index: int) -> str:
    """How object ``index`` moves between its first and last visible frame."""
    points = centroids(scene.objects[index].masks)
    points = points[~np.isnan(points).any(axis=1)]
    dx, dy = points[-1] - points[0]
    if max(abs(dx), abs(dy)) < 0.25 * scene.objects[index].radius:
        return "It stays in place."
    if abs(dx) >= abs(dy):
        return "It moves to the right." if dx > 0 else "It moves to the left."
    return "It moves down." if dy > 0 else "It moves up."


def describe(scene: Scene, index: int) -> str:
    """A short caption: ``A small red circle.``"""
    obj = scene.objects[index]
    size = size_word(scene, index)
    return f"A {size + ' ' if size else ''}{obj.name}."


def region_questions(scene: Scene, index: int, mention: str) -> list[tuple[str, str]]:
    """Question-answer pairs about object ``index`` referred to by ``mention`` (``<|ref|>`` or ``[k]``)."""
    obj = scene.objects[index]
    pairs = [
        (f"What colour is {mention}?", f"It is {obj.color}."),
        (f"What shape is {mention}?", f"It is a {obj.shape}."),
        (f"Give me a short description of {mention}.", describe(scene, index)),
    ]
    if scene.num_frames > 1:
        pairs.append((f"How does {mention} move in this video?", motion(scene, index)))
    return pairs


def multiple_choice(scene: Scene, rng: np.random.Generator) -> tuple[str, list[str], int]:
    """A multiple-choice question about the scene: ``(question, options, index of the correct option)``."""
    if rng.random() < 0.5:
        count = len(scene.objects)
        options = [str(n) for n in range(1, 5)]
        return "How many shapes are there?", options, options.index(str(count))
    obj = scene.objects[int(rng.integers(len(scene.objects)))]
    if sum(o.shape == obj.shape for o in scene.objects) > 1:
        return multiple_choice(scene, rng)
    options = list(COLORS)
    rng.shuffle(options)
    return f"What colour is the {obj.shape}?", options, options.index(obj.color)
