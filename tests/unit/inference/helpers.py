"""Tiny inference fixtures built in the test session: a checkpoint, videos, frame folders and images."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from tests.unit.checkpoints.synthetic import tiny_config
from unipixel_pl.checkpoints.ours import save_ours
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import build_tiny_tokenizer

PIXEL_BUDGETS = {"min_pixels": 4 * 784, "max_pixels": 16 * 784}
"""Small Qwen pixel budgets: a 48x64 image becomes 16 visual tokens, a 16-frame video 8 per frame pair."""


def tiny_model(seed: int = 0) -> LitUniPixel:
    """A random tiny model whose SAM 2 always sees an object (object-score bias +20), so masks are not empty.

    Its frame code has ``S/2`` features as in the published checkpoints, so it can also be saved officially.
    """
    torch.manual_seed(seed)
    model = LitUniPixel(tiny_config())
    model.configure_model()
    with torch.no_grad():
        model.mask_decoder.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return model.eval()


def write_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save :func:`tiny_model` with the tiny tokenizer and small pixel budgets in our checkpoint format."""
    model = tiny_model(seed)
    processor = UniPixelProcessor.from_config(build_tiny_tokenizer(), model.config.backbone, **PIXEL_BUDGETS)
    save_ours(model, processor, path)
    return path


def moving_square(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 ``(T, H, W, 3)``: a red square moving right over a dark-blue background."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    frames[..., 2] = 60
    for t in range(num_frames):
        left = (2 * t) % (width - 16)
        frames[t, 12:28, left : left + 16] = (230, 30, 30)
    return frames


def write_mp4(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Encode ``frames`` as an MPEG-4 Part 2 video with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(path: Path, frames: np.ndarray, suffix: str = ".png") -> Path:
    """Write ``frames`` as ``frame_1{suffix}``, ``frame_2{suffix}``... (numbers unpadded, to test natural order)."""
    path.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(path / f"frame_{index}{suffix}")
    return path
