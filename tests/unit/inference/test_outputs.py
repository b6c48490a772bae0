"""Outputs: mask PNGs per object per frame, overlays and animations, and the JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.unit.inference.helpers import moving_square
from unipixel_pl.inference.media import open_media
from unipixel_pl.inference.outputs import PALETTE, overlay, write_outputs
from unipixel_pl.inference.predictor import Answer, FrameMasks, MediaStream
from unipixel_pl.inference.requests import MaskPrompt, RegionPrompt, Request


def test_overlay_blends_each_object_at_half_opacity_and_outlines_prompts() -> None:
    rgb = np.full((20, 30, 3), 100, dtype=np.uint8)
    masks = np.zeros((2, 20, 30), dtype=bool)
    masks[0, :5, :5] = True
    masks[1, 10:, 10:] = True
    result = np.asarray(overlay(rgb, masks, regions=[(25.0, 5.0)]))
    assert result[0, 0].tolist() == [round(50 + 0.5 * c) for c in PALETTE[0]]
    assert result[15, 15].tolist() == [round(50 + 0.5 * c) for c in PALETTE[1]]
    assert result[7, 7].tolist() == [100, 100, 100]
    assert result[5, 21].tolist() == [255, 255, 255]  # on the point's circle (radius 4)


def _stream(frames: np.ndarray, answers: list[Answer], masks: list[torch.Tensor]) -> MediaStream:
    """A stream replaying per-request ``(O, T, H, W)`` masks."""
    media = open_media(frames)
    items = (
        FrameMasks(t, frames[t], [m[:, t] for m in masks], [torch.ones(m.shape[0]) for m in masks])
        for t in range(media.num_frames)
    )
    return MediaStream(media, answers, items)


def test_video_outputs_pngs_gif_and_summary(tmp_path: Path) -> None:
    frames = moving_square(4)
    masks = torch.zeros(2, 4, 48, 64, dtype=torch.bool)
    masks[0, :, 12:28, 0:16] = True
    masks[1, 2, 0:3, 0:5] = True
    answers = [Answer("It is <|seg|>, <|seg|>.", [5, 6], [0, 1, 2, 3], 40, 2), Answer("No.", [7], [0, 1, 2, 3], 30, 0)]
    requests = [
        Request(frames, "Where is [0] <|ref|>?", [RegionPrompt((3.0, 4.0, 20.0, 30.0), 1)]),
        Request(frames, "Is [0] there?", masks=[MaskPrompt(np.ones((48, 64), bool), 2, "m.png")]),
    ]
    stream = _stream(frames, answers, [masks, torch.zeros(0, 4, 48, 64, dtype=torch.bool)])
    summary = write_outputs(tmp_path, stream, requests, animation="gif", overlay_size=32, extra={"ckpt": "x"})
    for obj in range(2):
        for t in range(4):
            written = np.asarray(Image.open(tmp_path / "request-0" / "masks" / f"object-{obj}" / f"{t:05d}.png"))
            assert np.array_equal(written, masks[obj, t].numpy().astype(np.uint8) * 255)
    with Image.open(tmp_path / "request-0" / "overlay.gif") as gif:
        assert gif.n_frames == 4 and max(gif.size) == 32
    assert not (tmp_path / "request-1").exists()
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    first, second = summary["requests"]
    assert summary["ckpt"] == "x" and summary["num_frames"] == 4 and summary["frame_size"] == [48, 64]
    assert first["answer"] == "It is <|seg|>, <|seg|>." and first["overlay"] == "request-0/overlay.gif"
    assert first["visual_prompts"] == [{"type": "box", "coords": [3.0, 4.0, 20.0, 30.0], "frame": 1}]
    assert first["objects"][0]["area"] == [256] * 4 and first["objects"][1]["area"] == [0, 0, 15, 0]
    assert first["objects"][1]["first_frame"] == 2 and first["objects"][1]["frames_with_mask"] == 1
    assert second["objects"] == [] and second["overlay"] is None
    assert second["visual_prompts"] == [{"type": "mask", "file": "m.png", "frame": 2}]


def test_image_overlay_is_a_full_size_png_and_apng_animates(tmp_path: Path) -> None:
    image = moving_square(1)
    masks = torch.ones(1, 1, 48, 64, dtype=torch.bool)
    write_outputs(tmp_path / "image", _stream(image, [Answer("a", [1], [0], 9, 1)], [masks]), [Request(image, "q")])
    with Image.open(tmp_path / "image" / "request-0" / "overlay.png") as png:
        assert png.size == (64, 48) and getattr(png, "n_frames", 1) == 1
    video = moving_square(3)
    masks = torch.ones(1, 3, 48, 64, dtype=torch.bool)
    stream = _stream(video, [Answer("a", [1], [0, 1, 2], 9, 1)], [masks])
    write_outputs(tmp_path / "video", stream, [Request(video, "q")], animation="apng")
    with Image.open(tmp_path / "video" / "request-0" / "overlay.png") as apng:
        assert apng.n_frames == 3
    stream = _stream(video, [Answer("a", [1], [0, 1, 2], 9, 1)], [masks])
    summary = write_outputs(tmp_path / "none", stream, [Request(video, "q")], animation="none")
    assert summary["requests"][0]["overlay"] is None and len(list((tmp_path / "none").rglob("*.png"))) == 3
