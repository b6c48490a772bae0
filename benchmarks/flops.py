"""FLOPs of a UniPixel step: analytic for the LLM and the vision tower, counted for SAM 2.

Conventions (shared with ``torch.utils.flop_counter``, so the two can be compared exactly):
- a matrix product ``(t, k) @ (k, n)`` is ``2 t k n``; only matrix products, convolutions and attention count
  (norms, activations, rotary and element-wise work are left out, as in the usual MFU definitions);
- training adds an input-gradient product where the input needs a gradient and a weight-gradient product where
  the weight trains: ``6 N`` per token for a fully trained linear, ``4 N`` for a frozen one inside the graph;
- attention counts the full ``L x L`` score matrix (``4 L^2 d`` forward per layer, twice that backward), also
  under a causal mask, for every fused SDPA kernel (:data:`SDPA_FLOPS`); a fused backward's recompute of the
  scores is work the hardware does but not model FLOPs, so it is left out, as checkpointing's recompute is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from unipixel_pl.config import BackboneConfig, VisionConfig


@dataclass(frozen=True)
class Training:
    """What a step differentiates.

    Attributes:
        enabled: False for inference (forward only).
        base_weights: the LLM and ViT weights (and the ViT patch embedding) receive gradients.
        embeddings: the token embedding / LM head trains (always in stage 3).
        lora_rank: LoRA rank on LLM q/k/v/o and ViT qkv/proj; 0 for none.
    """

    enabled: bool = True
    base_weights: bool = True
    embeddings: bool = True
    lora_rank: int = 0


INFERENCE = Training(enabled=False, base_weights=False, embeddings=False)


def linear_flops(tokens: int, fan_in: int, fan_out: int, weight_grad: bool = False, input_grad: bool = False) -> int:
    """FLOPs of ``tokens`` rows through a ``fan_in -> fan_out`` linear map, plus the requested gradients."""
    return 2 * tokens * fan_in * fan_out * (1 + int(weight_grad) + int(input_grad))


def _adapted_linear(tokens: int, fan_in: int, fan_out: int, training: Training, input_grad: bool) -> int:
    """A linear map that may carry a LoRA adapter (``B @ A``, both trained)."""
    train = training.enabled
    flops = linear_flops(tokens, fan_in, fan_out, train and training.base_weights, train and input_grad)
    if training.lora_rank and train:
        rank = training.lora_rank
        flops += linear_flops(tokens, fan_in, rank, weight_grad=True, input_grad=input_grad)
        flops += linear_flops(tokens, rank, fan_out, weight_grad=True, input_grad=True)
    return flops


def attention_flops(lengths: Sequence[int], width: int, train: bool) -> int:
    """Scores and weighted sum of self-attention over independent sequences of ``lengths``, one layer."""
    forward = sum(4 * length * length * width for length in lengths)
    return forward * (3 if train else 1)


def llm_flops(config: BackboneConfig, sequence_lengths: Sequence[int], training: Training) -> int:
    """Decoder FLOPs of a batch of sequences (padded lengths: padding is computed too), LM head included.

    With trainable embeddings every decoder input needs a gradient, so every layer pays its input gradients.
    """
    tokens = sum(sequence_lengths)
    hidden, inter = config.hidden_size, config.intermediate_size
    kv_width = config.num_key_value_heads * hidden // config.num_attention_heads
    train, input_grad = training.enabled, training.enabled
    attention_projections = ((hidden, hidden), (hidden, kv_width), (hidden, kv_width), (hidden, hidden))
    layer = sum(_adapted_linear(tokens, i, o, training, input_grad) for i, o in attention_projections)
    layer += 2 * linear_flops(tokens, hidden, inter, train and training.base_weights, input_grad)
    layer += linear_flops(tokens, inter, hidden, train and training.base_weights, input_grad)
    layer += attention_flops(sequence_lengths, hidden, train)
    head = linear_flops(tokens, hidden, config.vocab_size, train and training.embeddings, input_grad)
    return config.num_hidden_layers * layer + head


def vision_window_lengths(grid_thw: Sequence[int], vision: VisionConfig) -> list[int]:
    """Patch counts of the attention windows of one video: per temporal slice, windows of merged tokens."""
    g_t, g_h, g_w = grid_thw
    merge = vision.spatial_merge_size
    side = vision.window_size // vision.patch_size // merge
    rows, cols = g_h // merge, g_w // merge
    heights = [min(side, rows - start) for start in range(0, rows, side)]
    widths = [min(side, cols - start) for start in range(0, cols, side)]
    return [h * w * merge * merge for _ in range(g_t) for h in heights for w in widths]


def vision_flops(vision: VisionConfig, out_hidden: int, grids: Sequence[Sequence[int]], training: Training) -> int:
    """ViT FLOPs (patch embedding, blocks, merger) of a batch of videos with patch grids ``(g_t, g_h, g_w)``.

    The pixels need no gradient, so the patch embedding pays only a weight gradient, and the first block's qkv
    an input gradient only when the patch embedding trains.
    """
    patches = sum(math.prod(grid) for grid in grids)
    width, inter, train = vision.hidden_size, vision.intermediate_size, training.enabled
    base = train and training.base_weights
    patch_in = 3 * vision.temporal_patch_size * vision.patch_size**2
    flops = linear_flops(patches, patch_in, width, weight_grad=base)
    full = [math.prod(grid[1:]) for grid in grids for _ in range(grid[0])]
    windows = [length for grid in grids for length in vision_window_lengths(grid, vision)]
    for index in range(vision.depth):
        flops += _adapted_linear(patches, width, 3 * width, training, input_grad=index > 0 or base)
        flops += _adapted_linear(patches, width, width, training, input_grad=True)
        flops += 2 * linear_flops(patches, width, inter, base, train) + linear_flops(patches, inter, width, base, train)
        flops += attention_flops(full if index in vision.fullatt_block_indexes else windows, width, train)
    merged, merged_width = patches // vision.spatial_merge_size**2, width * vision.spatial_merge_size**2
    flops += linear_flops(merged, merged_width, merged_width, base, train)
    return flops + linear_flops(merged, merged_width, out_hidden, base, train)


def grids_of(video_grid_thw: Tensor | None) -> list[list[int]]:
    """``(num_videos, 3)`` grid tensor -> list of ``[g_t, g_h, g_w]``."""
    return [] if video_grid_thw is None else [[int(v) for v in row] for row in video_grid_thw]


def _sdpa_forward_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    """Scores and weighted sum; every query head counts (grouped-query attention included)."""
    batch, heads, queries, depth = query_shape
    return 2 * batch * heads * queries * key_shape[2] * (depth + value_shape[3])


def _sdpa_backward_flops(grad_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    """Gradients of queries, keys, values and scores: twice the forward (a fused kernel's recompute excluded)."""
    return 2 * _sdpa_forward_flops(query_shape, key_shape, value_shape)


_ATEN = torch.ops.aten
SDPA_FLOPS = {
    _ATEN._scaled_dot_product_efficient_attention: _sdpa_forward_flops,
    _ATEN._scaled_dot_product_flash_attention: _sdpa_forward_flops,
    _ATEN._scaled_dot_product_cudnn_attention: _sdpa_forward_flops,
    _ATEN._scaled_dot_product_flash_attention_for_cpu: _sdpa_forward_flops,
    _ATEN._scaled_dot_product_efficient_attention_backward: _sdpa_backward_flops,
    _ATEN._scaled_dot_product_flash_attention_backward: _sdpa_backward_flops,
    _ATEN._scaled_dot_product_cudnn_attention_backward: _sdpa_backward_flops,
    _ATEN._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward_flops,
}
"""Our SDPA formulas for every fused kernel: torch's own reject grouped-query shapes (torch 2.11), know no CPU
kernel, and charge the backward's recompute of the scores, which model FLOPs leave out."""


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (matrix products, convolutions, attention) that ``fn`` dispatches, forward and backward."""
    with FlopCounterMode(display=False, custom_mapping=SDPA_FLOPS) as counter:
        fn()
    return counter.get_total_flops()
