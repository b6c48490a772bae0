"""SAM 2 mask loss (``MultiStepMultiMasksAndIous`` with one prediction step), MODEL.md §6.2.

Per frame and object, on the high-resolution multimask logits ``z_m`` (``m = 1..M``), predicted IoUs ``q_m``,
object-score logit ``s`` and target ``y``, every term divided by the object normaliser ``N``:

- focal_m: pixel mean of ``alpha_t (1 - p_t)^gamma BCE(z_m, y)``;
- dice_m: ``1 - (2 sum(sigmoid(z_m) y) + 1) / (sum(sigmoid(z_m)) + sum(y) + 1)``;
- iou_m: ``|q_m - IoU(z_m > 0, y)|`` (union clamped to >= 1);
- object score: ``BCE(s, 1[y non-empty])``.

The mask ``m*`` with the smallest weighted focal + dice is supervised; the IoU term averages over all masks;
mask, dice and IoU terms count only when the target is non-empty. Terms are summed over frames and objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from unipixel_pl.config import LossConfig


@dataclass
class MaskLossTerms:
    """Unweighted loss terms summed over frames and objects (each already divided by ``N``), and their total.

    Attributes:
        focal: focal loss of the supervised mask.
        dice: dice loss of the supervised mask.
        iou: L1 error of the predicted IoUs, mean over the M masks.
        object_score: BCE of the object-score logits.
        total: the weighted sum (``core_loss`` of the reference).
    """

    focal: Tensor
    dice: Tensor
    iou: Tensor
    object_score: Tensor
    total: Tensor

    @classmethod
    def mean(cls, samples: Sequence[MaskLossTerms]) -> MaskLossTerms:
        """Every term and the total averaged over ``samples`` (the total stays the weighted sum of the terms)."""
        return cls(*(torch.stack([getattr(sample, f.name) for sample in samples]).mean() for f in fields(cls)))

    def __truediv__(self, divisor: float) -> MaskLossTerms:
        """Every term and the total divided by ``divisor`` (e.g. the frame count ``T``)."""
        return MaskLossTerms(*(getattr(self, f.name) / divisor for f in fields(self)))

    def detached(self) -> dict[str, Tensor]:
        """The unweighted terms as detached scalars, keyed ``focal``, ``dice``, ``iou``, ``object_score``."""
        return {f.name: getattr(self, f.name).detach() for f in fields(self) if f.name != "total"}


def object_normaliser(num_objects: int, device: torch.device, all_reduce: bool = False) -> float:
    """The loss normaliser ``N``: the object count, or its mean over ranks (reference, MODEL.md §11 #12).

    With ``all_reduce=True`` and ``torch.distributed`` initialised this is a collective: every rank must call it.
    """
    count = torch.tensor(float(num_objects), device=device)
    if all_reduce and dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    return count.clamp(min=1).item()


def _focal(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(-2).mean(-1)


def _dice(logits: Tensor, targets: Tensor) -> Tensor:
    prob = logits.sigmoid().flatten(-2)
    targets = targets.flatten(-2)
    return 1 - (2 * (prob * targets).sum(-1) + 1) / (prob.sum(-1) + targets.sum(-1) + 1)


def _iou_error(logits: Tensor, targets: Tensor, predicted_ious: Tensor) -> Tensor:
    pred = logits.flatten(-2) > 0
    gt = targets.flatten(-2) > 0
    intersection = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    return (predicted_ious - intersection / union.clamp(min=1)).abs()


def sam2_mask_loss(
    multimask_logits: Tensor,
    ious: Tensor,
    object_score_logits: Tensor,
    target_masks: Tensor,
    config: LossConfig,
    normaliser: float,
) -> MaskLossTerms:
    """SAM 2 loss summed over frames and objects, computed in fp32.

    Args:
        multimask_logits: ``(T, O, M, S, S)`` high-resolution mask logits.
        ious: ``(T, O, M)`` predicted IoUs.
        object_score_logits: ``(T, O, 1)`` object-score logits.
        target_masks: ``(T, O, S, S)`` bool targets.
        config: term weights and focal ``alpha``/``gamma``.
        normaliser: ``N`` (:func:`object_normaliser`).

    Returns:
        The summed terms; divide ``total`` by ``T`` for the per-sample loss.
    """
    if multimask_logits.shape[:2] != target_masks.shape[:2] or multimask_logits.shape[-2:] != target_masks.shape[-2:]:
        raise ValueError(
            f"target masks {tuple(target_masks.shape)} do not match logits {tuple(multimask_logits.shape)}; "
            "resize targets to the SAM 2 input size with resize_target_masks"
        )
    logits = multimask_logits.float()
    targets = target_masks.float().unsqueeze(2).expand_as(logits)
    focal = _focal(logits, targets, config.focal_alpha, config.focal_gamma) / normaliser
    dice = _dice(logits, targets) / normaliser
    iou = _iou_error(logits, targets, ious.float()) / normaliser
    present = target_masks.flatten(2).any(-1).float()
    object_score = F.binary_cross_entropy_with_logits(
        object_score_logits.float().squeeze(-1), present, reduction="none"
    )
    best = (config.focal * focal + config.dice * dice).argmin(-1, keepdim=True)
    terms = [
        (focal.gather(-1, best).squeeze(-1) * present).sum(),
        (dice.gather(-1, best).squeeze(-1) * present).sum(),
        (iou.mean(-1) * present).sum(),
        object_score.sum() / normaliser,
    ]
    weights = (config.focal, config.dice, config.iou, config.object_score)
    total = sum(weight * term for weight, term in zip(weights, terms, strict=True))
    return MaskLossTerms(*terms, total=total)  # type: ignore[arg-type]
