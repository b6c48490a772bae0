"""Freezing, the train mode of frozen modules, and optimizer parameter groups by parameter-name substring
(``reference/MODEL.md`` §8.2, §8.4, §11 #11)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from unipixel_pl.config import OptimizerConfig


def apply_trainable(module: nn.Module, trainable: list[str] | None) -> None:
    """Freeze every parameter whose name contains none of ``trainable`` (None: leave all trainable).

    Raises:
        ValueError: a substring matches no parameter (a typo would otherwise freeze everything silently).
    """
    if trainable is None:
        return
    # Every name of a tied parameter counts (the 3B's `lm_head.weight` is `embed_tokens.weight`).
    named = list(module.named_parameters(remove_duplicate=False))
    unmatched = [key for key in trainable if not any(key in name for name, _ in named)]
    if unmatched:
        raise ValueError(f"optimizer.trainable entries match no parameter: {unmatched}")
    wanted: dict[nn.Parameter, bool] = {}
    for name, param in named:
        wanted[param] = wanted.get(param, False) or any(key in name for key in trainable)
    for param, flag in wanted.items():
        param.requires_grad_(flag)


def frozen_submodules(module: nn.Module) -> list[nn.Module]:
    """The largest submodules of ``module`` (itself included) that have parameters and train none of them.

    A module without parameters (a dropout, an activation) is not frozen by itself: it follows its parent.
    """
    params = list(module.parameters())
    if params and not any(param.requires_grad for param in params):
        return [module]
    return [frozen for child in module.children() for frozen in frozen_submodules(child)]


def eval_frozen_modules(module: nn.Module) -> None:
    """Put every fully frozen submodule in eval mode: no dropout or drop-path where nothing trains.

    A transformers ``GradientCheckpointingLayer`` (decoder layer, ViT block) checkpoints its activations only in
    train mode and computes nothing else that depends on the mode, so one with checkpointing enabled keeps its own
    train flag while everything inside it goes to eval: gradients that run through a frozen LLM to trainable
    inputs (stage 1's ``<|ref|>`` projections) stay checkpointed.
    """
    for frozen in frozen_submodules(module):
        frozen.eval()
        for child in frozen.modules():
            if isinstance(child, GradientCheckpointingLayer) and child.gradient_checkpointing:
                child.training = True


def parameter_groups(module: nn.Module, config: OptimizerConfig) -> list[dict]:
    """AdamW groups: one per ``module_lrs`` key (first matching substring wins) plus the default group.

    Raises:
        ValueError: nothing trains, or a ``module_lrs`` key matches no trainable parameter.
    """
    groups: dict[str, list[nn.Parameter]] = {key: [] for key in config.module_lrs}
    default: list[nn.Parameter] = []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        key = next((k for k in config.module_lrs if k in name), None)
        (groups[key] if key is not None else default).append(param)
    empty = [key for key, params in groups.items() if not params]
    if empty:
        raise ValueError(f"optimizer.module_lrs keys match no trainable parameter: {empty}")
    result = [{"params": params, "lr": config.module_lrs[key], "name": key} for key, params in groups.items()]
    if default:
        result.append({"params": default, "lr": config.lr, "name": "default"})
    if not result:
        raise ValueError("no trainable parameters: check optimizer.trainable")
    return result


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int | Callable[[], int], warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 over ``ceil(warmup_ratio * total_steps)`` steps, then cosine decay to 0.

    ``total_steps`` may be a callable, asked once, at the first step after 0: a Trainer must not measure its
    dataloader before it has restored a checkpoint (Lightning would then build the loader early and never give it
    the saved data position).
    """
    total = functools.cache(total_steps if callable(total_steps) else lambda: total_steps)

    def factor(step: int) -> float:
        if step == 0:  # any run with warmup starts at 0
            return 0.0 if warmup_ratio > 0 else 1.0
        warmup = math.ceil(warmup_ratio * total())
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total() - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
