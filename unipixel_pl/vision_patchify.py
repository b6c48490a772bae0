"""Qwen2.5-VL pixel pipeline for frame lists: smart resize, even-length padding, CLIP normalisation, patchify.

Reproduces ``qwen_vl_utils.fetch_image`` per frame (PIL bicubic resize to the smart-resize size) followed by the
Qwen2-VL image/video processor with ``do_resize=False`` (``reference/DATA.md`` §4). An image is a one-frame video:
its single frame is repeated to fill the temporal patch, exactly as the image processor tiles it.

The pipeline splits in two halves. :func:`resize_video` runs on the host on uint8 frames (PIL, and only when the
smart-resize size differs from the frame size); :func:`pixel_values` runs wherever its uint8 input lives (the
model calls it on the accelerator, see ``unipixel_pl.models.pixel_pipeline``). Normalisation reads a 256-entry
table per channel computed in float64, so the float32 result is bit-identical to normalising in float64 on the
host as the reference processor does, on any device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from unipixel_pl.config import VisionConfig

MIN_PIXELS = 128 * 28 * 28
"""Default lower pixel budget per frame (every UniPixel task, DATA.md §4.2)."""
MAX_PIXELS = 256 * 28 * 28
"""Default upper pixel budget per frame before the frame-count factor."""
BUDGET_FRAMES = 16
"""``S_f`` of the evaluation / inference budget ``MAX_PIXELS * max(1, S_f // num_frames)``."""
MAX_ASPECT_RATIO = 200
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

FrameInput = np.ndarray | Tensor | Image.Image | Sequence[Image.Image]
"""A video: uint8 ``(T, H, W, 3)`` array or tensor, a list of PIL images, or one PIL image."""


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """Size closest to ``(height, width)`` with both sides multiples of ``factor`` and area in the budget.

    Sides are rounded to a multiple of ``factor`` (at least ``factor``); an area above ``max_pixels`` is scaled down
    (floor), one below ``min_pixels`` scaled up (ceil). Equals transformers' ``smart_resize`` whenever both sides
    exceed ``factor / 2``; otherwise transformers rounds a side to 0 first, while ``qwen_vl_utils`` (which UniPixel
    resizes with) clamps it to ``factor`` as done here.

    Raises:
        ValueError: the aspect ratio exceeds 200.
    """
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"frame of {height}x{width} has aspect ratio {max(height, width) / min(height, width):.1f} > "
            f"{MAX_ASPECT_RATIO}; crop or pad it first"
        )
    resized_height = max(factor, round(height / factor) * factor)
    resized_width = max(factor, round(width / factor) * factor)
    if resized_height * resized_width > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        resized_height = max(factor, math.floor(height / beta / factor) * factor)
        resized_width = max(factor, math.floor(width / beta / factor) * factor)
    elif resized_height * resized_width < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        resized_height = math.ceil(height * beta / factor) * factor
        resized_width = math.ceil(width * beta / factor) * factor
    return resized_height, resized_width


def frame_pixel_budget(num_frames: int, max_pixels: int = MAX_PIXELS, budget_frames: int = BUDGET_FRAMES) -> int:
    """Per-frame ``max_pixels`` for ``num_frames`` sampled frames: ``max_pixels * max(1, budget_frames // n)``.

    ``budget_frames`` is 16 for evaluation and inference, 8 for training, 1 for a fixed budget (DATA.md §4.2).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return max_pixels * max(1, budget_frames // num_frames)


def to_frames(video: FrameInput) -> np.ndarray:
    """Convert a video to a uint8 ``(T, H, W, 3)`` RGB array.

    PIL images are converted to RGB as ``qwen_vl_utils`` does (RGBA is composited on white).

    Raises:
        ValueError: wrong shape, dtype, an empty video or PIL frames of different sizes.
    """
    if isinstance(video, Image.Image):
        video = [video]
    if isinstance(video, (list, tuple)):
        return _stack_pil(video)
    if isinstance(video, Tensor):
        video = video.detach().cpu().numpy()
    if not isinstance(video, np.ndarray):
        raise ValueError(f"a video must be a uint8 (T, H, W, 3) array/tensor or PIL images, got {type(video).__name__}")
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8 or 0 in video.shape:
        raise ValueError(
            f"frames must be uint8 (T, H, W, 3) with T, H, W >= 1, got {video.dtype} {tuple(video.shape)}; "
            "for a single image add a leading frame axis"
        )
    return video


def _stack_pil(images: Sequence[Image.Image]) -> np.ndarray:
    if not images or not all(isinstance(image, Image.Image) for image in images):
        raise ValueError("a list video must hold at least one frame, each a PIL image")
    sizes = {image.size for image in images}
    if len(sizes) != 1:
        raise ValueError(f"all frames of a video must have one size, got (W, H) sizes {sorted(sizes)}")
    return np.stack([np.asarray(_to_rgb(image)) for image in images])


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.split()[3])
    return background


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL-bicubic resize of uint8 ``(T, H, W, 3)`` frames to ``(T, height, width, 3)``; ``frames`` itself when the
    size is already right (PIL's resize to the same size is a copy)."""
    if frames.shape[1:3] == (height, width):
        return frames
    resized = [Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC) for frame in frames]
    return np.stack([np.asarray(image) for image in resized])


def normalize_frames(frames: Tensor) -> Tensor:
    """uint8 ``(T, H, W, 3)`` -> float32 ``(T, 3, H, W)``: ``(x / 255 - CLIP_MEAN) / CLIP_STD`` evaluated in float64.

    Every uint8 value of a channel maps to one float, so the float64 results are tabulated (``3 x 256``) and
    looked up: exact, and as cheap as a float32 affine map on any device.
    """
    device = frames.device
    levels = torch.arange(256, dtype=torch.float64, device=device) / 255.0
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64, device=device)[:, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float64, device=device)[:, None]
    table = ((levels - mean) / std).float()  # (3, 256)
    channels = frames.permute(3, 0, 1, 2)  # (3, T, H, W)
    planes = [table[c].index_select(0, channels[c].reshape(-1).int()).view(channels.shape[1:]) for c in range(3)]
    return torch.stack(planes, dim=1)


def patchify(pixels: Tensor, vision: VisionConfig) -> tuple[Tensor, Tensor]:
    """Cut normalised frames into Qwen2.5-VL patch rows.

    Args:
        pixels: ``(T, C, H, W)`` with ``H`` and ``W`` multiples of ``patch_size * spatial_merge_size``; ``T`` is
            padded to a multiple of ``temporal_patch_size`` by repeating the last frame.
        vision: patch, temporal patch and merge sizes.

    Returns:
        ``pixel_values`` ``(g_t * g_h * g_w, C * temporal_patch * patch * patch)`` (rows in raster order of merge
        units, the ``merge**2`` patches of a unit consecutive) and ``grid_thw`` ``(3,)`` = ``(g_t, g_h, g_w)``.
    """
    patch, temporal, merge = vision.patch_size, vision.temporal_patch_size, vision.spatial_merge_size
    frames, channels, height, width = pixels.shape
    if height % (patch * merge) or width % (patch * merge):
        raise ValueError(f"frame size {height}x{width} must be a multiple of {patch * merge}; smart_resize it first")
    if frames % temporal:
        pixels = torch.cat([pixels, pixels[-1:].expand(temporal - frames % temporal, -1, -1, -1)])
    grid_t, grid_h, grid_w = pixels.shape[0] // temporal, height // patch, width // patch
    patches = pixels.reshape(grid_t, temporal, channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixel_values = patches.reshape(grid_t * grid_h * grid_w, channels * temporal * patch * patch)
    return pixel_values, torch.tensor([grid_t, grid_h, grid_w])


def video_grid(num_frames: int, height: int, width: int, vision: VisionConfig) -> Tensor:
    """``(3,)`` int64 patch grid ``(g_t, g_h, g_w)`` of ``num_frames`` frames of ``height x width`` (resized) pixels."""
    temporal, patch = vision.temporal_patch_size, vision.patch_size
    return torch.tensor([-(-num_frames // temporal), height // patch, width // patch])


def resize_video(
    video: FrameInput, vision: VisionConfig, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Host half: uint8 ``(T, H', W', 3)`` frames at the smart-resize size within the per-frame budget."""
    frames = to_frames(video)
    factor = vision.patch_size * vision.spatial_merge_size
    height, width = smart_resize(frames.shape[1], frames.shape[2], factor, min_pixels, max_pixels)
    return resize_frames(frames, height, width)


def pixel_values(frames: Tensor, vision: VisionConfig) -> Tensor:
    """Device half: resized uint8 ``(T, H', W', 3)`` frames -> ``(g_t*g_h*g_w, 3*2*14*14)`` float32 patch rows."""
    return patchify(normalize_frames(frames), vision)[0]


def process_video(
    video: FrameInput, vision: VisionConfig, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[Tensor, Tensor]:
    """Resize (smart resize within the per-frame budget), normalise and patchify one video or image, on the host.

    Returns:
        ``pixel_values`` ``(g_t * g_h * g_w, 3 * 2 * 14 * 14)`` float32 and ``grid_thw`` ``(3,)`` int64.
    """
    return patchify(normalize_frames(torch.from_numpy(resize_video(video, vision, min_pixels, max_pixels))), vision)
