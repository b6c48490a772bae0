"""Contracts between the data pipeline, the model, the metrics and the callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import Tensor


@dataclass
class VisualPrompt:
    """One ``<|ref|>`` prompt: a positive point or a box on one LLM frame.

    Attributes:
        coords: ``(P, 2)`` float (x, y) in SAM 2 input pixels (0..image_size); P = 1 point, P = 2 box corners.
        labels: ``(P,)`` long; ``[1]`` for a point, ``[2, 3]`` for a box (top-left, bottom-right).
        frame: index of the prompted frame among the frames given to the LLM.
    """

    coords: Tensor
    labels: Tensor
    frame: int = 0

    def __post_init__(self) -> None:
        points = self.coords.shape[0] if self.coords.dim() == 2 else -1
        if self.coords.dim() != 2 or self.coords.shape[-1] != 2 or points not in (1, 2):
            raise ValueError(f"visual prompt coords must be (1, 2) or (2, 2), got {tuple(self.coords.shape)}")
        if tuple(self.labels.shape) != (points,):
            raise ValueError(f"visual prompt labels must be ({points},), got {tuple(self.labels.shape)}")

    @classmethod
    def point(cls, x: float, y: float, frame: int = 0) -> VisualPrompt:
        return cls(torch.tensor([[x, y]], dtype=torch.float32), torch.tensor([1]), frame)

    @classmethod
    def box(cls, x0: float, y0: float, x1: float, y1: float, frame: int = 0) -> VisualPrompt:
        coords = torch.tensor([[x0, y0], [x1, y1]], dtype=torch.float32)
        return cls(coords, torch.tensor([2, 3]), frame)


@dataclass
class UniPixelBatch:
    """A collated batch. Sequence fields are padded on the right; per-sample fields are lists of length B.

    Attributes:
        input_ids: ``(B, L)`` token ids.
        attention_mask: ``(B, L)`` 1 for real tokens.
        position_ids: ``(3, B, L)`` mRoPE (temporal, height, width) positions.
        mm_token_type_ids: ``(B, L)`` 0 text, 1 image, 2 video.
        labels: ``(B, L)`` targets, ``-100`` outside assistant turns; None at inference.
        pixel_values_videos: ``(sum_v t*h*w, C*T*P*P)`` patchified videos (images are 1-slice videos), or None.
        video_grid_thw: ``(num_videos, 3)`` ViT patch grid of each video, one video per sample that has one.
        video_sample_index: ``(num_videos,)`` the sample each video belongs to.
        sam_frames: per sample ``(T, 3, S, S)`` normalised SAM 2 frames, or None for samples without masks.
        frame_sizes: per sample the original ``(H, W)`` of the frames, or None.
        prompts: per sample the ``<|ref|>`` prompts in sequence order (possibly empty).
        refer_masks: per sample ``(g_t, O, g_h/2, g_w/2)`` bool masks of ``<|mem|>`` objects, or None.
        target_masks: per sample ``(T, O, S, S)`` bool masks, one object per ``<|seg|>``, or None.
        task: per sample task name (e.g. ``referring_seg``), used for grouping and metrics.
    """

    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    mm_token_type_ids: Tensor
    labels: Tensor | None = None
    pixel_values_videos: Tensor | None = None
    video_grid_thw: Tensor | None = None
    video_sample_index: Tensor | None = None
    sam_frames: list[Tensor | None] = field(default_factory=list)
    frame_sizes: list[tuple[int, int] | None] = field(default_factory=list)
    prompts: list[list[VisualPrompt]] = field(default_factory=list)
    refer_masks: list[Tensor | None] = field(default_factory=list)
    target_masks: list[Tensor | None] = field(default_factory=list)
    task: list[str] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> UniPixelBatch:
        """Move every tensor (also inside lists) to ``device``; returns a new batch."""
        return UniPixelBatch(**{f.name: _move(getattr(self, f.name), device) for f in fields(self)})


def _move(value: object, device: torch.device | str) -> object:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, VisualPrompt):
        return VisualPrompt(value.coords.to(device), value.labels.to(device), value.frame)
    if isinstance(value, list):
        return [_move(item, device) for item in value]
    return value


@dataclass
class UniPixelOutput:
    """What a forward pass or a generation returns.

    Attributes:
        loss: total training loss (LM + mask), scalar, or None without labels.
        lm_loss: next-token cross-entropy, scalar, or None.
        mask_loss: SAM 2 mask loss averaged over samples with masks, scalar, or None.
        logits: ``(B, L, vocab)`` next-token logits, or None when not kept.
        mask_logits: per sample ``(T, O, S, S)`` high-resolution mask logits of the chosen mask, or None.
        masks: per sample ``(O, T, H, W)`` bool masks at the original resolution (inference), or None.
        sequences: ``(B, L_new)`` generated token ids (generation only).
        text: decoded generated text (generation only).
    """

    loss: Tensor | None = None
    lm_loss: Tensor | None = None
    mask_loss: Tensor | None = None
    logits: Tensor | None = None
    mask_logits: list[Tensor | None] = field(default_factory=list)
    masks: list[Tensor | None] = field(default_factory=list)
    sequences: Tensor | None = None
    text: list[str] = field(default_factory=list)
