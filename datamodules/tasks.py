"""Turn a synthetic scene into a training conversation for one UniPixel task family.

Each builder returns a ``TaskSample``: chat messages (media first, as the reference does), the object masks that
supervise the ``<|seg|>`` tokens, the visual prompts behind the ``<|ref|>`` tokens and the masks behind the
``<|mem|>`` tokens. Templates follow ``reference/DATA.md`` §7 (first template of each list).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from unipixel_pl.config import MEM_TOKEN, REF_TOKEN, SEG_TOKEN
from unipixel_pl.datamodules.scenes import Scene

TASKS: tuple[str, ...] = ("seg", "ref_point", "ref_box", "region", "mem_point")


@dataclass
class PromptSpec:
    """A visual prompt in original-frame pixels: ``coords`` (P, 2) as (x, y), ``labels`` (P,), ``frame``."""

    coords: np.ndarray
    labels: np.ndarray
    frame: int


@dataclass
class TaskSample:
    """A conversation plus the tensors its special tokens need (all masks at original resolution).

    Attributes:
        task: task family name.
        messages: chat messages; the first user message starts with one media item.
        seg_masks: ``(T, O_seg, H, W)`` bool targets, one object per ``<|seg|>``, or None.
        prompts: one ``PromptSpec`` per ``<|ref|>`` in order.
        refer_masks: ``(T, O_mem, H, W)`` bool masks pooled into ``<|mem|>`` tokens, or None.
    """

    task: str
    messages: list[dict]
    seg_masks: np.ndarray | None = None
    prompts: list[PromptSpec] = field(default_factory=list)
    refer_masks: np.ndarray | None = None


def _media(scene: Scene) -> str:
    return "image" if scene.num_frames == 1 else "video"


def _conversation(scene: Scene, question: str, answer: str) -> list[dict]:
    user = {"role": "user", "content": [{"type": _media(scene)}, {"type": "text", "text": question}]}
    return [user, {"role": "assistant", "content": answer}]


def _visible_frame(mask: np.ndarray, rng: np.random.Generator) -> int:
    frames = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    return int(rng.choice(frames)) if len(frames) else 0


def _point_prompt(mask: np.ndarray, rng: np.random.Generator) -> PromptSpec:
    frame = _visible_frame(mask, rng)
    ys, xs = np.nonzero(mask[frame])
    pick = rng.integers(len(xs))
    return PromptSpec(np.array([[xs[pick], ys[pick]]], dtype=np.float32), np.array([1]), frame)


def _box_prompt(mask: np.ndarray, rng: np.random.Generator) -> PromptSpec:
    frame = _visible_frame(mask, rng)
    ys, xs = np.nonzero(mask[frame])
    coords = np.array([[xs.min(), ys.min()], [xs.max(), ys.max()]], dtype=np.float32)
    return PromptSpec(coords, np.array([2, 3]), frame)


SEG_ANSWER = "The target is {seg}."
"""The default answer of :func:`segmentation` (the reference's first template)."""


def segmentation(scene: Scene, rng: np.random.Generator, answer: str = SEG_ANSWER) -> TaskSample:
    """Referring segmentation: name an object, answer with ``<|seg|>``.

    Args:
        scene: the scene.
        rng: draws the target object.
        answer: the answer template; ``{seg}`` becomes ``<|seg|>``, ``{name}`` the object's name (e.g.
            ``"It is the {name} {seg}."`` puts the name right before ``<|seg|>``).
    """
    target = int(rng.integers(len(scene.objects)))
    name = scene.objects[target].name
    question = f"Can you segment the {name} in this {_media(scene)}?"
    masks = scene.object_masks()[:, [target]]
    reply = answer.format(seg=SEG_TOKEN, name=name)
    return TaskSample("seg", _conversation(scene, question, reply), seg_masks=masks)


def referring(scene: Scene, rng: np.random.Generator, kind: str) -> TaskSample:
    """Referring captioning: a point or box ``<|ref|>`` prompt, answer with the object's name."""
    target = int(rng.integers(len(scene.objects)))
    mask = scene.objects[target].masks
    prompt = _point_prompt(mask, rng) if kind == "point" else _box_prompt(mask, rng)
    question = f"Give me a short description of {REF_TOKEN}."
    answer = f"A {scene.objects[target].name}."
    return TaskSample(f"ref_{kind}", _conversation(scene, question, answer), prompts=[prompt])


def region(scene: Scene, rng: np.random.Generator) -> TaskSample:
    """Region understanding: a mask prompt pooled into ``<|mem|>``, answer with the object's colour."""
    target = int(rng.integers(len(scene.objects)))
    masks = scene.object_masks()[:, [target]]
    prefix = _memory_prefix(scene, masks)
    question = f"{prefix}What is the color of [0]?"
    answer = f"It is {scene.objects[target].color}."
    return TaskSample("region", _conversation(scene, question, answer), refer_masks=masks)


def memory(scene: Scene, rng: np.random.Generator) -> TaskSample:
    """PixelQA-style: refer with a point, localise with ``<|seg|>``."""
    target = int(rng.integers(len(scene.objects)))
    mask = scene.objects[target].masks
    question = f"What shape is [0] {REF_TOKEN}? Please localize the relevant objects with IDs."
    masks = scene.object_masks()[:, [target]]
    sample = TaskSample("mem_point", _conversation(scene, question, f"[0] {SEG_TOKEN}"), seg_masks=masks)
    sample.prompts = [_point_prompt(mask, rng)]
    return sample


def _memory_prefix(scene: Scene, masks: np.ndarray) -> str:
    return memory_prefix(scene.num_frames, masks, list(range(masks.shape[1])))


def memory_prefix(num_frames: int, masks: np.ndarray, oids: list[int]) -> str:
    """The highlighted-region prefix of DATA.md §6.2, listing each object's non-empty frame pairs.

    Args:
        num_frames: sampled frames before even-padding (1 for an image).
        masks: ``(T, O, H, W)`` bool mask prompts of the objects.
        oids: the ``[oid]`` shown for each object.
    """
    if num_frames == 1:
        lines = [f"[{oid}]: {MEM_TOKEN}" for oid in oids]
        return "Here is an image with the following highlighted regions:\n" + "\n".join(lines) + "\n"
    pairs = pair_visibility(masks)
    header = f"Here is a video with {num_frames} frames denoted as <1> to <{num_frames}>. "
    lines = []
    for index, oid in enumerate(oids):
        cells = [f"<{2 * k + 1}>-<{2 * k + 2}> {MEM_TOKEN}" for k in np.flatnonzero(pairs[:, index])]
        lines.append(f"[{oid}]: " + " ".join(cells))
    return header + "The highlighted regions are as follows:\n" + "\n".join(lines) + "\n"


def pair_visibility(masks: np.ndarray) -> np.ndarray:
    """``(ceil(T/2), O)`` bool: whether each object is visible in each frame pair (T padded by repetition)."""
    if masks.shape[0] % 2:
        masks = np.concatenate([masks, masks[-1:]], axis=0)
    flat = masks.reshape(masks.shape[0] // 2, 2, masks.shape[1], -1)
    return flat.any(axis=(1, 3))


BUILDERS: dict[str, Callable[[Scene, np.random.Generator], TaskSample]] = {
    "seg": segmentation,
    "ref_point": lambda scene, rng: referring(scene, rng, "point"),
    "ref_box": lambda scene, rng: referring(scene, rng, "box"),
    "region": region,
    "mem_point": memory,
}
