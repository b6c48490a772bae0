"""Host media -> model inputs, on the device the batch lives on: the device half of the input pipelines.

The data pipeline ships uint8 frames and original-size masks (``UniPixelBatch.videos`` / ``frames`` /
``frame_masks``): decoding, frame sampling and the Qwen smart resize (PIL, uint8, only when the size changes) stay
on the host, while the float work runs here, after the batch transfer:

- Qwen2.5-VL: CLIP normalisation and patchify into ``pixel_values_videos`` (``vision_patchify.pixel_values``,
  bit-identical to the reference's float64 host normalisation);
- SAM 2: ``/255``, antialiased bilinear squash to ``S x S`` and ImageNet normalisation into ``sam_frames``, and
  target masks squashed and thresholded into ``target_masks`` (``sam2_transforms``, the same functions the host
  ran before, so the CPU numbers are unchanged).

``LitUniPixel`` runs :func:`prepare_batch` in ``on_after_batch_transfer`` (training, evaluation, prediction and
the callbacks all see prepared batches) and again, as a no-op check, where a forward starts (``run_backbone``),
so batches handed to the model directly (inference, benchmarks, tests) go through the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import torch
from torch import Tensor

from unipixel_pl.config import VisionConfig
from unipixel_pl.models.sam2_transforms import resize_target_masks, sam2_transform
from unipixel_pl.types import UniPixelBatch
from unipixel_pl.vision_patchify import pixel_values

BatchT = TypeVar("BatchT", bound=UniPixelBatch)


def prepare_batch(batch: BatchT, vision: VisionConfig, sam_image_size: int) -> BatchT:
    """Fill the model inputs of ``batch`` from its host media, in place, and empty the host fields.

    A batch without host media is returned untouched, so calling this twice is free. A sample whose host entry is
    None keeps the model input it was given (e.g. SAM 2 frames of every media frame set by the caller).

    Args:
        batch: a collated batch on any device.
        vision: patch, temporal patch and merge sizes of the ViT.
        sam_image_size: SAM 2 input side ``S``.

    Returns:
        ``batch`` itself, with ``pixel_values_videos`` ``(sum g_t*g_h*g_w, 3*2*14*14)`` float32, ``sam_frames``
        per sample ``(T, 3, S, S)`` float32 and ``target_masks`` per sample ``(T, O, S, S)`` bool.

    Raises:
        ValueError: a sample's field is given both as host media and as a model input.
    """
    if batch.videos:
        if batch.pixel_values_videos is not None:
            raise _given_twice("videos", "pixel_values_videos")
        batch.pixel_values_videos = torch.cat([pixel_values(video, vision) for video in batch.videos])
        batch.videos = []
    if batch.frames:
        transform = partial(sam2_transform, image_size=sam_image_size)
        batch.sam_frames = _per_sample(batch.frames, batch.sam_frames, transform, ("frames", "sam_frames"))
        batch.frames = []
    if batch.frame_masks:
        resize = partial(resize_target_masks, image_size=sam_image_size)
        batch.target_masks = _per_sample(batch.frame_masks, batch.target_masks, resize, ("frame_masks", "target_masks"))
        batch.frame_masks = []
    return batch


def _per_sample(
    host: list[Tensor | None], given: list[Tensor | None], function: Callable[[Tensor], Tensor], names: tuple[str, str]
) -> list[Tensor | None]:
    """Per sample ``function(host[b])``, or the model input already given for a sample without host media."""
    given = given + [None] * (len(host) - len(given))
    for b, (host_value, given_value) in enumerate(zip(host, given, strict=True)):
        if host_value is not None and given_value is not None:
            raise _given_twice(f"{names[0]}[{b}]", f"{names[1]}[{b}]")
    return [g if h is None else function(h) for h, g in zip(host, given, strict=True)]


def _given_twice(host: str, model_input: str) -> ValueError:
    return ValueError(f"the batch carries both `{host}` (host media) and `{model_input}` (model input); give one")
