"""Render masks over frames: ground truth in green, prediction in red, overlap in yellow."""

from __future__ import annotations

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalize(frames: Tensor) -> Tensor:
    """``(T, 3, S, S)`` ImageNet-normalised SAM 2 inputs -> float RGB in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(1, 3, 1, 1)
    return (frames.float() * std + mean).clamp(0, 1)


def overlay_strip(frames: Tensor, predicted: Tensor, target: Tensor, alpha: float = 0.5) -> Tensor:
    """One image showing every frame side by side with all objects' masks blended in.

    Args:
        frames: ``(T, 3, S, S)`` float RGB in [0, 1].
        predicted: ``(O, T, S, S)`` bool.
        target: ``(O, T, S, S)`` bool.

    Returns:
        ``(3, S, T*S)`` float in [0, 1].
    """
    pred_any, target_any = predicted.any(dim=0), target.any(dim=0)  # (T, S, S)
    color = torch.stack([pred_any, target_any, torch.zeros_like(pred_any)], dim=1).float()  # red, green
    blended = torch.where((pred_any | target_any)[:, None], (1 - alpha) * frames + alpha * color, frames)
    return torch.cat(list(blended), dim=-1)
