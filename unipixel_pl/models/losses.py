"""The LM loss and the per-sample mask supervision of ``<|seg|>`` tokens (``reference/MODEL.md`` §6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from unipixel_pl.config import IGNORE_INDEX


def lm_loss(logits: Tensor, labels: Tensor, reduction: str = "token") -> Tensor | None:
    """Shifted next-token cross-entropy.

    Args:
        logits: ``(B, L, V)``.
        labels: ``(B, L)`` with ``IGNORE_INDEX`` where nothing is supervised.
        reduction: ``token`` (mean over all supervised tokens) or ``sample`` (mean over samples of each sample's
            token mean, the reference's effective objective).

    Returns:
        A scalar, or None when no token is supervised.
    """
    targets = labels[:, 1:]
    per_token = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    ).view_as(targets)
    valid = targets != IGNORE_INDEX
    if not valid.any():
        return None
    if reduction == "token":
        return per_token.sum() / valid.sum()
    if reduction == "sample":
        counts = valid.sum(dim=1)
        has_tokens = counts > 0
        return (per_token.sum(dim=1)[has_tokens] / counts[has_tokens]).mean()
    raise ValueError(f"unknown LM loss reduction {reduction!r}; choose 'token' or 'sample'")


def check_mask_targets(sample: int, frames: Tensor, targets: Tensor, num_seg_tokens: int) -> None:
    """Raise a ``ValueError`` naming the sample when its frames, masks and ``<|seg|>`` count disagree.

    Args:
        frames: ``(T, 3, S, S)`` SAM 2 inputs.
        targets: ``(T, O, S, S)`` bool masks.
    """
    if targets.dim() != 4 or frames.dim() != 4:
        raise ValueError(
            f"sample {sample}: target masks must be (T, O, S, S) and frames (T, 3, S, S), "
            f"got {tuple(targets.shape)} and {tuple(frames.shape)}"
        )
    if targets.shape[0] != frames.shape[0] or targets.shape[-2:] != frames.shape[-2:]:
        raise ValueError(
            f"sample {sample}: target masks {tuple(targets.shape)} do not match frames {tuple(frames.shape)} "
            "(need the same frame count T and size S)"
        )
    if targets.shape[1] != num_seg_tokens:
        raise ValueError(
            f"sample {sample}: {num_seg_tokens} <|seg|> token(s) but {targets.shape[1]} target mask object(s)"
        )


def sample_objects(num_objects: int, limit: int, generator: torch.Generator) -> Tensor:
    """Indices of at most ``limit`` objects (all when ``limit <= 0``), drawn without replacement, kept sorted."""
    if limit <= 0 or num_objects <= limit:
        return torch.arange(num_objects)
    return torch.randperm(num_objects, generator=generator)[:limit].sort().values
