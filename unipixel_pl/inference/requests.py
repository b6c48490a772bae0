"""Inference requests: a prompt about one media plus points, boxes and masks, parsed and checked.

Visual prompts are given in the pixels of the original frames and on an original frame index:

- a point ``X,Y[@FRAME]`` or a box ``X1,Y1,X2,Y2[@FRAME]`` fills the next ``<|ref|>`` of the prompt (one
  ``<|ref|>`` per point or box, in order), e.g. ``"What is [0] <|ref|> doing?"`` (DATA.md §7.2-7.4);
- a mask ``PNG[@FRAME]`` becomes object ``[k]`` (k-th mask) of the highlighted-region prefix, whose ``<|mem|>``
  tokens the predictor writes (DATA.md §6.2), so the prompt refers to it as ``[k]``.

Coordinates must lie on the frame: ``0 <= x <= W`` and ``0 <= y <= H`` (a box may touch the border).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from unipixel_pl.config import MEM_TOKEN, REF_TOKEN
from unipixel_pl.inference.media import Media, MediaSource
from unipixel_pl.types import VisualPrompt

_FRAME_SUFFIX = re.compile(r"^(?P<body>.*)@(?P<frame>\d+)$")


class RequestError(ValueError):
    """A request that does not fit its media or the model: bad coordinates, frames, masks or prompt."""


@dataclass(frozen=True)
class RegionPrompt:
    """A point ``(x, y)`` or a box ``(x1, y1, x2, y2)`` in original pixels, on media frame ``frame``."""

    coords: tuple[float, ...]
    frame: int = 0

    def __post_init__(self) -> None:
        if len(self.coords) not in (2, 4):
            raise RequestError(f"a point has 2 coordinates and a box 4, got {self.coords}")

    @property
    def kind(self) -> str:
        return "point" if len(self.coords) == 2 else "box"

    def to_visual_prompt(self, frame_size: tuple[int, int], sam_image_size: int, llm_frame: int) -> VisualPrompt:
        """The prompt in SAM 2 input pixels (frames are squashed to ``S x S``) on LLM frame ``llm_frame``."""
        height, width = frame_size
        sx, sy = sam_image_size / width, sam_image_size / height
        if self.kind == "point":
            x, y = self.coords
            return VisualPrompt.point(x * sx, y * sy, llm_frame)
        x1, y1, x2, y2 = self.coords
        return VisualPrompt.box(x1 * sx, y1 * sy, x2 * sx, y2 * sy, llm_frame)


@dataclass
class MaskPrompt:
    """An object mask: ``mask`` bool ``(H, W)`` at the media's size, on media frame ``frame``."""

    mask: np.ndarray
    frame: int = 0
    name: str = "<array>"


@dataclass
class Request:
    """One question about one media.

    Attributes:
        media: a path (image, video, frame folder), an array, a PIL image or an opened ``Media``.
        prompt: the user text; one ``<|ref|>`` per region prompt, ``[k]`` to mention mask ``k``.
        regions: points and boxes, in ``<|ref|>`` order.
        masks: mask prompts; mask ``k`` is object ``[k]``.
    """

    media: MediaSource
    prompt: str
    regions: list[RegionPrompt] = field(default_factory=list)
    masks: list[MaskPrompt] = field(default_factory=list)


def parse_point(text: str) -> RegionPrompt:
    """Parse ``X,Y[@FRAME]``, e.g. ``120,80`` or ``120.5,80@12``."""
    return _parse_region(text, 2, "X,Y[@FRAME], e.g. 120,80 or 120,80@12")


def parse_box(text: str) -> RegionPrompt:
    """Parse ``X1,Y1,X2,Y2[@FRAME]``, e.g. ``10,20,200,180@0``."""
    return _parse_region(text, 4, "X1,Y1,X2,Y2[@FRAME], e.g. 10,20,200,180 or 10,20,200,180@3")


def _parse_region(text: str, count: int, form: str) -> RegionPrompt:
    body, frame = _split_frame(text.strip())
    try:
        values = tuple(float(part) for part in body.split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise RequestError(f"cannot parse {text!r}: expected {form}")
    return RegionPrompt(values, frame)


def _split_frame(text: str) -> tuple[str, int]:
    match = _FRAME_SUFFIX.match(text)
    return (match["body"], int(match["frame"])) if match else (text, 0)


def parse_mask(text: str) -> MaskPrompt:
    """Read ``PNG[@FRAME]``: a mask image (non-zero pixels are the object) for media frame ``FRAME`` (default 0).

    Raises:
        RequestError: the file does not exist or is not a readable image.
    """
    path, frame = Path(text), 0
    match = _FRAME_SUFFIX.match(text)
    if not path.exists() and match:
        path, frame = Path(match["body"]), int(match["frame"])
    return MaskPrompt(read_mask(path), frame, str(path))


def read_mask(path: str | Path) -> np.ndarray:
    """bool ``(H, W)`` mask of an image file: palette indices, grey or luminance values above zero."""
    try:
        with Image.open(path) as image:
            plain = image if image.mode in ("1", "L", "P", "I", "I;16") else image.convert("L")
            return np.asarray(plain) > 0
    except (OSError, SyntaxError, ValueError) as error:
        message = f"cannot read mask {str(path)!r}: {error}; give a PNG whose object pixels are > 0"
        raise RequestError(message) from error


def check_request(request: Request, media: Media) -> None:
    """Check a request against its media before any model work.

    Raises:
        RequestError: an empty prompt, a ``<|mem|>`` in it, a ``<|ref|>`` count that differs from the region
            prompts, a frame index past the end, a point/box outside the frame, a bad box, or a mask of another
            size or without any pixel.
    """
    _check_prompt_text(request)
    for region in request.regions:
        _check_frame(region.frame, media, f"{region.kind} {_format(region.coords)}")
        _check_region(region, media.frame_size)
    for mask in request.masks:
        _check_frame(mask.frame, media, f"mask {mask.name}")
        _check_mask(mask, media.frame_size)


def _check_prompt_text(request: Request) -> None:
    if not request.prompt.strip():
        raise RequestError("the prompt is empty; ask a question, e.g. 'Please segment the dog in this video.'")
    if MEM_TOKEN in request.prompt:
        raise RequestError(
            f"the prompt contains {MEM_TOKEN}; give mask prompts with --mask and mention mask k as [k] in the text"
        )
    refs = request.prompt.count(REF_TOKEN)
    if refs != len(request.regions):
        raise RequestError(
            f"the prompt has {refs} {REF_TOKEN} but {len(request.regions)} point/box prompt(s) were given; write one "
            f"{REF_TOKEN} where each point or box is meant, in order, e.g. 'What is [0] {REF_TOKEN} doing?'"
        )


def _check_frame(frame: int, media: Media, what: str) -> None:
    if not 0 <= frame < media.num_frames:
        raise RequestError(
            f"{what} is on frame {frame}, past the end of {media.source} ({media.num_frames} frame(s), "
            f"indices 0..{media.num_frames - 1})"
        )


def _check_region(region: RegionPrompt, frame_size: tuple[int, int]) -> None:
    height, width = frame_size
    xs, ys = region.coords[0::2], region.coords[1::2]
    if not all(0 <= x <= width for x in xs) or not all(0 <= y <= height for y in ys):
        raise RequestError(
            f"{region.kind} {_format(region.coords)} lies outside the {width}x{height} (WxH) frame; coordinates "
            f"are pixels with 0 <= x <= {width} and 0 <= y <= {height}"
        )
    if region.kind == "box" and (xs[0] > xs[1] or ys[0] > ys[1]):
        raise RequestError(f"box {_format(region.coords)} is not X1,Y1,X2,Y2 with X1 <= X2 and Y1 <= Y2")


def _check_mask(mask: MaskPrompt, frame_size: tuple[int, int]) -> None:
    if mask.mask.shape != frame_size:
        raise RequestError(
            f"mask {mask.name} is {mask.mask.shape[1]}x{mask.mask.shape[0]} (WxH) but the media's frames are "
            f"{frame_size[1]}x{frame_size[0]}; give a mask of the frame's size"
        )
    if not mask.mask.any():
        raise RequestError(f"mask {mask.name} has no object pixel (all zero); non-zero pixels mark the object")


def _format(coords: tuple[float, ...]) -> str:
    return ",".join(f"{value:g}" for value in coords)
