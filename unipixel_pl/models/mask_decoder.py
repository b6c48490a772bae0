"""The mask decoder part: SAM 2.1 driven by the pointer head's prompt tokens, and its SAM 2 loss (MODEL.md §5-7).

:class:`MaskDecoder` is a self-contained LightningModule part: ``forward`` is the training forward over all frames
(``SAM2Train`` without prompt sampling), :meth:`MaskDecoder.loss` the SAM 2 loss, :meth:`MaskDecoder.segment` the
inference path (``SAM2VideoPredictor`` semantics) and :meth:`MaskDecoder.segment_with_prompts` standalone
point/box segmentation. It never logs and defines no Trainer hooks; ``LitUniPixel`` drives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from torch import Tensor, nn

from unipixel_pl.config import LossConfig, MaskDecoderConfig
from unipixel_pl.models.mask_loss import MaskLossTerms, object_normaliser, sam2_mask_loss
from unipixel_pl.models.sam2_model import (
    FrameFeatures,
    UniPixelSAM2,
    reference_key_to_upstream,
    upstream_key_to_reference,
)

__all__ = [
    "FrameFeatures",
    "FrameSegmentation",
    "MaskDecoder",
    "MaskDecoderOutput",
    "reference_key_to_upstream",
    "upstream_key_to_reference",
]


@dataclass
class MaskDecoderOutput:
    """Training-forward outputs stacked over frames (``M`` = 3 multimask outputs on every frame, 1 without multimask).

    Attributes:
        multimask_logits: ``(T, O, M, S, S)`` high-resolution logits of the M candidate masks.
        ious: ``(T, O, M)`` predicted IoUs.
        object_score_logits: ``(T, O, 1)`` object-presence logits.
        low_res_masks: ``(T, O, 1, S/4, S/4)`` logits of the mask chosen by predicted IoU.
        high_res_masks: ``(T, O, 1, S, S)`` the chosen mask upsampled to the input size.
        low_res_multimask_logits: ``(T, O, M, S/4, S/4)`` the M candidates at the decoder's resolution (None when
            built by hand without them).
    """

    multimask_logits: Tensor
    ious: Tensor
    object_score_logits: Tensor
    low_res_masks: Tensor
    high_res_masks: Tensor
    low_res_multimask_logits: Tensor | None = None

    @classmethod
    def stack(cls, frames: list[dict[str, Tensor]]) -> MaskDecoderOutput:
        """Stack per-frame tracker outputs (:meth:`UniPixelSAM2.track_frame`) along a new frame axis."""
        return cls(**{name: torch.stack([out[name] for out in frames]) for name in cls.__dataclass_fields__})


@dataclass
class FrameSegmentation:
    """Inference result of one frame for ``O`` objects (``M`` = 3 candidate masks).

    Attributes:
        mask_logits: ``(O, H, W)`` fp32 logits of the chosen mask at the original frame size (bilinear from the
            decoder's resolution, -1024 where the object score is <= 0); the mask is ``mask_logits > 0``.
        ious: ``(O, M)`` predicted IoUs of the candidates (the chosen mask has the largest).
        object_score_logits: ``(O, 1)`` object-presence logits.
    """

    mask_logits: Tensor
    ious: Tensor
    object_score_logits: Tensor


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Temporarily put every submodule in eval mode, restoring each one's own flag afterwards."""
    modes = [(child, child.training) for child in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for child, mode in modes:
            child.training = mode


class MaskDecoder(L.LightningModule):
    """SAM 2.1 mask decoder fed with ``<|seg|>`` prompt tokens.

    Args:
        config: SAM 2 sizes and reference switches.
        loss: weights of the SAM 2 loss (defaults to :class:`LossConfig`).
    """

    def __init__(self, config: MaskDecoderConfig, loss: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.loss_config = loss if loss is not None else LossConfig()
        self.sam2 = UniPixelSAM2(config)

    @property
    def prompt_encoder(self) -> PromptEncoder:
        """SAM 2's point/box prompt encoder (the ``<|ref|>`` encoder copies its parameters)."""
        return self.sam2.sam_prompt_encoder

    @property
    def hidden_dim(self) -> int:
        return self.config.hidden_dim

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def _check_frames(self, frames: Tensor) -> None:
        size = self.config.image_size
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (3, size, size):
            raise ValueError(
                f"frames must be (T, 3, {size}, {size}) normalised SAM 2 inputs, got {tuple(frames.shape)}; "
                "prepare them with unipixel_pl.models.sam2_transforms.sam2_transform"
            )

    def _check_prompt_tokens(self, prompt_tokens: Tensor) -> None:
        expected = (self.config.prompt_tokens, self.config.hidden_dim)
        if prompt_tokens.dim() != 3 or tuple(prompt_tokens.shape[1:]) != expected:
            raise ValueError(
                f"prompt_tokens must be (O, {expected[0]}, {expected[1]}), got {tuple(prompt_tokens.shape)}"
            )

    def forward(self, frames: Tensor, prompt_tokens: Tensor) -> MaskDecoderOutput:
        """Training forward: encode all frames, prompt frame 0 with the tokens, track frames 1..T-1.

        NO_OBJ replacement follows ``mask_no_object_in_training`` in train and eval mode alike, so a validation
        loss is comparable with the training loss; :meth:`segment` always applies it.

        Args:
            frames: ``(T, 3, S, S)`` normalised SAM 2 inputs.
            prompt_tokens: ``(O, n, hidden_dim)``, one row per object (the objects form SAM 2's batch).

        Returns:
            Per-frame outputs stacked along a leading ``T`` axis.
        """
        self._check_frames(frames)
        self._check_prompt_tokens(prompt_tokens)
        features = self.sam2.encode_frames(frames)
        self.sam2.decoding_for_loss = True  # teacher-forced validation keeps the training NO_OBJ rule
        try:
            frames_out = list(self.sam2.track(features, prompt_tokens.shape[0], hidden_inputs=prompt_tokens))
        finally:
            self.sam2.decoding_for_loss = False
        return MaskDecoderOutput.stack(frames_out)

    def loss(self, output: MaskDecoderOutput, target_masks: Tensor, all_reduce_objects: bool = False) -> Tensor:
        """SAM 2 loss of one sample: summed over frames and objects, divided by ``T`` (``core_loss / T``).

        Args: as :meth:`loss_terms`.
        """
        return self.loss_terms(output, target_masks, all_reduce_objects).total

    def loss_terms(
        self, output: MaskDecoderOutput, target_masks: Tensor, all_reduce_objects: bool = False
    ) -> MaskLossTerms:
        """The SAM 2 loss terms of one sample and their weighted total, each summed over frames and objects and
        divided by ``T``.

        Args:
            output: :meth:`forward` outputs.
            target_masks: ``(T, O, S, S)`` bool targets (see ``sam2_transforms.resize_target_masks``).
            all_reduce_objects: normalise by the object count averaged over ranks (reference, a collective that
                every rank must reach) instead of the local count.
        """
        num_frames, num_objects = target_masks.shape[:2]
        normaliser = object_normaliser(num_objects, target_masks.device, all_reduce_objects)
        terms = sam2_mask_loss(
            output.multimask_logits,
            output.ious,
            output.object_score_logits,
            target_masks,
            self.loss_config,
            normaliser,
        )
        return terms / num_frames

    @torch.no_grad()
    def encode_frames(self, frames: Tensor) -> FrameFeatures:
        """Inference features of ``frames: (T, 3, S, S)``, reusable by several :meth:`segment` calls."""
        self._check_frames(frames)
        with _eval_mode(self.sam2):
            return self.sam2.encode_frames(frames)

    @torch.no_grad()
    def segment(
        self,
        frames: Tensor | FrameFeatures,
        prompt_tokens: Tensor,
        frame_size: tuple[int, int],
    ) -> Tensor:
        """Inference: prompt frame 0 with the tokens, propagate forward, threshold at the original size.

        Args:
            frames: ``(T, 3, S, S)`` normalised SAM 2 inputs, or their :meth:`encode_frames` features.
            prompt_tokens: ``(O, n, hidden_dim)``.
            frame_size: original ``(H, W)``.

        Returns:
            ``(O, T, H, W)`` bool masks.
        """
        self._check_prompt_tokens(prompt_tokens)
        features = frames if isinstance(frames, FrameFeatures) else self.encode_frames(frames)
        return self._propagate(features, prompt_tokens.shape[0], frame_size, hidden_inputs=prompt_tokens)

    @torch.no_grad()
    def segment_with_prompts(
        self,
        frames: Tensor | FrameFeatures,
        point_coords: Tensor,
        point_labels: Tensor,
        frame_size: tuple[int, int],
    ) -> Tensor:
        """Standalone SAM 2: segment objects prompted by points or boxes on frame 0 and propagate them.

        Args:
            frames: ``(T, 3, S, S)`` normalised SAM 2 inputs, or their :meth:`encode_frames` features.
            point_coords: ``(O, P, 2)`` float (x, y) in SAM 2 input pixels (``0..S``).
            point_labels: ``(O, P)``: 1 positive, 0 negative click; a box is two points labelled 2 and 3.
            frame_size: original ``(H, W)``.

        Returns:
            ``(O, T, H, W)`` bool masks.
        """
        if point_coords.dim() != 3 or point_coords.shape[-1] != 2 or point_labels.shape != point_coords.shape[:2]:
            raise ValueError(
                f"point_coords must be (O, P, 2) and point_labels (O, P), got {tuple(point_coords.shape)} "
                f"and {tuple(point_labels.shape)}"
            )
        features = frames if isinstance(frames, FrameFeatures) else self.encode_frames(frames)
        points = {"point_coords": point_coords.float(), "point_labels": point_labels.to(torch.int32)}
        return self._propagate(features, point_coords.shape[0], frame_size, point_inputs=points)

    @torch.no_grad()
    def stream_segment(
        self, frames: Tensor | FrameFeatures, prompt_tokens: Tensor, frame_size: tuple[int, int]
    ) -> Iterator[FrameSegmentation]:
        """:meth:`segment` frame by frame, with the logits and SAM 2 scores behind each mask.

        Args:
            frames: ``(T, 3, S, S)`` normalised SAM 2 inputs, or their :meth:`encode_frames` features.
            prompt_tokens: ``(O, n, hidden_dim)``.
            frame_size: original ``(H, W)``.

        Yields:
            For frames ``0..T-1`` in order, a :class:`FrameSegmentation` (only one frame's logits are held at a time).
        """
        self._check_prompt_tokens(prompt_tokens)
        features = frames if isinstance(frames, FrameFeatures) else self.encode_frames(frames)
        yield from self._track_at_size(features, prompt_tokens.shape[0], frame_size, hidden_inputs=prompt_tokens)

    def _propagate(
        self,
        features: FrameFeatures,
        num_objects: int,
        frame_size: tuple[int, int],
        hidden_inputs: Tensor | None = None,
        point_inputs: dict[str, Tensor] | None = None,
    ) -> Tensor:
        height, width = frame_size
        device = features.vision_feats[-1].device
        masks = torch.zeros(num_objects, features.num_frames, height, width, dtype=torch.bool, device=device)
        if num_objects == 0:
            return masks
        tracked = self._track_at_size(features, num_objects, frame_size, hidden_inputs, point_inputs)
        for index, frame in enumerate(tracked):
            masks[:, index] = frame.mask_logits > 0
        return masks

    def _track_at_size(
        self,
        features: FrameFeatures,
        num_objects: int,
        frame_size: tuple[int, int],
        hidden_inputs: Tensor | None = None,
        point_inputs: dict[str, Tensor] | None = None,
    ) -> Iterator[FrameSegmentation]:
        """Inference tracking (SAM 2 in eval mode only while it computes), logits upsampled to ``frame_size``."""
        if num_objects == 0:
            return
        tracker = self.sam2.track(features, num_objects, hidden_inputs=hidden_inputs, point_inputs=point_inputs)
        while True:
            with _eval_mode(self.sam2):
                out = next(tracker, None)
            if out is None:
                return
            logits = F.interpolate(out["low_res_masks"].float(), size=frame_size, mode="bilinear", align_corners=False)
            yield FrameSegmentation(logits[:, 0], out["ious"], out["object_score_logits"])

    def load_sam2_checkpoint(self, path: str | Path) -> None:
        """Load an upstream SAM 2.1 ``.pt`` (``{"model": state_dict}``); reference ``fuser...weight`` keys work too.

        Raises:
            KeyError: the file lacks ``"model"``, or has missing or unexpected keys (all named).
        """
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if "model" not in checkpoint:
            raise KeyError(f"{str(path)!r} is not a SAM 2 checkpoint: no 'model' entry (keys: {sorted(checkpoint)})")
        state = {reference_key_to_upstream(key): value for key, value in checkpoint["model"].items()}
        expected = set(self.sam2.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise KeyError(f"SAM 2 checkpoint {str(path)!r} does not fit: missing {missing}, unexpected {unexpected}")
        self.sam2.load_state_dict(state)
