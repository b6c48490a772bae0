"""Pointer head: ``<|seg|>`` state selection, the seg_head maths, sizes, key names and initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unipixel_pl.models.pointer_head import PointerHead

LLM, SAM, SEG = 16, 6, 99


def _head() -> PointerHead:
    torch.manual_seed(0)
    head = PointerHead(llm_hidden=LLM, sam_hidden=SAM)
    with torch.no_grad():
        head.seg_head[0].weight.uniform_(0.5, 1.5)
        head.seg_head[1].bias.normal_()
        head.seg_head[3].bias.normal_()
    return head


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def test_forward_matches_rmsnorm_linear_gelu_linear() -> None:
    head = _head()
    hidden = torch.randn(5, LLM, generator=torch.Generator().manual_seed(1))
    tokens = head(hidden)
    assert tokens.shape == (5, 2, SAM)
    x = _np(hidden)
    x = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6) * _np(head.seg_head[0].weight)
    x = x @ _np(head.seg_head[1].weight).T + _np(head.seg_head[1].bias)
    x = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    x = x @ _np(head.seg_head[3].weight).T + _np(head.seg_head[3].bias)
    np.testing.assert_allclose(_np(tokens), x.reshape(5, 2, SAM), atol=1e-5)
    assert head(hidden.reshape(1, 5, LLM)).shape == (1, 5, 2, SAM)
    assert head.seg_head[0].variance_epsilon == 1e-6


def test_select_seg_states_takes_the_state_before_each_seg() -> None:
    input_ids = torch.tensor([[SEG, 1, SEG, 2, SEG], [3, 4, 5, 6, 7], [8, SEG, SEG, 9, 10]])
    hidden = torch.randn(3, 5, LLM)
    states, batch_index, position = PointerHead.select_seg_states(hidden, input_ids, SEG)
    # A <|seg|> at position 0 has no predecessor and yields no prompt.
    assert batch_index.tolist() == [0, 0, 2, 2]
    assert position.tolist() == [1, 3, 0, 1]
    torch.testing.assert_close(states, torch.stack([hidden[0, 1], hidden[0, 3], hidden[2, 0], hidden[2, 1]]))
    none, _, _ = PointerHead.select_seg_states(hidden, torch.zeros(3, 5, dtype=torch.long), SEG)
    assert none.shape == (0, LLM)


def test_select_seg_states_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"hidden_states \(2, 4, 16\) must be \(B, L, D\) for input_ids \(2, 5\)"):
        PointerHead.select_seg_states(torch.zeros(2, 4, LLM), torch.zeros(2, 5, dtype=torch.long), SEG)


def test_gradients_flow_from_tokens_to_states_and_head() -> None:
    head = _head()
    hidden = torch.randn(1, 4, LLM, requires_grad=True)
    states, _, _ = head.select_seg_states(hidden, torch.tensor([[1, SEG, 2, SEG]]), SEG)
    head(states).sum().backward()
    assert hidden.grad[0, [0, 2]].abs().sum() > 0
    assert (hidden.grad[0, [1, 3]] == 0).all()
    assert all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize(("llm", "count"), [(2048, 5_247_488), (3584, 14_687_744)])
def test_parameter_count_matches_the_reference(llm: int, count: int) -> None:
    with torch.device("meta"):
        head = PointerHead(llm_hidden=llm, sam_hidden=256, prompt_tokens=2)
    assert sum(p.numel() for p in head.parameters()) == count


def test_state_dict_keys_and_initialisation() -> None:
    torch.manual_seed(0)
    head = PointerHead(llm_hidden=64, sam_hidden=32)
    state = head.state_dict()
    assert list(state) == [
        "seg_head.0.weight",
        "seg_head.1.weight",
        "seg_head.1.bias",
        "seg_head.3.weight",
        "seg_head.3.bias",
    ]
    assert state["seg_head.3.weight"].shape == (64, 64)
    assert torch.equal(state["seg_head.0.weight"], torch.ones(64))
    for layer in (head.seg_head[1], head.seg_head[3]):
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert 0.9 * bound < layer.weight.abs().max() <= bound
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
