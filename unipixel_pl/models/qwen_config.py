"""Translate our ``BackboneConfig`` into the transformers 5.x ``Qwen2_5_VLConfig``.

Every value whose 5.x default differs from Qwen2.5-VL is set explicitly (reference/TRANSFORMERS5.md §3):
``mrope_section``, ``rms_norm_eps``, ``window_size``, ``fullatt_block_indexes``, ``tokens_per_second`` and
``tie_word_embeddings`` (on both levels: 5.x ties from the top level, 4.53 files keep it in ``text_config``).
"""

from __future__ import annotations

from transformers import Qwen2_5_VLConfig
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLTextConfig, Qwen2_5_VLVisionConfig

from unipixel_pl.config import BackboneConfig


def to_hf_config(config: BackboneConfig) -> Qwen2_5_VLConfig:
    """Build the nested transformers config of the Qwen2.5-VL described by ``config``."""
    tokens = config.tokens
    return Qwen2_5_VLConfig(
        text_config=_text_config(config),
        vision_config=_vision_config(config),
        image_token_id=tokens.image,
        video_token_id=tokens.video,
        vision_start_token_id=tokens.vision_start,
        vision_end_token_id=tokens.vision_end,
        tie_word_embeddings=config.tie_word_embeddings,
        attn_implementation=config.attn_implementation,
    )


def _text_config(config: BackboneConfig) -> Qwen2_5_VLTextConfig:
    return Qwen2_5_VLTextConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": config.rope_theta,
            "mrope_section": list(config.mrope_section),
        },
        use_sliding_window=False,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=config.tokens.endoftext,
        eos_token_id=config.tokens.im_end,
        # Qwen2.5-VL's config has no pad id; setting one would make it the embedding's `padding_idx`, which
        # zeroes that row at init and blocks its gradient when the embeddings are trained.
        pad_token_id=None,
    )


def _vision_config(config: BackboneConfig) -> Qwen2_5_VLVisionConfig:
    vision = config.vision
    return Qwen2_5_VLVisionConfig(
        depth=vision.depth,
        hidden_size=vision.hidden_size,
        num_heads=vision.num_heads,
        intermediate_size=vision.intermediate_size,
        patch_size=vision.patch_size,
        temporal_patch_size=vision.temporal_patch_size,
        spatial_merge_size=vision.spatial_merge_size,
        window_size=vision.window_size,
        fullatt_block_indexes=list(vision.fullatt_block_indexes),
        tokens_per_second=vision.tokens_per_second,
        out_hidden_size=config.hidden_size,
    )
