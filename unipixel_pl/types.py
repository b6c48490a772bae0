"""Contracts between the data pipeline, the model, the metrics and the callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Self

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

    Pixels travel in two forms. The data pipeline ships *host media*: uint8 frames (``videos``, ``frames``) and
    original-size masks (``frame_masks``), cheap to build, pin and transfer. The model turns them into its float
    *model inputs* (``pixel_values_videos``, ``sam_frames``, ``target_masks``) on its device with
    ``unipixel_pl.models.pixel_pipeline.prepare_batch`` (``LitUniPixel.prepare_batch``), which empties the host
    fields. A batch may also be built with the model inputs directly (parity tests, converted fixtures).

    Attributes:
        input_ids: ``(B, L)`` token ids.
        attention_mask: ``(B, L)`` 1 for real tokens.
        position_ids: ``(3, B, L)`` mRoPE (temporal, height, width) positions.
        mm_token_type_ids: ``(B, L)`` 0 text, 1 image, 2 video.
        labels: ``(B, L)`` targets, ``-100`` outside assistant turns; None at inference.
        pixel_values_videos: ``(sum_v t*h*w, C*T*P*P)`` float32 patchified videos (images are 1-slice videos), or
            None (no media, or not prepared yet).
        video_grid_thw: ``(num_videos, 3)`` ViT patch grid of each video, one video per sample that has one.
        video_sample_index: ``(num_videos,)`` the sample each video belongs to.
        sam_frames: per sample ``(T, 3, S, S)`` float32 normalised SAM 2 frames, or None for samples without masks.
        frame_sizes: per sample the original ``(H, W)`` of the frames, or None.
        prompts: per sample the ``<|ref|>`` prompts in sequence order (possibly empty).
        refer_masks: per sample ``(g_t, O, g_h/2, g_w/2)`` bool masks of ``<|mem|>`` objects, or None.
        target_masks: per sample ``(T, O, S, S)`` bool masks, one object per ``<|seg|>``, or None.
        task: per sample task name (e.g. ``referring_seg``), used for grouping and metrics.
        videos: host media of ``pixel_values_videos``: per video (rows of ``video_grid_thw``) uint8
            ``(T, H', W', 3)`` frames already at the smart-resize size ``H' = 14 g_h``, ``W' = 14 g_w``.
        frames: host media of ``sam_frames``: per sample uint8 ``(T, H, W, 3)`` frames at the original size, or
            None. The same tensor as the sample's ``videos`` entry when the smart resize kept the size.
        frame_masks: host media of ``target_masks``: per sample bool ``(T, O, H, W)`` at the original size, or None.
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
    videos: list[Tensor] = field(default_factory=list)
    frames: list[Tensor | None] = field(default_factory=list)
    frame_masks: list[Tensor | None] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]

    @property
    def has_host_media(self) -> bool:
        """True until the model inputs are built from ``videos`` / ``frames`` / ``frame_masks``."""
        return bool(self.videos or self.frames or self.frame_masks)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Self:
        """Move every tensor (also inside lists) to ``device``; returns a new batch of the same class.

        A tensor held by two fields (a sample's frames serving both the LLM and SAM 2) is moved once.
        """
        return self._map(lambda tensor: tensor.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Self:
        """Page-locked copy for asynchronous transfer (what ``DataLoader(pin_memory=True)`` calls)."""
        return self._map(Tensor.pin_memory)

    def _map(self, function: Callable[[Tensor], Tensor]) -> Self:
        memo: dict[int, Tensor] = {}
        return replace(self, **{f.name: _map(getattr(self, f.name), function, memo) for f in fields(UniPixelBatch)})


def _map(value: object, function: Callable[[Tensor], Tensor], memo: dict[int, Tensor]) -> object:
    if isinstance(value, Tensor):
        if id(value) not in memo:
            memo[id(value)] = function(value)
        return memo[id(value)]
    if isinstance(value, VisualPrompt):
        return VisualPrompt(function(value.coords), function(value.labels), value.frame)
    if isinstance(value, list):
        return [_map(item, function, memo) for item in value]
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
        mask_loss_terms: the unweighted SAM 2 terms ``focal``, ``dice``, ``iou``, ``object_score`` of
            ``mask_loss``, detached scalars averaged over the same samples (``mask_loss`` is their weighted sum);
            empty without masks.
    """

    loss: Tensor | None = None
    lm_loss: Tensor | None = None
    mask_loss: Tensor | None = None
    logits: Tensor | None = None
    mask_logits: list[Tensor | None] = field(default_factory=list)
    masks: list[Tensor | None] = field(default_factory=list)
    sequences: Tensor | None = None
    text: list[str] = field(default_factory=list)
    mask_loss_terms: dict[str, Tensor] = field(default_factory=dict)
