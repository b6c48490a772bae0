"""SAM 2 over a whole video with bounded memory: frames are decoded, encoded and tracked one at a time.

``MaskDecoder.segment`` encodes all ``T`` frames up front, which holds every frame's Hiera features at once
(about 59 MB per frame for Hiera-B+ at 768 in fp32, mostly the stride-4 position encodings: 17 GB for 300
frames). Here :class:`StreamedFrameFeatures` encodes frame ``t`` only when the tracker reaches it and drops it
afterwards; the tracker itself keeps only the conditioning frame, the last ``num_maskmem`` memories and at most
``max_obj_ptrs_in_encoder`` object pointers (``UniPixelSAM2.track``), so memory does not grow with ``T``.
Measured and estimated figures are in ``docs/INFERENCE.md`` and :mod:`unipixel_pl.inference.predictor`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from unipixel_pl.inference.media import Media
from unipixel_pl.models.mask_decoder import FrameFeatures, FrameSegmentation, MaskDecoder
from unipixel_pl.models.sam2_transforms import sam2_transform


class StreamedFrameFeatures(FrameFeatures):
    """:class:`FrameFeatures` whose frames are encoded on first use, in order, one held at a time.

    Args:
        mask_decoder: encodes each frame (``MaskDecoder.encode_frames``).
        frames: yields ``(3, S, S)`` normalised SAM 2 frames in order.
        num_frames: ``T``, known up front (SAM 2's object-pointer positions depend on it).
    """

    def __init__(self, mask_decoder: MaskDecoder, frames: Iterator[Tensor], num_frames: int) -> None:
        super().__init__(vision_feats=[], vision_pos_embeds=[], feat_sizes=[])
        self._mask_decoder = mask_decoder
        self._frames = frames
        self._num_frames = num_frames
        self._current = -1

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def frame(self, index: int, num_objects: int) -> tuple[list[Tensor], list[Tensor]]:
        """Features of frame ``index`` expanded to ``num_objects``; ``index`` must be the current or the next one.

        Raises:
            RuntimeError: a frame out of order, or the frame source ran out before ``T`` frames.
        """
        if index != self._current:
            if index != self._current + 1:
                raise RuntimeError(f"frames are encoded in order: frame {index} asked after frame {self._current}")
            frame = next(self._frames, None)
            if frame is None:
                raise RuntimeError(f"the frame source ended at frame {index} of {self._num_frames}")
            encoded = self._mask_decoder.encode_frames(frame[None])
            self.vision_feats, self.vision_pos_embeds = encoded.vision_feats, encoded.vision_pos_embeds
            self.feat_sizes, self._current = encoded.feat_sizes, index
        return super().frame(0, num_objects)


@dataclass
class TrackedFrame:
    """One frame of a tracked video: its pixels and the segmentation of every object."""

    index: int
    """Frame index in the media."""
    rgb: np.ndarray
    """uint8 ``(H, W, 3)`` frame."""
    segmentation: FrameSegmentation
    """``mask_logits (O, H, W)`` at the frame's size, ``ious (O, M)``, ``object_score_logits (O, 1)``."""


def track_media(mask_decoder: MaskDecoder, media: Media, prompt_tokens: Tensor) -> Iterator[TrackedFrame]:
    """Prompt frame 0 with ``prompt_tokens: (O, n, S)`` and propagate through every frame of ``media``.

    Frames are decoded as the tracker needs them; nothing of a frame is kept once the next one is yielded
    (except SAM 2's bounded memory bank). Yields nothing when ``O == 0``.
    """
    parameter = next(mask_decoder.parameters())
    current: dict[str, tuple[int, np.ndarray]] = {}

    def sam_frames() -> Iterator[Tensor]:
        for index, rgb in media.iter_frames():
            current["frame"] = (index, rgb)
            # uint8 to the device first: SAM 2's resize and normalisation run there
            frames = sam2_transform(torch.from_numpy(rgb)[None].to(parameter.device), mask_decoder.image_size)
            yield frames[0].to(parameter.dtype)

    features = StreamedFrameFeatures(mask_decoder, sam_frames(), media.num_frames)
    for segmentation in mask_decoder.stream_segment(features, prompt_tokens, media.frame_size):
        index, rgb = current["frame"]
        yield TrackedFrame(index, rgb, segmentation)
