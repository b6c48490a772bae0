"""Start a training stage from existing weights: ``LitUniPixel(init_weights=...)`` (``reference/MODEL.md`` §8.1).

A stage starts from the output of the previous one (stage 1 from the Qwen2.5-VL + SAM 2.1 conversion). Every
tensor is loaded, the two random-Fourier buffers included, so no stage re-draws them (§8.6). The backbone is
built on the meta device and receives the loaded tensors directly: no random initialisation of 3-7B parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from unipixel_pl.models.lora import LORA_MARKER

if TYPE_CHECKING:
    from unipixel_pl.models.lit_unipixel import LitUniPixel

PARTS = ("prompt_encoder", "pointer_head", "mask_decoder")
"""The parts besides the backbone, each loaded strictly."""


def read_initial_state(path: str | Path) -> dict[str, Tensor]:
    """The state dict (our key names, a tied ``lm_head`` left out) stored at ``path``.

    Args:
        path: one of our checkpoint directories, a Lightning ``.ckpt`` file or a sharded checkpoint directory.

    Raises:
        FileNotFoundError: ``path`` is none of these.
        ValueError: the weights hold LoRA adapters (merge them first: export the stage).
    """
    # Imported here: the checkpoint readers import LitUniPixel themselves.
    from unipixel_pl.checkpoints.lightning_ckpt import is_lightning_checkpoint, read_lightning_checkpoint
    from unipixel_pl.checkpoints.ours import is_ours
    from unipixel_pl.checkpoints.safetensors_io import read_weights

    if is_ours(path):
        state = read_weights(Path(path))
    elif is_lightning_checkpoint(path):
        state = read_lightning_checkpoint(path)[1]
    else:
        raise FileNotFoundError(
            f"init_weights {str(path)!r} is neither a unipixel-pl checkpoint directory nor a Lightning checkpoint"
        )
    if any(LORA_MARKER in key for key in state):
        raise ValueError(f"init_weights {str(path)!r} holds LoRA adapters; export it with the adapters merged first")
    return state


def load_initial_weights(model: LitUniPixel, path: str | Path) -> None:
    """Build ``model``'s backbone from the weights at ``path`` and load its other parts strictly, in fp32.

    Raises:
        RuntimeError: a key is missing or unexpected, or a shape differs (named by ``load_state_dict``).
    """
    from unipixel_pl.checkpoints.materialize import attach_backbone
    from unipixel_pl.checkpoints.safetensors_io import cast_floating

    parts: dict[str, dict[str, Tensor]] = {}
    for key, value in cast_floating(read_initial_state(path), torch.float32).items():
        part, _, local = key.partition(".")
        parts.setdefault(part, {})[local] = value
    unknown = sorted(set(parts) - {"backbone", *PARTS})
    if unknown:
        raise RuntimeError(f"init_weights {str(path)!r} holds unknown top-level modules {unknown}")
    attach_backbone(model, parts.get("backbone", {}))
    for name in PARTS:
        model.get_submodule(name).load_state_dict(parts.get(name, {}), strict=True)
