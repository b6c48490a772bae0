"""SAM 2 input transforms: frames and target masks squashed to the square SAM 2 input size.

The reference squashes every frame to ``S x S`` without keeping the aspect ratio and resizes target masks the same
way, then thresholds at 0 (a slight dilation), see MODEL.md §7.1 and §11 #8. Both use bilinear antialiased
resizing, which is what torchvision's tensor ``Resize(antialias=True)`` computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resize_square(images: Tensor, size: int) -> Tensor:
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def sam2_transform(frames: Tensor, image_size: int) -> Tensor:
    """Turn RGB frames into normalised SAM 2 inputs.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB frames.
        image_size: SAM 2 input side ``S``.

    Returns:
        ``(T, 3, S, S)`` float32 frames: ``/255``, bilinear antialiased resize to ``S x S``, ImageNet mean/std.
    """
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(
            f"frames must be uint8 (T, H, W, 3) RGB, got {frames.dtype} {tuple(frames.shape)}; "
            "convert images with torch.from_numpy(np.asarray(image.convert('RGB')))"
        )
    images = frames.permute(0, 3, 1, 2).float() / 255
    images = _resize_square(images, image_size)
    mean = images.new_tensor(IMAGENET_MEAN)[None, :, None, None]
    std = images.new_tensor(IMAGENET_STD)[None, :, None, None]
    return (images - mean) / std


def resize_target_masks(masks: Tensor, image_size: int) -> Tensor:
    """Resize target masks to the SAM 2 input size as the reference does.

    Args:
        masks: ``(T, O, H, W)`` bool (or 0/1) masks at the original frame size.
        image_size: SAM 2 input side ``S``.

    Returns:
        ``(T, O, S, S)`` bool: bilinear antialiased resize of the float masks, then ``> 0``.
    """
    if masks.dim() != 4:
        raise ValueError(f"target masks must be (T, O, H, W), got {tuple(masks.shape)}")
    return _resize_square(masks.float(), image_size) > 0
