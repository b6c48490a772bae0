"""UniPixel's pointer head: the hidden state before each ``<|seg|>`` -> SAM 2 prompt tokens (MODEL.md §3, §4.5).

The attribute is named ``seg_head`` as in the reference, so state-dict keys match (``seg_head.0.weight`` = RMSNorm,
``seg_head.1.*`` and ``seg_head.3.*`` = the Linears).
"""

from __future__ import annotations

import torch
from lightning import LightningModule
from torch import Tensor, nn
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm


class PointerHead(LightningModule):
    """RMSNorm -> Linear(D, D) -> GELU -> Linear(D, prompt_tokens·S), applied to pre-final-norm LLM states.

    Args:
        llm_hidden: ``D``, the LLM width.
        sam_hidden: ``S``, SAM 2's prompt width.
        prompt_tokens: SAM 2 prompt tokens produced per ``<|seg|>``.
    """

    def __init__(self, llm_hidden: int, sam_hidden: int, prompt_tokens: int = 2) -> None:
        super().__init__()
        self.prompt_tokens = prompt_tokens
        self.sam_hidden = sam_hidden
        self.seg_head = nn.Sequential(
            Qwen2RMSNorm(llm_hidden, eps=1e-6),
            nn.Linear(llm_hidden, llm_hidden),
            nn.GELU(),
            nn.Linear(llm_hidden, prompt_tokens * sam_hidden),
        )
        for layer in self.seg_head:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        """Map hidden states ``(..., D)`` to prompt tokens ``(..., prompt_tokens, S)``."""
        return self.seg_head(hidden).unflatten(-1, (self.prompt_tokens, self.sam_hidden))

    @staticmethod
    def select_seg_states(hidden_states: Tensor, input_ids: Tensor, seg_token_id: int) -> tuple[Tensor, Tensor, Tensor]:
        """The hidden state that predicts each ``<|seg|>``: position ``i`` for a ``<|seg|>`` at ``i + 1``.

        Args:
            hidden_states: ``(B, L, D)`` pre-final-norm LLM states.
            input_ids: ``(B, L)`` token ids.
            seg_token_id: id of ``<|seg|>``.

        Returns:
            ``states (N, D)``, ``batch_index (N,)``, ``position (N,)`` (of the state, i.e. the ``<|seg|>`` is at
            ``position + 1``), in row-major order of the ``<|seg|>`` tokens.

        Raises:
            ValueError: ``hidden_states`` and ``input_ids`` disagree on ``(B, L)``.
        """
        if hidden_states.dim() != 3 or hidden_states.shape[:2] != input_ids.shape:
            raise ValueError(
                f"hidden_states {tuple(hidden_states.shape)} must be (B, L, D) for input_ids {tuple(input_ids.shape)}"
            )
        batch_index, position = torch.nonzero(input_ids[:, 1:] == seg_token_id, as_tuple=True)
        return hidden_states[batch_index, position], batch_index, position
