"""Backbone: HF config translation, vision features, placeholder injection, decoder pass and KV cache."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from unipixel_pl.config import BackboneConfig, VisionConfig, preset
from unipixel_pl.models.backbone import Backbone, vision_window_index
from unipixel_pl.models.qwen_config import to_hf_config

PATCH_DIM = 3 * 2 * 14 * 14
GRIDS = torch.tensor([[1, 4, 6], [1, 4, 4]])
"""Two one-slice videos: 2x3 merged tokens (wider than the tiny 2-token window) and 2x2 merged tokens."""


def _tiny_config(**changes: object) -> BackboneConfig:
    config = preset("unipixel-tiny").backbone
    for name, value in changes.items():
        setattr(config, name, value)
    return config


def _build(config: BackboneConfig, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    backbone = Backbone(config)
    backbone.configure_model()
    return backbone.eval()


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return _build(_tiny_config())


def _pixels(grids: Tensor, seed: int = 1) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(int(grids.prod(-1).sum()), PATCH_DIM, generator=generator)


def _sample_ids(config: BackboneConfig, grid: Tensor, text_before: list[int], text_after: list[int]) -> list[int]:
    tokens = config.tokens
    num_video = int(grid.prod()) // config.vision.spatial_merge_size**2
    return [*text_before, tokens.vision_start, *[tokens.video] * num_video, tokens.vision_end, *text_after]


def _batch(config: BackboneConfig) -> tuple[Tensor, Tensor]:
    """Two right-padded samples, one video each; returns (input_ids, attention_mask), both (2, 12)."""
    first = _sample_ids(config, GRIDS[0], [config.tokens.im_start, 10], [20, 21, 22])
    second = _sample_ids(config, GRIDS[1], [config.tokens.im_start, 11], [23, 24])
    pad = config.tokens.endoftext
    input_ids = torch.tensor([first, second + [pad] * (len(first) - len(second))])
    attention_mask = torch.tensor([[1] * len(first), [1] * len(second) + [0] * (len(first) - len(second))])
    return input_ids, attention_mask


def _token_types(backbone: Backbone, input_ids: Tensor) -> Tensor:
    return (input_ids == backbone.config.tokens.video).long() * 2


def _rope_positions(backbone: Backbone, input_ids: Tensor, attention_mask: Tensor, grids: Tensor) -> Tensor:
    positions, _ = backbone.model.model.get_rope_index(
        input_ids, _token_types(backbone, input_ids), video_grid_thw=grids, attention_mask=attention_mask
    )
    return positions


def _embeds(backbone: Backbone, input_ids: Tensor, grids: Tensor) -> Tensor:
    vision = backbone.encode_vision(_pixels(grids), grids)
    return backbone.scatter_vision(backbone.embed_tokens(input_ids), input_ids, vision.embeds)


def _forward(backbone: Backbone, input_ids: Tensor, attention_mask: Tensor, positions: Tensor, **kwargs):
    return backbone(
        _embeds(backbone, input_ids, GRIDS),
        attention_mask,
        positions,
        _token_types(backbone, input_ids),
        video_grid_thw=GRIDS,
        **kwargs,
    )


# Config translation


def test_hf_config_keeps_qwen_values_that_5x_defaults_differently() -> None:
    config = BackboneConfig()
    hf = to_hf_config(config)
    text, vision = hf.text_config, hf.vision_config
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    assert text.rope_parameters["rope_theta"] == 1_000_000.0
    assert text.rms_norm_eps == 1e-6
    assert (vision.window_size, list(vision.fullatt_block_indexes), vision.tokens_per_second) == (
        112,
        [7, 15, 23, 31],
        2,
    )
    assert vision.out_hidden_size == text.hidden_size == 2048
    assert hf.tie_word_embeddings and text.tie_word_embeddings
    assert (hf.image_token_id, hf.video_token_id, hf.vision_start_token_id, hf.vision_end_token_id) == (
        151655,
        151656,
        151652,
        151653,
    )
    assert (text.bos_token_id, text.eos_token_id, text.pad_token_id) == (151643, 151645, None)
    assert hf._attn_implementation == "sdpa"
    assert not to_hf_config(preset("unipixel-7b").backbone).tie_word_embeddings


def test_built_model_uses_configured_rope_sections_and_norm_eps(backbone: Backbone) -> None:
    language_model = backbone.model.model.language_model
    assert language_model.rotary_emb.mrope_section == [4, 2, 2]
    assert language_model.norm.variance_epsilon == 1e-6
    assert language_model.layers[0].input_layernorm.variance_epsilon == 1e-6
    assert backbone.model.lm_head.weight is language_model.embed_tokens.weight


# Building


def test_model_is_built_once_and_required_before_use() -> None:
    backbone = Backbone(_tiny_config())
    with pytest.raises(RuntimeError, match="configure_model"):
        backbone.embed_tokens(torch.zeros(1, 1, dtype=torch.long))
    backbone.configure_model()
    model = backbone.model
    backbone.configure_model()
    assert backbone.model is model


def test_reset_rope_buffers_restores_them_after_meta_materialisation() -> None:
    eager = _build(_tiny_config())
    lazy = Backbone(_tiny_config())
    with torch.device("meta"):
        lazy.configure_model()
    lazy.to_empty(device="cpu")
    for buffer in lazy.model.buffers():
        buffer.fill_(float("nan"))  # what uninitialised memory may hold
    lazy.reset_rope_buffers()
    eager_buffers = dict(eager.model.named_buffers())
    assert {name for name in eager_buffers if "inv_freq" in name} == {
        "model.visual.rotary_pos_emb.inv_freq",
        "model.visual.rotary_pos_emb.original_inv_freq",
        "model.language_model.rotary_emb.inv_freq",
        "model.language_model.rotary_emb.original_inv_freq",
    }
    for name, buffer in lazy.model.named_buffers():
        torch.testing.assert_close(buffer, eager_buffers[name], rtol=0, atol=0, msg=name)


def _qwen25vl_parameter_count(config: BackboneConfig) -> int:
    """Qwen2.5-VL parameters from the tensor shapes of MODEL.md §2.1 / §9.2 (tied lm_head counted once)."""
    d, v = config.hidden_size, config.vision
    kv = config.num_key_value_heads * d // config.num_attention_heads
    attention = (d * d + d) + 2 * (kv * d + kv) + d * d  # q, k, v with bias; o without
    layer = attention + 3 * d * config.intermediate_size + 2 * d  # SwiGLU MLP without bias, two RMSNorms
    embeddings = config.vocab_size * d * (1 if config.tie_word_embeddings else 2)
    language_model = embeddings + config.num_hidden_layers * layer + d  # + final norm
    h, merged = v.hidden_size, v.hidden_size * v.spatial_merge_size**2
    block = 2 * h + (3 * h * h + 3 * h) + (h * h + h) + 2 * (v.intermediate_size * h + v.intermediate_size)
    block += h * v.intermediate_size + h  # down_proj
    patch_embed = h * 3 * v.temporal_patch_size * v.patch_size**2
    merger = h + (merged * merged + merged) + (d * merged + d)  # ln_q, mlp.0, mlp.2
    return language_model + patch_embed + v.depth * block + merger


@pytest.mark.parametrize(("name", "published"), [("unipixel-3b", 3_754_622_976), ("unipixel-7b", 8_292_166_656)])
def test_full_size_parameter_count_on_meta_device(name: str, published: int) -> None:
    config = preset(name).backbone
    backbone = Backbone(config)
    with torch.device("meta"):
        backbone.configure_model()
    model = backbone.model
    assert model.lm_head.weight.is_meta
    assert (model.lm_head.weight is model.model.language_model.embed_tokens.weight) == config.tie_word_embeddings
    built = sum(parameter.numel() for parameter in model.parameters())  # shared (tied) tensors counted once
    assert built == _qwen25vl_parameter_count(config) == published


# Vision features


def test_window_index_matches_hand_computed_orders() -> None:
    tiny_vision = _tiny_config().vision  # 56 px windows = 2x2 merged tokens
    grids = torch.tensor([[1, 4, 6], [2, 4, 4]])
    expected = [0, 1, 3, 4, 2, 5] + list(range(6, 14))  # 2x3 grid split into a 2x2 and a 2x1 window
    assert vision_window_index(grids, tiny_vision).tolist() == expected
    # MODEL.md §4.4: Qwen's 112 px windows (4x4 merged tokens) on a 6x10 merged grid.
    order = vision_window_index(torch.tensor([[1, 12, 20]]), VisionConfig()).tolist()
    assert order[:18] == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33, 4, 5]
    assert sorted(order) == list(range(60))


def test_encode_vision_returns_hf_features_and_window_ordered_merger_inputs(backbone: Backbone) -> None:
    pixels = _pixels(GRIDS)
    features = backbone.encode_vision(pixels, GRIDS)
    visual = backbone.model.model.visual
    with torch.no_grad():
        reference = torch.cat(backbone.model.model.get_video_features(pixels, GRIDS).pooler_output)
        vit = visual(pixels, grid_thw=GRIDS)
    assert features.embeds.shape == (10, 64) and features.merger_inputs.shape == (10, 4 * 32)
    torch.testing.assert_close(features.embeds, reference, rtol=0, atol=0)
    # The hooked tensor is ln_q of the last block's output (window order), merged 2x2.
    torch.testing.assert_close(features.merger_inputs, visual.merger.ln_q(vit.last_hidden_state).view(10, -1))
    # Undoing the window permutation after the MLP is exactly what the ViT does.
    reordered = visual.merger.mlp(features.merger_inputs)[torch.argsort(features.window_index)]
    torch.testing.assert_close(reordered, features.embeds)
    assert features.window_index.tolist() != list(range(10))


def test_merger_inputs_carry_gradients_to_the_vit(backbone: Backbone) -> None:
    features = backbone.encode_vision(_pixels(GRIDS), GRIDS)
    assert features.merger_inputs.requires_grad
    backbone.zero_grad()
    features.merger_inputs.square().sum().backward()
    assert backbone.model.model.visual.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


# Placeholder injection


def test_scatter_tokens_fills_placeholders_in_order_and_keeps_other_rows(backbone: Backbone) -> None:
    ref = backbone.config.tokens.ref
    input_ids = torch.tensor([[1, ref, 2, ref], [ref, 3, 4, 5]])
    embeds = torch.randn(2, 4, 64)
    values = torch.randn(3, 64, requires_grad=True)
    out = backbone.scatter_tokens(embeds, input_ids, ref, values)
    torch.testing.assert_close(out[input_ids == ref], values.detach(), rtol=0, atol=0)
    torch.testing.assert_close(out[input_ids != ref], embeds[input_ids != ref], rtol=0, atol=0)
    out.sum().backward()
    torch.testing.assert_close(values.grad, torch.ones(3, 64))


def test_scatter_count_mismatch_names_token_and_counts(backbone: Backbone) -> None:
    tokens = backbone.config.tokens
    input_ids = torch.tensor([[tokens.mem, tokens.mem, 7]])
    with pytest.raises(ValueError, match=r"'mem' \(id 504\) occurs 2 time\(s\).* but 3 embedding row"):
        backbone.scatter_tokens(torch.zeros(1, 3, 64), input_ids, tokens.mem, torch.zeros(3, 64))
    with pytest.raises(ValueError, match=r"'video' \(id 493\) occurs 0 time\(s\).* but 1 embedding row"):
        backbone.scatter_vision(torch.zeros(1, 3, 64), input_ids, torch.zeros(1, 64))


# Decoder pass


def test_logits_match_hf_forward_with_raw_video(backbone: Backbone) -> None:
    input_ids, attention_mask = _batch(backbone.config)
    with torch.no_grad():
        ours = _forward(
            backbone, input_ids, attention_mask, _rope_positions(backbone, input_ids, attention_mask, GRIDS)
        )
        # HF embeds, runs the ViT and computes 3-D positions itself from the raw inputs.
        hf = backbone.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values_videos=_pixels(GRIDS),
            video_grid_thw=GRIDS,
            mm_token_type_ids=_token_types(backbone, input_ids),
        )
    torch.testing.assert_close(ours.logits, hf.logits, rtol=1e-5, atol=1e-5)
    assert ours.past_key_values is None


def test_given_position_ids_are_used(backbone: Backbone) -> None:
    input_ids, attention_mask = _batch(backbone.config)
    rope = _rope_positions(backbone, input_ids, attention_mask, GRIDS)
    flat = torch.arange(input_ids.shape[1]).expand(3, 2, -1)
    assert not torch.equal(rope, flat)
    with torch.no_grad():
        with_rope = _forward(backbone, input_ids, attention_mask, rope).logits
        with_flat = _forward(backbone, input_ids, attention_mask, flat).logits
    # The prefix before the first vision token has the same positions either way; later tokens differ.
    torch.testing.assert_close(with_rope[:, :3], with_flat[:, :3])
    assert (with_rope[0, -1] - with_flat[0, -1]).abs().max() > 1e-3


def test_hidden_states_are_the_input_of_the_final_norm(backbone: Backbone) -> None:
    input_ids, attention_mask = _batch(backbone.config)
    positions = _rope_positions(backbone, input_ids, attention_mask, GRIDS)
    with torch.no_grad():
        output = _forward(backbone, input_ids, attention_mask, positions)
        norm = backbone.model.model.language_model.norm
        torch.testing.assert_close(backbone.model.lm_head(norm(output.hidden_states)), output.logits)
        assert (norm(output.hidden_states) - output.hidden_states).abs().max() > 1e-2
    assert output.hidden_states.shape == (2, input_ids.shape[1], 64)


def _run_one(backbone: Backbone, ids: Tensor, embeds: Tensor, positions: Tensor, seen: int, **kwargs):
    """Decoder pass of one sample whose ``seen`` tokens (cached + new) are all real."""
    mask = torch.ones(1, seen, dtype=torch.long)
    return backbone(embeds, mask, positions, _token_types(backbone, ids), video_grid_thw=GRIDS[:1], **kwargs)


def test_decode_step_with_cache_matches_full_forward(backbone: Backbone) -> None:
    config, grid = backbone.config, GRIDS[:1]
    prompt = torch.tensor([_sample_ids(config, grid[0], [config.tokens.im_start, 10], [20, 21])])
    extended = torch.cat([prompt, torch.tensor([[30]])], dim=1)
    prompt_positions = _rope_positions(backbone, prompt, torch.ones_like(prompt), grid)
    full_positions = _rope_positions(backbone, extended, torch.ones_like(extended), grid)
    step_positions = (prompt_positions.max() + 1).view(1, 1, 1).expand(3, 1, 1)
    torch.testing.assert_close(full_positions[:, :, -1:], step_positions, rtol=0, atol=0)
    new_ids, length = extended[:, -1:], extended.shape[1]
    with torch.no_grad():
        vision = backbone.encode_vision(_pixels(grid), grid).embeds
        prompt_embeds = backbone.scatter_vision(backbone.embed_tokens(prompt), prompt, vision)
        prefill = _run_one(backbone, prompt, prompt_embeds, prompt_positions, length - 1, use_cache=True)
        cache = prefill.past_key_values
        step = _run_one(
            backbone,
            new_ids,
            backbone.embed_tokens(new_ids),
            step_positions,
            length,
            past_key_values=cache,
            use_cache=True,
        )
        full_embeds = backbone.scatter_vision(backbone.embed_tokens(extended), extended, vision)
        full = _run_one(backbone, extended, full_embeds, full_positions, length)
    assert step.past_key_values is cache and cache.get_seq_length() == length
    torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(step.hidden_states[:, -1], full.hidden_states[:, -1], rtol=1e-5, atol=1e-5)


# Gradient checkpointing


def test_gradient_checkpointing_covers_decoder_and_vit_and_keeps_gradients() -> None:
    plain = _build(_tiny_config()).train()
    checkpointed = _build(_tiny_config(gradient_checkpointing=True)).train()
    checkpointed.model.load_state_dict(plain.model.state_dict())
    layers = [*checkpointed.model.model.language_model.layers, *checkpointed.model.model.visual.blocks]
    assert all(layer.gradient_checkpointing for layer in layers)
    input_ids, attention_mask = _batch(plain.config)
    positions = _rope_positions(plain, input_ids, attention_mask, GRIDS)
    grads = []
    for backbone in (plain, checkpointed):
        _forward(backbone, input_ids, attention_mask, positions).logits.square().mean().backward()
        grads.append({name: p.grad for name, p in backbone.model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "model.visual.blocks.0.attn.qkv.weight" in grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)
