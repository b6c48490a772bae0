"""Write inference results: one PNG mask per object per frame, an overlay image or animation, a JSON summary.

Layout under the output directory (request ``r``, object ``o``; frame names are the frame files' stems for a
folder, ``00000``... for a video)::

    summary.json
    request-{r}/masks/object-{o}/{frame}.png   # 8-bit, 255 = object
    request-{r}/overlay.png                     # single-frame media
    request-{r}/overlay.gif | overlay.png       # videos: animated GIF or APNG, longest side --overlay-size

Masks are written as frames arrive, so only the animation frames (downscaled, 1 byte per pixel for GIF) are kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from unipixel_pl.inference.media import Media
from unipixel_pl.inference.predictor import Answer, MediaStream
from unipixel_pl.inference.requests import Request

PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48), (145, 30, 180), (70, 240, 240))
"""Object colours of the overlays, cycled."""
ANIMATIONS = ("gif", "apng", "none")
ALPHA = 0.5


def overlay(rgb: np.ndarray, masks: np.ndarray, regions: Sequence[tuple[float, ...]] = ()) -> Image.Image:
    """Blend object masks onto a frame and outline point/box prompts.

    Args:
        rgb: uint8 ``(H, W, 3)`` frame.
        masks: bool ``(O, H, W)``; object ``o`` gets ``PALETTE[o % len(PALETTE)]`` at 50 %.
        regions: ``(x, y)`` points and ``(x1, y1, x2, y2)`` boxes drawn in white.
    """
    image = rgb.astype(np.float32)
    for index, mask in enumerate(masks):
        colour = np.array(PALETTE[index % len(PALETTE)], dtype=np.float32)
        image[mask] = (1 - ALPHA) * image[mask] + ALPHA * colour
    result = Image.fromarray(image.round().astype(np.uint8))
    draw = ImageDraw.Draw(result)
    for coords in regions:
        if len(coords) == 2:
            x, y = coords
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), outline=(255, 255, 255), width=2)
        else:
            draw.rectangle(coords, outline=(255, 255, 255), width=2)
    return result


class RequestWriter:
    """Writes one request's masks, overlay and summary entry as the frames arrive.

    Args:
        root: the request's directory (``request-{r}``).
        request: the request (its visual prompts are drawn).
        answer: its answer.
        media: the media.
        animation: ``gif``, ``apng`` or ``none`` (videos only).
        overlay_size: longest side of animation frames in pixels.
    """

    def __init__(
        self, root: Path, request: Request, answer: Answer, media: Media, animation: str, overlay_size: int
    ) -> None:
        self.root, self.request, self.answer, self.media = root, request, answer, media
        self.animation = animation if media.num_frames > 1 else "png"
        self.overlay_size = overlay_size
        self.areas = np.zeros((answer.num_objects, media.num_frames), dtype=np.int64)
        self.frames: list[Image.Image] = []
        for index in range(answer.num_objects):
            (root / "masks" / f"object-{index}").mkdir(parents=True, exist_ok=True)

    def add(self, index: int, rgb: np.ndarray, masks: Tensor) -> None:
        """Write frame ``index``'s masks ``(O, H, W)`` bool and keep its overlay frame."""
        if self.answer.num_objects == 0:
            return
        array = masks.numpy()
        name = self.media.frame_names[index]
        for obj, mask in enumerate(array):
            Image.fromarray(mask.astype(np.uint8) * 255).save(self.root / "masks" / f"object-{obj}" / f"{name}.png")
        self.areas[:, index] = array.reshape(len(array), -1).sum(axis=1)
        if self.animation != "none":
            regions = [r.coords for r in self.request.regions if r.frame == index]
            self.frames.append(self._animation_frame(overlay(rgb, array, regions)))

    def _animation_frame(self, image: Image.Image) -> Image.Image:
        if self.animation == "png":
            return image
        image.thumbnail((self.overlay_size, self.overlay_size))
        return image.quantize(colors=255) if self.animation == "gif" else image

    def close(self) -> dict[str, Any]:
        """Write the overlay; return this request's summary entry."""
        overlay_path = self._write_overlay()
        return {
            "prompt": self.request.prompt,
            "answer": self.answer.text,
            "input_tokens": self.answer.input_tokens,
            "generated_tokens": len(self.answer.token_ids),
            "llm_frames": self.answer.llm_frames,
            "visual_prompts": self._visual_prompts(),
            "objects": [self._object_entry(index) for index in range(self.answer.num_objects)],
            "overlay": overlay_path,
        }

    def _visual_prompts(self) -> list[dict[str, Any]]:
        regions = [{"type": r.kind, "coords": list(r.coords), "frame": r.frame} for r in self.request.regions]
        return regions + [{"type": "mask", "file": m.name, "frame": m.frame} for m in self.request.masks]

    def _object_entry(self, index: int) -> dict[str, Any]:
        visible = np.flatnonzero(self.areas[index])
        return {
            "id": index,
            "masks": f"{self.root.name}/masks/object-{index}",
            "frames_with_mask": len(visible),
            "first_frame": int(visible[0]) if len(visible) else None,
            "area": self.areas[index].tolist(),
        }

    def _write_overlay(self) -> str | None:
        if not self.frames:
            return None
        name = "overlay.gif" if self.animation == "gif" else "overlay.png"
        first, rest = self.frames[0], self.frames[1:]
        options: dict[str, Any] = {}
        if rest:
            options = {"save_all": True, "append_images": rest, "duration": round(1000 / self.media.fps), "loop": 0}
        first.save(self.root / name, **options)
        return f"{self.root.name}/{name}"


def write_outputs(
    out_dir: Path,
    stream: MediaStream,
    requests: Sequence[Request],
    animation: str = "gif",
    overlay_size: int = 480,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Consume ``stream`` (frames decoded once for all requests) and write every output; returns the summary.

    Args:
        out_dir: output directory (created).
        stream: :meth:`Predictor.stream` of ``requests``.
        requests: the requests, in the order of ``stream.answers``.
        animation: overlay animation of videos: ``gif``, ``apng`` or ``none``.
        overlay_size: longest side of animation frames.
        extra: more top-level summary fields (e.g. the checkpoint).
    """
    media = stream.media
    writers = [
        RequestWriter(out_dir / f"request-{index}", request, answer, media, animation, overlay_size)
        for index, (request, answer) in enumerate(zip(requests, stream.answers, strict=True))
    ]
    for frame in stream.frames:
        for writer, masks in zip(writers, frame.masks, strict=True):
            writer.add(frame.index, frame.rgb, masks)
    summary = {
        "media": media.source,
        "kind": media.kind,
        "num_frames": media.num_frames,
        "frame_size": list(media.frame_size),
        "fps": media.fps,
        **(extra or {}),
        "requests": [writer.close() for writer in writers],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
