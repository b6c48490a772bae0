"""Encode a ``TaskSample`` into the per-sample tensors the model reads (one ``SampleRecord``).

This is the online stage of the pipeline: the Qwen processor (tokens, labels, smart resize, grid, positions),
visual prompts mapped to SAM 2 pixels and mask prompts pooled to the LLM token grid (``reference/DATA.md`` §5,
§6). Pixels stay uint8 and masks stay at the original size: the model normalises, patchifies and squashes them to
the SAM 2 size on its device (``unipixel_pl.models.pixel_pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from unipixel_pl.datamodules.tasks import PromptSpec, TaskSample
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.types import VisualPrompt


@dataclass
class SampleRecord:
    """One encoded sample; ``collate`` turns a list of these into a ``UniPixelBatch``.

    Attributes:
        text: processor outputs with a leading sequence axis: ``input_ids``, ``attention_mask``, ``labels``,
            ``mm_token_type_ids`` of shape (L,), ``position_ids`` (3, L).
        video: uint8 ``(T, H', W', 3)`` frames at the smart-resize size, or None for text-only samples.
        video_grid_thw: ``(1, 3)`` or None.
        frames: uint8 ``(T, H, W, 3)`` frames for SAM 2 at the original size (``video`` itself when the resize
            kept the size), or None when nothing is segmented.
        frame_size: original ``(H, W)``, None for text-only samples.
        prompts: the ``<|ref|>`` prompts in SAM 2 pixels.
        refer_mask: ``(g_t, O, g_h/2, g_w/2)`` bool or None.
        frame_masks: ``(T, O, H, W)`` bool target masks at the original size, or None.
        task: task family name.
        key: the sample's key in its shards ("" for generated samples).
    """

    text: dict[str, Tensor]
    video: Tensor | None
    video_grid_thw: Tensor | None
    frames: Tensor | None
    frame_size: tuple[int, int] | None
    prompts: list[VisualPrompt]
    refer_mask: Tensor | None
    frame_masks: Tensor | None
    task: str
    key: str = ""


class SampleEncoder:
    """Callable turning ``(frames, TaskSample)`` into a ``SampleRecord``.

    Args:
        processor: our Qwen2.5-VL processor.
        sam_image_size: SAM 2 input side ``S`` (visual prompts are mapped to it).
    """

    def __init__(self, processor: UniPixelProcessor, sam_image_size: int) -> None:
        self.processor = processor
        self.sam_image_size = sam_image_size

    def __call__(self, frames: np.ndarray | None, sample: TaskSample, key: str = "") -> SampleRecord:
        """Encode one sample. ``frames``: ``(T, H, W, 3)`` uint8, or None for a text-only conversation."""
        encoded = self.processor(
            sample.messages, videos=None if frames is None else [frames], return_pixel_values=False
        )
        grid = encoded["video_grid_thw"]
        if frames is None and (sample.prompts or sample.seg_masks is not None or sample.refer_masks is not None):
            raise ValueError(f"sample {key!r} has prompts or masks but no frames")
        height, width = (0, 0) if frames is None else frames.shape[1:3]
        video = encoded["videos"][0] if encoded["videos"] else None
        return SampleRecord(
            text={
                k: encoded[k] for k in ("input_ids", "attention_mask", "labels", "mm_token_type_ids", "position_ids")
            },
            video=video,
            video_grid_thw=grid,
            frames=None if sample.seg_masks is None else _original_frames(frames, video),
            frame_size=None if frames is None else (height, width),
            prompts=[self._prompt(p, height, width) for p in sample.prompts],
            refer_mask=None
            if sample.refer_masks is None
            else grid_masks(torch.from_numpy(sample.refer_masks), grid[0]),
            frame_masks=None if sample.seg_masks is None else torch.from_numpy(sample.seg_masks),
            task=sample.task,
            key=key,
        )

    def _prompt(self, spec: PromptSpec, height: int, width: int) -> VisualPrompt:
        """Map original-pixel coordinates to the square SAM 2 input (aspect ratio not kept, as the reference)."""
        scale = torch.tensor([self.sam_image_size / width, self.sam_image_size / height])
        coords = torch.from_numpy(spec.coords).float() * scale
        return VisualPrompt(coords, torch.from_numpy(spec.labels).long(), spec.frame)


def _original_frames(frames: np.ndarray, video: Tensor) -> Tensor:
    """The original frames as a tensor: the LLM's ``video`` itself when the smart resize kept their size."""
    return video if tuple(video.shape) == frames.shape else torch.from_numpy(frames)


def grid_masks(masks: Tensor, grid_thw: Tensor, patch_size: int = 14, merge_size: int = 2) -> Tensor:
    """Pool object masks to the merged LLM token grid.

    Args:
        masks: ``(T, O, H, W)`` bool at original resolution.
        grid_thw: ``(3,)`` the video's ViT patch grid ``(g_t, g_h, g_w)``.

    Returns:
        ``(g_t, O, g_h/2, g_w/2)`` bool: frame pairs max-pooled, resized to the patch grid, max-pooled per merge unit.
    """
    g_t, g_h, g_w = (int(v) for v in grid_thw)
    if masks.shape[0] % 2:
        masks = torch.cat([masks, masks[-1:]], dim=0)
    pairs = masks.float().reshape(masks.shape[0] // 2, 2, *masks.shape[1:]).amax(dim=1)
    if pairs.shape[0] != g_t:
        raise ValueError(f"refer masks cover {pairs.shape[0]} frame pairs but the video grid has g_t={g_t}")
    resized = F.interpolate(pairs, size=(g_h * patch_size, g_w * patch_size), mode="bilinear", antialias=True)
    unit = patch_size * merge_size
    return F.max_pool2d(resized, kernel_size=unit, stride=unit) > 0
