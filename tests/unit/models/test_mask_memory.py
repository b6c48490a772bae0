"""``<|mem|>`` pooling in ``reference`` (window-ordered rows) and ``raster`` (corrected) modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unipixel_pl.models.mask_memory import count_mem_tokens, masked_slice_means, raster_order
from unipixel_pl.models.prompt_encoder import PromptEncoder

HEIGHT, WIDTH, SLICES, WINDOW, FEATURES = 6, 10, 2, 4, 5
"""A 2-slice sample with a 6x10 merged grid and Qwen2.5-VL's 4x4-token windows."""


def _window_index() -> torch.Tensor:
    """Raster index of every window-ordered row: windows left-to-right, top-to-bottom, raster inside each."""
    order = []
    for k in range(SLICES):
        for top in range(0, HEIGHT, WINDOW):
            for left in range(0, WIDTH, WINDOW):
                for row in range(top, min(top + WINDOW, HEIGHT)):
                    for col in range(left, min(left + WINDOW, WIDTH)):
                        order.append(k * HEIGHT * WIDTH + row * WIDTH + col)
    return torch.tensor(order)


def _refer_mask() -> torch.Tensor:
    """Object 0: a 2x3 patch on slice 0, a 3x2 patch on slice 1; object 1: only on slice 1 (slice 0 empty)."""
    mask = torch.zeros(SLICES, 2, HEIGHT, WIDTH, dtype=torch.bool)
    mask[0, 0, 1:3, 2:5] = True
    mask[1, 0, 3:6, 6:8] = True
    mask[1, 1, 0, 9] = True
    mask[1, 1, 5, 0] = True
    return mask


def _tokens() -> torch.Tensor:
    """Features of the merged tokens in raster order, ``(SLICES·HEIGHT·WIDTH, FEATURES)``."""
    return torch.randn(SLICES * HEIGHT * WIDTH, FEATURES, generator=torch.Generator().manual_seed(0))


def _hand_means(rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``rows[k·60 + r]`` over raster cells ``r`` set in ``mask[k, o]``, object-major."""
    means = []
    for obj in range(mask.shape[1]):
        for k in range(SLICES):
            cells = [k * HEIGHT * WIDTH + r for r in range(HEIGHT * WIDTH) if mask[k, obj].flatten()[r]]
            if cells:
                means.append(torch.stack([rows[c] for c in cells]).sum(0) / len(cells))
    return torch.stack(means)


def test_window_index_is_the_qwen_window_order() -> None:
    assert _window_index()[:18].tolist() == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33, 4, 5]


def test_reference_mode_pools_window_ordered_rows_with_the_raster_mask() -> None:
    tokens, index, mask = _tokens(), _window_index(), _refer_mask()
    pooled = masked_slice_means(tokens[index], mask)
    assert pooled.shape == (3, FEATURES)
    torch.testing.assert_close(pooled, _hand_means(tokens[index], mask))
    # Object 0, slice 0 masks raster cells 12-14 and 22-24; window-ordered rows 12-14 and 22-24 hold tokens
    # 30-32 (first window, 4th row) and 16, 17, 24 (second window): the reference averages those instead.
    torch.testing.assert_close(pooled[0], tokens[[30, 31, 32, 16, 17, 24]].mean(0))
    assert not torch.allclose(pooled, _hand_means(tokens, mask))


def test_raster_mode_pools_the_masked_tokens() -> None:
    tokens, index, mask = _tokens(), _window_index(), _refer_mask()
    restored = raster_order(tokens[index], index)
    assert torch.equal(restored, tokens)
    torch.testing.assert_close(masked_slice_means(restored, mask), _hand_means(tokens, mask))


def test_output_order_is_object_major_then_slice() -> None:
    tokens, mask = _tokens(), _refer_mask()
    pooled = masked_slice_means(tokens, mask)
    object0_slice1 = tokens[60:].reshape(HEIGHT, WIDTH, FEATURES)[3:6, 6:8].reshape(-1, FEATURES).mean(0)
    object1_slice1 = (tokens[60 + 9] + tokens[60 + 50]) / 2
    torch.testing.assert_close(pooled[1], object0_slice1)
    torch.testing.assert_close(pooled[2], object1_slice1)
    assert count_mem_tokens(mask) == 3
    assert count_mem_tokens(torch.zeros(2, 3, 2, 2, dtype=torch.bool)) == 0


def test_prompt_encoder_modes_project_the_pooled_means() -> None:
    tokens, index, mask = _tokens(), _window_index(), _refer_mask()
    torch.manual_seed(0)
    encoder = PromptEncoder(llm_hidden=7, sam_hidden=8, sam_image_size=64, merger_width=FEATURES, temporal_features=4)
    for mode, means in (("reference", _hand_means(tokens[index], mask)), ("raster", _hand_means(tokens, mask))):
        encoder.mem_pooling = mode
        torch.testing.assert_close(encoder.encode_memory(tokens[index], index, mask), encoder.msk_proj(means))
    assert encoder.count_mem_tokens(mask) == 3


def test_gradients_reach_only_the_pooled_rows() -> None:
    rows = _tokens().requires_grad_(True)
    mask = _refer_mask()
    masked_slice_means(rows, mask).sum().backward()
    pooled_rows = mask.permute(1, 0, 2, 3).reshape(2, -1).any(0)
    assert (rows.grad[pooled_rows].abs().sum(-1) > 0).all()
    assert (rows.grad[~pooled_rows] == 0).all()


def test_bf16_features_are_averaged_in_fp32() -> None:
    rows, mask = _tokens().bfloat16(), _refer_mask()
    pooled = masked_slice_means(rows, mask)
    assert pooled.dtype == torch.bfloat16
    torch.testing.assert_close(pooled, _hand_means(rows.double(), mask).bfloat16(), rtol=0, atol=0)


def test_errors_name_the_bad_inputs() -> None:
    tokens, index, mask = _tokens(), _window_index(), _refer_mask()
    with pytest.raises(ValueError, match=r"refer_mask grid \(2, 2, 6, 9\) covers 108 merged tokens .* \(120, 5\)"):
        masked_slice_means(tokens, mask[..., :9])
    with pytest.raises(ValueError, match=r"refer_mask must be a bool \(g_t, O, g_h/2, g_w/2\) tensor"):
        count_mem_tokens(mask.float())
    with pytest.raises(ValueError, match=r"permutation of 0\.\.119 \(local to the sample\)"):
        raster_order(tokens, index + 60)
    with pytest.raises(ValueError, match=r"window_index must have shape \(120,\)"):
        raster_order(tokens, index[:60])


def test_mem_embeddings_match_the_official_implementation(reference_tiny: Path) -> None:
    """The official ``<|mem|>`` embeddings (window-order pooling), and the corrected mode's known departure."""
    weights = load_file(reference_tiny / "checkpoint" / "model.safetensors")
    inputs = load_file(reference_tiny / "inputs.safetensors")
    outputs = load_file(reference_tiny / "outputs.safetensors")
    encoder = PromptEncoder(llm_hidden=64, sam_hidden=32, sam_image_size=96, merger_width=192, temporal_features=16)
    encoder.load_state_dict({k: v.float() for k, v in weights.items() if k in encoder.state_dict()}, strict=True)
    rows, mask = outputs["d_video_mem.eval.merger_mlp_in"], inputs["d_video_mem.eval.refer_mask.0"]
    # Tiny fixture: 4x3 merged grid per slice with 2x2-token windows (manifest: mem_emb_window_order_check).
    index = torch.tensor([0, 1, 3, 4, 2, 5, 6, 7, 9, 10, 8, 11])
    index = torch.cat([index, index + 12])
    expected = outputs["d_video_mem.eval.mem_emb"]
    with torch.no_grad():
        encoder.mem_pooling = "reference"
        torch.testing.assert_close(encoder.encode_memory(rows, index, mask), expected, atol=1e-5, rtol=1e-5)
        encoder.mem_pooling = "raster"
        assert (encoder.encode_memory(rows, index, mask) - expected).abs().max() > 0.1
