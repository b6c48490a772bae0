"""Log the total gradient norm (and per part) before each optimizer step."""

from __future__ import annotations

import lightning as L
import torch
from torch.optim import Optimizer

PARTS = ("backbone", "prompt_encoder", "pointer_head", "mask_decoder")


class GradNormMonitor(L.Callback):
    """Logs ``grad_norm/total`` and ``grad_norm/<part>`` (2-norm over the part's gradients) every step it runs.

    Norms are taken before clipping, so they show what clipping acts on.

    Args:
        every_n_steps: log every this many optimizer steps.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every_n_steps = every_n_steps

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        squares: dict[str, torch.Tensor] = {}
        for name, param in pl_module.named_parameters():
            if param.grad is None:
                continue
            part = name.split(".", 1)[0]
            squares[part] = squares.get(part, 0.0) + param.grad.detach().float().pow(2).sum()
        if not squares:
            return
        norms = {f"grad_norm/{part}": value.sqrt() for part, value in squares.items() if part in PARTS}
        norms["grad_norm/total"] = torch.stack(list(squares.values())).sum().sqrt()
        pl_module.log_dict(norms, on_step=True, on_epoch=False)
