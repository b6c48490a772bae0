"""FSDP2 for UniPixel: the sharding plan applied in ``LitUniPixel.configure_model`` and the Trainer strategy.

Plan (``reference/MODEL.md`` §6.4): one FSDP unit per LLM decoder layer and per ViT block (the big, repeated
pieces), one for the rest of the vision tower (patch embedding + merger), one for the token embedding together
with the LM head (the 3B ties them: tied parameters must live in one unit), and the root unit ``LitUniPixel``
holding everything small: the final norm, the prompt encoder, the pointer head and SAM 2 (~80 M parameters).

UniPixel calls several parts through methods other than ``forward`` (``prompt_encoder.encode_prompts``,
``mask_decoder.segment`` ...), and whether SAM 2 or the prompt encoder runs at all depends on the batch. Keeping
them in the root unit, whose parameters are gathered when a Lightning step method starts (they are registered as
FSDP forward methods), means no such call can miss a gather. Which sharded units a step runs still depends on
the data, so every rank must see the same task type at each step (DATA.md §10.3), as the reference requires.

Mixed precision: ``bf16-mixed`` and ``bf16-true`` gather the sharded units in bf16 and reduce gradients in fp32;
the root unit keeps fp32 weights (Lightning's autocast still runs its matmuls in bf16), so SAM 2, the heads and
the losses see no bf16 weights. ``32-true`` keeps everything in fp32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

if TYPE_CHECKING:
    from unipixel_pl.models.lit_unipixel import LitUniPixel

ROOT_FORWARD_METHODS = ("training_step", "validation_step", "test_step", "predict_step")
"""Methods of ``LitUniPixel`` that gather the root unit's parameters, as ``forward`` does."""
_BF16_PRECISIONS = ("bf16-mixed", "bf16-true", "bf16")


def mixed_precision_policy(precision: str) -> MixedPrecisionPolicy:
    """The policy of the sharded units for a Trainer ``precision`` (``"32-true"``, ``"bf16-mixed"`` ...).

    Raises:
        ValueError: a precision FSDP2 is not set up for here (fp16 would need a gradient scaler).
    """
    precision = str(precision)
    if precision in _BF16_PRECISIONS:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if precision in ("32-true", "32"):
        return MixedPrecisionPolicy()
    raise ValueError(f"FSDP2 runs with precision '32-true', 'bf16-mixed' or 'bf16-true', not {precision!r}")


def sharded_units(model: LitUniPixel) -> list[nn.Module | list[nn.Module]]:
    """The non-root FSDP units of ``model``, innermost first (a list entry is one unit of several modules)."""
    hf = model.backbone.hf_model
    visual, language_model = hf.model.visual, hf.model.language_model
    embed, head = language_model.embed_tokens, hf.lm_head
    tied = head.weight is embed.weight
    units: list[nn.Module | list[nn.Module]] = [*visual.blocks, visual, *language_model.layers]
    units += [[embed, head]] if tied else [embed, head]
    return units


def shard_model(model: LitUniPixel, mesh: DeviceMesh, precision: str) -> None:
    """Apply the FSDP2 plan to ``model`` (built, LoRA injected, freezing applied) over the data-parallel ``mesh``.

    Args:
        model: the module the Trainer runs.
        mesh: 1-D data-parallel mesh (``self.device_mesh["data_parallel"]`` in ``configure_model``).
        precision: the Trainer precision string.
    """
    policy = mixed_precision_policy(precision)
    for unit in sharded_units(model):
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=MixedPrecisionPolicy(reduce_dtype=policy.reduce_dtype))
    for method in ROOT_FORWARD_METHODS:
        register_fsdp_forward_method(model, method)


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ``ModelParallelStrategy`` as pure FSDP2: every process is one data-parallel replica.

    ``ModelParallelStrategy``'s ``"auto"`` sizes mean one data-parallel group per node and tensor parallelism
    inside it; UniPixel uses no tensor parallelism, so here ``"auto"`` is ``data_parallel_size = world size`` and
    ``tensor_parallel_size = 1``. Other arguments are those of ``ModelParallelStrategy``
    (``save_distributed_checkpoint``: one shard file per rank, or one consolidated file written by rank 0).
    """

    def setup_environment(self) -> None:
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        if self._tensor_parallel_size == "auto":
            self._tensor_parallel_size = 1
        super().setup_environment()
