"""The Qwen2.5-VL backbone: token embedding, vision features, placeholder injection and the decoder.

The model is the stock ``transformers`` ``Qwen2_5_VLForConditionalGeneration``, built late in
``configure_model`` (meta device under FSDP). UniPixel needs two hidden tensors the stock forward does not
return: the merger-MLP input of the vision tower (pooled by ``<|mem|>``) and the last decoder state before the
final RMSNorm (read by the pointer head). Both are captured with forward-pre-hooks held only for one call, so
they stay in the autograd graph.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import lightning as L
import torch
from torch import Tensor, nn
from transformers import Cache, Qwen2_5_VLForConditionalGeneration
from transformers.vision_utils import get_vision_window_index

from unipixel_pl.config import BackboneConfig, VisionConfig
from unipixel_pl.models.qwen_config import to_hf_config


@dataclass
class VisionFeatures:
    """Output of the vision tower for all videos (or images) of a batch, concatenated."""

    embeds: Tensor
    """(N_tokens, D) merged tokens in raster order: what replaces the ``<|video_pad|>`` tokens."""
    merger_inputs: Tensor
    """(N_tokens, 4 * vision_hidden) input of ``visual.merger.mlp`` in window order (not detached)."""
    window_index: Tensor
    """(N_tokens,) long: row j of ``merger_inputs`` is raster token ``window_index[j]`` (global over videos)."""


@dataclass
class BackboneOutput:
    """Result of one decoder pass."""

    logits: Tensor
    """(B, L, V) next-token logits."""
    hidden_states: Tensor
    """(B, L, D) output of the last decoder layer, before the final RMSNorm."""
    past_key_values: Cache | None
    """The KV cache after this pass when ``use_cache`` (prefill or decode step), else None."""


def vision_window_index(grid_thw: Tensor, vision: VisionConfig) -> Tensor:
    """Order in which the ViT visits merged tokens (its window-attention permutation).

    Args:
        grid_thw: (num_videos, 3) patch grids ``(g_t, g_h, g_w)``.
        vision: the vision tower's config (window size, patch size, merge size).

    Returns:
        (sum g_t*g_h*g_w / merge**2,) long on ``grid_thw``'s device; entry j is the raster index of the j-th
        token in window order, offset by the tokens of the preceding videos.
    """
    window_index, _ = get_vision_window_index(
        grid_thw,
        spatial_merge_size=vision.spatial_merge_size,
        window_size=vision.window_size,
        patch_size=vision.patch_size,
    )
    return window_index.to(grid_thw.device)


@torch.no_grad()
def _set_inv_freq(rotary: nn.Module, inv_freq: Tensor) -> None:
    rotary.inv_freq.copy_(inv_freq)
    rotary.original_inv_freq.copy_(inv_freq)


class Backbone(L.LightningModule):
    """Qwen2.5-VL (language model + vision tower) as a self-contained part of UniPixel.

    Args:
        config: sizes, token ids, attention implementation and gradient checkpointing switch.
    """

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.model: Qwen2_5_VLForConditionalGeneration | None = None

    def configure_model(self) -> None:
        """Build the transformers model (once; later calls do nothing), on the current default device."""
        if self.model is not None:
            return
        self.model = Qwen2_5_VLForConditionalGeneration(to_hf_config(self.config))
        if self.config.gradient_checkpointing:
            # Covers every decoder layer and ViT block (both are `GradientCheckpointingLayer`s). Non-reentrant
            # checkpointing needs no input that requires grad, so frozen embeddings are fine.
            self.model.activation_checkpointing_enable({"use_reentrant": False})

    def reset_rope_buffers(self) -> None:
        """Recompute the rotary inverse frequencies of the decoder and the ViT in place.

        They are non-persistent buffers: no checkpoint holds them, and materialising a meta-device build with
        ``to_empty`` + ``reset_parameters`` (FSDP) leaves them uninitialised. Call this after materialisation.
        """
        model = self.hf_model.model
        text_rotary, vision_rotary = model.language_model.rotary_emb, model.visual.rotary_pos_emb
        _set_inv_freq(text_rotary, text_rotary.compute_default_rope_parameters(text_rotary.config)[0])
        _set_inv_freq(vision_rotary, vision_rotary.compute_axial_rope_parameters(vision_rotary.config)[0])

    @property
    def hf_model(self) -> Qwen2_5_VLForConditionalGeneration:
        """The built transformers model; raises if ``configure_model`` has not run yet."""
        if self.model is None:
            raise RuntimeError("Backbone model is not built yet; call `configure_model()` first")
        return self.model

    def embed_tokens(self, input_ids: Tensor) -> Tensor:
        """Token embeddings: (B, L) ids -> (B, L, D)."""
        return self.hf_model.model.language_model.embed_tokens(input_ids)

    def encode_vision(self, pixel_values: Tensor, grid_thw: Tensor) -> VisionFeatures:
        """Run the ViT on flattened patches and keep the merger-MLP input.

        Args:
            pixel_values: (N_patches, C*T*P*P) patches as made by the Qwen2.5-VL processor.
            grid_thw: (num_videos, 3) patch grid of each video (images are one-slice videos).

        Returns:
            The merged tokens (raster order), the merger-MLP inputs (window order) and the window index.
        """
        visual = self.hf_model.model.visual
        captured: list[Tensor] = []
        with visual.merger.mlp.register_forward_pre_hook(lambda _, args: captured.append(args[0])):
            embeds = visual(pixel_values.to(visual.dtype), grid_thw=grid_thw).pooler_output
        window_index = vision_window_index(grid_thw, self.config.vision)
        return VisionFeatures(embeds=embeds, merger_inputs=captured[-1], window_index=window_index)

    def scatter_vision(
        self, inputs_embeds: Tensor, input_ids: Tensor, vision_embeds: Tensor, token_id: int | None = None
    ) -> Tensor:
        """Put vision tokens into their placeholders (``<|video_pad|>`` unless ``token_id`` says otherwise).

        Args:
            inputs_embeds: (B, L, D) token embeddings.
            input_ids: (B, L) token ids locating the placeholders.
            vision_embeds: (N, D) merged vision tokens in sequence order (``VisionFeatures.embeds``).
            token_id: placeholder id; defaults to the video token.

        Returns:
            (B, L, D) embeddings with the N placeholder rows replaced.
        """
        token_id = self.config.tokens.video if token_id is None else token_id
        return self.scatter_tokens(inputs_embeds, input_ids, token_id, vision_embeds)

    def scatter_tokens(self, inputs_embeds: Tensor, input_ids: Tensor, token_id: int, values: Tensor) -> Tensor:
        """Replace the embeddings of every ``token_id`` position, in sequence order, by the rows of ``values``.

        Used for vision placeholders and for UniPixel's ``<|ref|>`` / ``<|mem|>`` injection.

        Args:
            inputs_embeds: (B, L, D) embeddings.
            input_ids: (B, L) token ids.
            token_id: the placeholder token id.
            values: (N, D) one row per placeholder (batch-major, then sequence order).

        Returns:
            (B, L, D) new embeddings; gradients flow to both ``inputs_embeds`` and ``values``.

        Raises:
            ValueError: the number of placeholders differs from the number of rows.
        """
        mask = input_ids == token_id
        count = int(mask.sum())
        if count != values.shape[0]:
            raise ValueError(
                f"{self._token_name(token_id)} occurs {count} time(s) in input_ids but {values.shape[0]} "
                "embedding row(s) were given; the data pipeline must emit exactly one placeholder per row"
            )
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1), values.to(inputs_embeds.dtype))

    def _token_name(self, token_id: int) -> str:
        names = [name for name, value in dataclasses.asdict(self.config.tokens).items() if value == token_id]
        return f"token {names[0]!r} (id {token_id})" if names else f"token id {token_id}"

    def forward(
        self,
        inputs_embeds: Tensor,
        attention_mask: Tensor,
        position_ids: Tensor,
        mm_token_type_ids: Tensor,
        video_grid_thw: Tensor | None = None,
        image_grid_thw: Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool = False,
    ) -> BackboneOutput:
        """Run the decoder on ready embeddings (vision and prompt tokens already scattered in).

        Args:
            inputs_embeds: (B, L, D) input embeddings of the new tokens.
            attention_mask: (B, L_past + L) 1 for real tokens, 0 for padding (covers the cached tokens too).
            position_ids: (3, B, L) temporal/height/width rope positions of the new tokens; in a decode step
                ``max(prefill positions) + 1 + step`` on all three axes.
            mm_token_type_ids: (B, L) 0 text, 1 image, 2 video (always passed: 5.x silently falls back to 1-D
                positions without it whenever it has to compute positions itself).
            video_grid_thw: (num_videos, 3) video grids of the batch, if any.
            image_grid_thw: (num_images, 3) image grids of the batch, if any.
            past_key_values: KV cache from a previous call (generation), or None.
            use_cache: return the KV cache for a following decode step.

        Returns:
            Logits, pre-final-norm hidden states and the cache.
        """
        language_model = self.hf_model.model.language_model
        captured: list[Tensor] = []
        with language_model.norm.register_forward_pre_hook(lambda _, args: captured.append(args[0])):
            output = self.hf_model(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                mm_token_type_ids=mm_token_type_ids,
                video_grid_thw=video_grid_thw,
                image_grid_thw=image_grid_thw,
                cache=past_key_values,
                use_cache=use_cache,
            )
        return BackboneOutput(
            logits=output.logits, hidden_states=captured[-1], past_key_values=output.cache if use_cache else None
        )
