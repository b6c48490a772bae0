"""Prompt encoder: random-Fourier encoders, ``<|ref|>`` embeddings, initialisation, sizes and key names."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sam2.modeling.position_encoding import PositionEmbeddingRandom
from sam2.modeling.sam.prompt_encoder import PromptEncoder as Sam2PromptEncoder
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPatchMerger

from unipixel_pl.models.fourier import RandomFourierEncoding1D, RandomFourierEncoding2D
from unipixel_pl.models.prompt_encoder import PromptEncoder
from unipixel_pl.types import VisualPrompt

LLM, SAM, IMAGE, MERGER = 12, 8, 64, 16
"""Tiny sizes: D, S, SAM 2 input size, merger width V."""


def _encoder(seed: int = 0, **changes: object) -> PromptEncoder:
    torch.manual_seed(seed)
    sizes = dict(llm_hidden=LLM, sam_hidden=SAM, sam_image_size=IMAGE, merger_width=MERGER, temporal_features=SAM // 2)
    return PromptEncoder(**{**sizes, **changes})


def _prompts() -> list[VisualPrompt]:
    return [
        VisualPrompt.box(3.0, 10.0, 40.0, 63.5, frame=2),
        VisualPrompt.point(17.0, 5.5, frame=0),
        VisualPrompt.box(0.0, 0.0, 64.0, 64.0, frame=1),
        VisualPrompt.point(64.0, 0.0, frame=3),
    ]


LENGTHS = [4, 2, 6, 4]


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def _np_fourier(unit: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    phase = 2 * np.pi * ((2 * unit - 1) @ matrix)
    return np.concatenate([np.sin(phase), np.cos(phase)], axis=-1)


def _np_gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _np_linear(x: np.ndarray, layer: torch.nn.Linear) -> np.ndarray:
    return x @ _np(layer.weight).T + _np(layer.bias)


def _np_ref_embedding(encoder: PromptEncoder, prompt: VisualPrompt, length: int) -> np.ndarray:
    """MODEL.md §4.3 written out: +0.5, /size, 2-D Fourier, label embeddings, pad token, projections."""
    sam = encoder.ref_encoder
    matrix_2d = _np(sam.pe_layer.positional_encoding_gaussian_matrix)
    unit = (_np(prompt.coords) + 0.5) / IMAGE
    tokens = _np_fourier(unit, matrix_2d)
    for row, label in enumerate(prompt.labels.tolist()):
        tokens[row] += _np(sam.point_embeddings[label].weight)[0]
    tokens = np.concatenate([tokens, _np(sam.not_a_point_embed.weight)])
    proj = encoder.ref_proj_single if len(tokens) == 2 else encoder.ref_proj_double
    spatial = _np_linear(tokens.reshape(-1), proj)
    matrix_1d = _np(encoder.tem_pe.positional_encoding_gaussian_matrix)
    code = _np_fourier(np.array([prompt.frame / (length - 1)]), matrix_1d) + _np(encoder.tem_emb.weight)[0]
    temporal = _np_linear(code, encoder.tem_proj)
    return _np_linear(_np_gelu(np.concatenate([spatial, temporal])), encoder.ref_proj[1])


def test_fourier_2d_matches_formula_and_sam2() -> None:
    torch.manual_seed(0)
    layer = RandomFourierEncoding2D(6)
    matrix = _np(layer.positional_encoding_gaussian_matrix)
    coords = torch.tensor([[[0.0, 0.0], [31.5, 7.0], [80.0, 40.0]]])
    encoded = layer.forward_with_coords(coords, (40, 80))
    expected = _np_fourier(_np(coords) / np.array([80.0, 40.0]), matrix)
    np.testing.assert_allclose(_np(encoded), expected, atol=1e-5)
    reference = PositionEmbeddingRandom(6)
    reference.positional_encoding_gaussian_matrix.copy_(layer.positional_encoding_gaussian_matrix)
    torch.testing.assert_close(layer((3, 5)), reference((3, 5)), rtol=0, atol=0)
    torch.testing.assert_close(
        layer.forward_with_coords(coords, (40, 80)), reference.forward_with_coords(coords, (40, 80))
    )


def test_fourier_1d_matches_formula() -> None:
    torch.manual_seed(0)
    layer = RandomFourierEncoding1D(5)
    positions, lengths = torch.tensor([0, 1, 3, 5]), torch.tensor([4, 4, 4, 6])
    expected = _np_fourier(
        (_np(positions) / (_np(lengths) - 1))[:, None], _np(layer.positional_encoding_gaussian_matrix)
    )
    np.testing.assert_allclose(_np(layer(positions, lengths)), expected, atol=1e-5)
    torch.testing.assert_close(layer(positions, 6)[3], layer(positions, lengths)[3])


def test_fourier_runs_in_fp32_under_autocast_and_casts_to_buffer_dtype() -> None:
    torch.manual_seed(0)
    layer = RandomFourierEncoding1D(8)
    positions = torch.arange(7)
    exact = layer(positions, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = layer(positions, 7)
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, exact, rtol=0, atol=0)
    layer.to(torch.bfloat16)
    expected = RandomFourierEncoding1D(8)
    expected.positional_encoding_gaussian_matrix.copy_(layer.positional_encoding_gaussian_matrix.float())
    assert layer(positions, 7).dtype == torch.bfloat16
    torch.testing.assert_close(layer(positions, 7), expected(positions, 7).bfloat16(), rtol=0, atol=0)


def test_encode_prompts_matches_independent_computation() -> None:
    encoder = _encoder()
    prompts = _prompts()
    embedded = encoder.encode_prompts(prompts, LENGTHS)
    assert embedded.shape == (len(prompts), LLM)
    expected = np.stack([_np_ref_embedding(encoder, p, n) for p, n in zip(prompts, LENGTHS, strict=True)])
    np.testing.assert_allclose(_np(embedded), expected, atol=1e-5)


def test_points_use_single_projection_and_boxes_double() -> None:
    encoder = _encoder()
    prompts = _prompts()
    before = encoder.encode_prompts(prompts, LENGTHS)
    with torch.no_grad():
        encoder.ref_proj_double.bias.add_(1.0)
    after_double = encoder.encode_prompts(prompts, LENGTHS)
    with torch.no_grad():
        encoder.ref_proj_single.bias.add_(1.0)
    after_both = encoder.encode_prompts(prompts, LENGTHS)
    is_box = torch.tensor([p.coords.shape[0] == 2 for p in prompts])
    assert torch.equal(after_double[~is_box], before[~is_box])
    assert not torch.isclose(after_double[is_box], before[is_box]).all(dim=-1).any()
    assert torch.equal(after_both[is_box], after_double[is_box])
    assert not torch.isclose(after_both[~is_box], after_double[~is_box]).all(dim=-1).any()


def test_rows_follow_prompt_order_and_do_not_interact() -> None:
    encoder = _encoder()
    prompts = _prompts()
    together = encoder.encode_prompts(prompts, LENGTHS)
    alone = torch.cat([encoder.encode_prompts([p], [n]) for p, n in zip(prompts, LENGTHS, strict=True)])
    torch.testing.assert_close(together, alone)


def test_integer_coordinates_and_empty_input() -> None:
    encoder = _encoder()
    box = VisualPrompt(torch.tensor([[3, 10], [40, 60]], dtype=torch.int32), torch.tensor([2, 3]), 1)
    as_float = VisualPrompt.box(3.0, 10.0, 40.0, 60.0, frame=1)
    torch.testing.assert_close(encoder.encode_prompts([box], [2]), encoder.encode_prompts([as_float], [2]))
    assert encoder.encode_prompts([], []).shape == (0, LLM)


def test_gradients_reach_projections_and_label_embeddings_not_buffers() -> None:
    encoder = _encoder()
    encoder.encode_prompts(_prompts(), LENGTHS).square().sum().backward()
    grads = {name: p.grad for name, p in encoder.named_parameters()}
    trained = [
        "ref_proj_single.weight",
        "ref_proj_double.weight",
        "ref_proj.1.weight",
        "tem_emb.weight",
        "tem_proj.weight",
        "ref_encoder.point_embeddings.1.weight",
        "ref_encoder.point_embeddings.2.weight",
        "ref_encoder.point_embeddings.3.weight",
        "ref_encoder.not_a_point_embed.weight",
    ]
    for name in trained:
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    assert grads["ref_encoder.mask_downscaling.0.weight"] is None
    assert grads["msk_proj.0.weight"] is None
    for buffer in (encoder.ref_encoder.pe_layer, encoder.tem_pe):
        assert not buffer.positional_encoding_gaussian_matrix.requires_grad
        assert buffer.positional_encoding_gaussian_matrix.grad is None


def test_bf16_module_matches_fp32_loosely() -> None:
    encoder = _encoder()
    exact = encoder.encode_prompts(_prompts(), LENGTHS)
    half = encoder.to(torch.bfloat16).encode_prompts(_prompts(), LENGTHS)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), exact, atol=0.1, rtol=0.05)


def test_init_from_sam2_copies_parameters_but_keeps_its_fourier_buffer() -> None:
    encoder = _encoder(seed=0)
    torch.manual_seed(1)
    sam = Sam2PromptEncoder(SAM, (IMAGE // 16,) * 2, (IMAGE,) * 2, 16)
    own_matrix = encoder.ref_encoder.pe_layer.positional_encoding_gaussian_matrix.clone()
    encoder.init_from_sam2(sam)
    theirs = dict(sam.named_parameters())
    for name, param in encoder.ref_encoder.named_parameters():
        assert torch.equal(param, theirs[name]), name
    assert torch.equal(encoder.ref_encoder.pe_layer.positional_encoding_gaussian_matrix, own_matrix)
    assert not torch.equal(own_matrix, sam.pe_layer.positional_encoding_gaussian_matrix)
    wider = Sam2PromptEncoder(2 * SAM, (IMAGE // 16,) * 2, (IMAGE,) * 2, 16)
    with pytest.raises(ValueError, match=r"cannot initialise ref_encoder\.point_embeddings\.0\.weight"):
        encoder.init_from_sam2(wider)


def test_init_from_merger_copies_the_vision_merger_mlp() -> None:
    encoder = _encoder()
    torch.manual_seed(2)
    merger = Qwen2_5_VLPatchMerger(dim=LLM, context_dim=MERGER // 4)
    encoder.init_from_merger(merger.mlp)
    for ours, theirs in zip(encoder.msk_proj.parameters(), merger.mlp.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match="cannot initialise msk_proj"):
        encoder.init_from_merger(torch.nn.Sequential(torch.nn.Linear(MERGER, LLM)))


@pytest.mark.parametrize(
    ("prompt", "length", "message"),
    [
        (VisualPrompt.point(-0.5, 3.0), 2, r"coordinates \[\[-0\.5, 3\.0\]\] outside \[0, 64\]"),
        (VisualPrompt.box(1.0, 2.0, 64.5, 9.0), 2, r"outside \[0, 64\]; give \(x, y\) in pixels"),
        (VisualPrompt.point(1.0, 2.0, frame=4), 4, r"prompt 0 is on frame 4 but its sample has L = 4"),
        (VisualPrompt.point(1.0, 2.0, frame=-1), 4, r"on frame -1"),
        (VisualPrompt(torch.zeros(1, 2), torch.tensor([0])), 2, r"labels \[0\]; use \[1\] for a point"),
        (VisualPrompt(torch.zeros(2, 2), torch.tensor([3, 2])), 2, r"labels \[3, 2\]; use \[2, 3\] for a box"),
    ],
)
def test_invalid_prompts_are_rejected(prompt: VisualPrompt, length: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _encoder().encode_prompts([prompt], [length])


def test_invalid_point_count_and_length_list_are_rejected() -> None:
    encoder = _encoder()
    triple = VisualPrompt.point(1.0, 2.0)
    triple.coords, triple.labels = torch.zeros(3, 2), torch.tensor([1, 1, 1])
    with pytest.raises(ValueError, match=r"coords of shape \(3, 2\); use \(1, 2\) for a point or \(2, 2\)"):
        encoder.encode_prompts([triple], [2])
    with pytest.raises(ValueError, match="num_llm_frames has 1 entries for 2 prompts"):
        encoder.encode_prompts([VisualPrompt.point(1.0, 2.0)] * 2, [2])
    with pytest.raises(ValueError, match="mem_pooling must be 'reference' or 'raster'"):
        _encoder(mem_pooling="window")


@pytest.mark.parametrize(
    ("llm", "ref_proj", "msk_proj"), [(2048, 3_147_776, 36_707_328), (3584, 5_508_608, 44_573_184)]
)
def test_parameter_counts_match_the_reference(llm: int, ref_proj: int, msk_proj: int) -> None:
    with torch.device("meta"):
        encoder = PromptEncoder(llm_hidden=llm, sam_hidden=256, sam_image_size=768, merger_width=5120)
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in encoder.named_children()}
    assert counts == {
        "ref_encoder": 6_220,
        "ref_proj_single": 393_984,
        "ref_proj_double": 590_592,
        "ref_proj": ref_proj,
        "tem_pe": 0,
        "tem_emb": 256,
        "tem_proj": 197_376,
        "msk_proj": msk_proj,
    }
    state = encoder.state_dict()
    assert state["ref_encoder.pe_layer.positional_encoding_gaussian_matrix"].shape == (2, 128)
    assert state["tem_pe.positional_encoding_gaussian_matrix"].shape == (1, 128)


def test_state_dict_keys_are_the_reference_names() -> None:
    mask_downscaling = [f"ref_encoder.mask_downscaling.{i}.{p}" for i in (0, 1, 3, 4, 6) for p in ("weight", "bias")]
    expected = {
        "ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
        *(f"ref_encoder.point_embeddings.{i}.weight" for i in range(4)),
        "ref_encoder.not_a_point_embed.weight",
        "ref_encoder.no_mask_embed.weight",
        *mask_downscaling,
        *(
            f"{m}.{p}"
            for m in ("ref_proj_single", "ref_proj_double", "ref_proj.1", "tem_proj")
            for p in ("weight", "bias")
        ),
        "tem_pe.positional_encoding_gaussian_matrix",
        "tem_emb.weight",
        *(f"msk_proj.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")),
    }
    assert set(_encoder().state_dict()) == expected


def test_initialisation_follows_the_reference() -> None:
    encoder = _encoder(llm_hidden=256, merger_width=256)
    for layer in (encoder.ref_proj_single, encoder.ref_proj_double, encoder.ref_proj[1], encoder.tem_proj):
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    assert encoder.tem_emb.weight.std() < 0.05


def _reference_prompts(inputs: dict[str, torch.Tensor]) -> list[VisualPrompt]:
    frames = inputs["c_video_ref_seg.eval.point_frames.0.0"].tolist()
    return [
        VisualPrompt(
            inputs[f"c_video_ref_seg.eval.point_coords.0.{o}"][0],
            inputs[f"c_video_ref_seg.eval.point_labels.0.{o}"][0].long(),
            frames[o],
        )
        for o in range(2)
    ]


def test_ref_embeddings_match_the_official_implementation(reference_tiny: Path) -> None:
    """The official code's ``<|ref|>`` embeddings for a point on frame 1 and a box on frame 2 of a 2-slice video."""
    weights = load_file(reference_tiny / "checkpoint" / "model.safetensors")
    inputs = load_file(reference_tiny / "inputs.safetensors")
    outputs = load_file(reference_tiny / "outputs.safetensors")
    encoder = PromptEncoder(llm_hidden=64, sam_hidden=32, sam_image_size=96, merger_width=192, temporal_features=16)
    ours = encoder.state_dict()
    encoder.load_state_dict({k: v.float() for k, v in weights.items() if k in ours}, strict=True)
    grid_t = int(inputs["media.video.video_grid_thw"][0, 0])
    with torch.no_grad():
        embedded = encoder.encode_prompts(_reference_prompts(inputs), [2 * grid_t] * 2)
    torch.testing.assert_close(embedded, outputs["c_video_ref_seg.eval.ref_emb"], atol=1e-5, rtol=1e-5)
