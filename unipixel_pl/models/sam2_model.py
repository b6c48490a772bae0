"""SAM 2.1 as UniPixel uses it, built in Python from :class:`MaskDecoderConfig` (MODEL.md §5).

:class:`UniPixelSAM2` subclasses the upstream ``SAM2Base`` and adds what UniPixel changed: hidden prompt tokens
appended to the sparse prompt embeddings of the conditioning frame, a switch for the NO_OBJ (-1024) masking in
training (reference: inference only) and a switch for the memory-attention RoPE gradient (reference: none).
Tracking follows ``SAM2Train`` without prompt sampling: frame 0 is the only conditioning frame and frames
1..T-1 attend to the memory bank and object pointers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from sam2.modeling.backbones.hieradet import Hiera
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine, apply_rotary_enc, compute_axial_cis
from sam2.modeling.sam.transformer import Attention, RoPEAttention
from sam2.modeling.sam2_base import NO_OBJ_SCORE, SAM2Base
from torch import Tensor
from torch.overrides import TorchFunctionMode

from unipixel_pl.config import MaskDecoderConfig

# SAM 2.1 Hiera-B+ model switches (upstream configs/sam2.1/sam2.1_hiera_b+.yaml); only sizes come from the config.
SAM21_SWITCHES: dict[str, Any] = {
    "sigmoid_scale_for_mem_enc": 20.0,
    "sigmoid_bias_for_mem_enc": -10.0,
    "use_mask_input_as_output_without_sam": True,
    "directly_add_no_mem_embed": True,
    "no_obj_embed_spatial": True,
    "use_high_res_features_in_sam": True,
    "multimask_output_in_sam": True,
    "iou_prediction_use_sigmoid": True,
    "use_obj_ptrs_in_encoder": True,
    "add_tpos_enc_to_obj_ptrs": True,
    "proj_tpos_enc_in_obj_ptrs": True,
    "use_signed_tpos_enc_to_obj_ptrs": True,
    "only_obj_ptrs_in_the_past_for_eval": True,
    "pred_obj_scores": True,
    "pred_obj_scores_mlp": True,
    "fixed_no_obj_ptr": True,
    "multimask_output_for_tracking": True,
    "use_multimask_token_for_obj_ptr": True,
    "multimask_min_pt_num": 0,
    "multimask_max_pt_num": 1,
    "use_mlp_for_obj_ptr_proj": True,
}

_REFERENCE_GAMMA = re.compile(r"(memory_encoder\.fuser\.layers\.\d+)\.weight$")
_UPSTREAM_GAMMA = re.compile(r"(memory_encoder\.fuser\.layers\.\d+)\.gamma$")


def reference_key_to_upstream(key: str) -> str:
    """Map a reference key (``...fuser.layers.{i}.weight``) to the upstream ``sam2`` name (``...gamma``)."""
    return _REFERENCE_GAMMA.sub(r"\1.gamma", key)


def upstream_key_to_reference(key: str) -> str:
    """Map an upstream ``sam2`` key (``...fuser.layers.{i}.gamma``) to the reference name (``...weight``)."""
    return _UPSTREAM_GAMMA.sub(r"\1.weight", key)


class SwitchableRoPEAttention(RoPEAttention):
    """``RoPEAttention`` whose rotary encoding can run without gradient.

    The reference runs the rotation under ``no_grad`` (MODEL.md §11 #2): q projections never train, the rotated
    keys carry no gradient and only the object-pointer keys (excluded from RoPE) train the k projection.
    """

    def __init__(
        self,
        *,
        rope_theta: float,
        feat_sizes: tuple[int, int],
        rope_k_repeat: bool,
        rope_grad: bool,
        **attention_kwargs: Any,
    ) -> None:
        # Skips RoPEAttention.__init__, which moves its table to CUDA at construction (a context on GPU 0 per rank).
        Attention.__init__(self, **attention_kwargs)
        self.compute_cis = partial(compute_axial_cis, dim=self.internal_dim // self.num_heads, theta=rope_theta)
        self.freqs_cis = self.compute_cis(end_x=feat_sizes[0], end_y=feat_sizes[1])
        self.rope_k_repeat = rope_k_repeat
        self.rope_grad = rope_grad

    def _rotary_table(self, num_queries: int, device: torch.device) -> Tensor:
        # A plain attribute (not a buffer): rebuilt for another grid or after construction on the meta device.
        if self.freqs_cis.shape[0] != num_queries or self.freqs_cis.is_meta:
            side = int(round(num_queries**0.5))
            self.freqs_cis = self.compute_cis(end_x=side, end_y=side)
        self.freqs_cis = self.freqs_cis.to(device)
        return self.freqs_cis

    def forward(self, q: Tensor, k: Tensor, v: Tensor, num_k_exclude_rope: int = 0) -> Tensor:
        """Attend ``q: (B, Nq, C)`` to ``k, v: (B, Nk, C_kv)``; the last ``num_k_exclude_rope`` keys skip RoPE."""
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        if q.shape[-2] != k.shape[-2] and not self.rope_k_repeat:
            raise ValueError(f"{q.shape[-2]} queries but {k.shape[-2]} keys need rope_k_repeat=True")
        num_k_rope = k.size(-2) - num_k_exclude_rope
        freqs_cis = self._rotary_table(q.shape[-2], q.device)
        with torch.set_grad_enabled(self.rope_grad and torch.is_grad_enabled()):
            q, rotated_k = apply_rotary_enc(q, k[:, :, :num_k_rope], freqs_cis, repeat_freqs_k=self.rope_k_repeat)
        k[:, :, :num_k_rope] = rotated_k
        dropout_p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return self.out_proj(self._recombine_heads(out))


class _LinspaceOnCpu(TorchFunctionMode):
    """Runs ``torch.linspace`` on the CPU: Hiera reads its drop-path rates with ``.item()``, impossible on meta."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func is torch.linspace:
            kwargs = {**kwargs, "device": "cpu"}
        return func(*args, **kwargs)


def _hiera(config: MaskDecoderConfig) -> Hiera:
    with _LinspaceOnCpu():
        return Hiera(
            embed_dim=config.trunk_embed_dim,
            num_heads=config.trunk_num_heads,
            drop_path_rate=config.drop_path_rate,
            stages=tuple(config.trunk_stages),
            global_att_blocks=tuple(config.trunk_global_att_blocks),
            window_spec=tuple(config.trunk_window_spec),
            window_pos_embed_bkg_spatial_size=tuple(config.trunk_window_pos_embed_bkg_spatial_size),
        )


def build_image_encoder(config: MaskDecoderConfig) -> ImageEncoder:
    """Hiera trunk + FPN neck; the lowest-resolution level is dropped (``scalp=1``). Works on the meta device."""
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=config.hidden_dim, warmup_cache=False),
        d_model=config.hidden_dim,
        backbone_channel_list=config.backbone_channel_list,
        fpn_top_down_levels=[2, 3],
        fpn_interp_model="nearest",
    )
    return ImageEncoder(trunk=_hiera(config), neck=neck, scalp=1)


def _rope_attention(config: MaskDecoderConfig, kv_in_dim: int | None = None) -> SwitchableRoPEAttention:
    side = config.embedding_size
    return SwitchableRoPEAttention(
        embedding_dim=config.hidden_dim,
        num_heads=1,
        downsample_rate=1,
        dropout=config.dropout,
        kv_in_dim=kv_in_dim,
        rope_theta=10000.0,
        feat_sizes=(side, side),
        rope_k_repeat=kv_in_dim is not None,
        rope_grad=config.rope_grad,
    )


def build_memory_attention(config: MaskDecoderConfig) -> MemoryAttention:
    """Memory attention: RoPE self-attention and RoPE cross-attention to memories and object pointers."""
    layer = MemoryAttentionLayer(
        activation="relu",
        cross_attention=_rope_attention(config, kv_in_dim=config.memory_dim),
        d_model=config.hidden_dim,
        dim_feedforward=config.memory_attention_ffn_dim,
        dropout=config.dropout,
        pos_enc_at_attn=False,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        self_attention=_rope_attention(config),
    )
    return MemoryAttention(
        d_model=config.hidden_dim, pos_enc_at_input=True, layer=layer, num_layers=config.memory_attention_layers
    )


def build_memory_encoder(config: MaskDecoderConfig) -> MemoryEncoder:
    """Memory encoder: mask downsampler, two CXBlock fusers, projection to ``memory_dim``."""
    block = CXBlock(dim=config.hidden_dim, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True)
    return MemoryEncoder(
        out_dim=config.memory_dim,
        mask_downsampler=MaskDownSampler(embed_dim=config.hidden_dim, kernel_size=3, stride=2, padding=1),
        fuser=Fuser(block, num_layers=2),
        position_encoding=PositionEmbeddingSine(num_pos_feats=config.memory_dim, warmup_cache=False),
        in_dim=config.hidden_dim,
    )


@dataclass
class FrameFeatures:
    """Image-encoder features of ``T`` frames, flattened the way SAM 2's tracker reads them.

    Attributes:
        vision_feats: per FPN level (stride 4, 8, 16) ``(h*w, T, C_level)``; levels 0-1 are already projected by
            the mask decoder's ``conv_s0``/``conv_s1``.
        vision_pos_embeds: per level ``(h*w, T, hidden_dim)`` sine position encodings.
        feat_sizes: per level ``(h, w)``.
    """

    vision_feats: list[Tensor]
    vision_pos_embeds: list[Tensor]
    feat_sizes: list[tuple[int, int]]

    @property
    def num_frames(self) -> int:
        return self.vision_feats[-1].shape[1]

    def frame(self, index: int, num_objects: int) -> tuple[list[Tensor], list[Tensor]]:
        """Features and position encodings of one frame, expanded to ``(h*w, num_objects, C)`` per level."""
        feats = [x[:, index : index + 1].expand(-1, num_objects, -1) for x in self.vision_feats]
        pos = [x[:, index : index + 1].expand(-1, num_objects, -1) for x in self.vision_pos_embeds]
        return feats, pos


class UniPixelSAM2(SAM2Base):
    """SAM 2.1 with UniPixel's hidden prompt tokens and reference switches (MODEL.md §5.1).

    Args:
        config: sizes and switches; ``rope_grad``, ``mask_no_object_in_training`` and ``multimask_output`` select
            reference behaviour.
    """

    def __init__(self, config: MaskDecoderConfig) -> None:
        super().__init__(
            image_encoder=build_image_encoder(config),
            memory_attention=build_memory_attention(config),
            memory_encoder=build_memory_encoder(config),
            num_maskmem=config.num_maskmem,
            image_size=config.image_size,
            max_obj_ptrs_in_encoder=config.max_obj_ptrs_in_encoder,
            **{**SAM21_SWITCHES, "multimask_output_in_sam": config.multimask_output},
        )
        self.mask_no_object_in_training = config.mask_no_object_in_training
        self.decoding_for_loss = False
        """Set by :meth:`MaskDecoder.forward`: its logits feed the loss, so training NO_OBJ semantics apply."""

    @property
    def masks_no_object(self) -> bool:
        """Whether mask logits become -1024 where the object score is <= 0 (always at inference)."""
        return self.mask_no_object_in_training or not (self.training or self.decoding_for_loss)

    def encode_frames(self, frames: Tensor) -> FrameFeatures:
        """Run Hiera + FPN on ``frames: (T, 3, S, S)`` normalised SAM 2 inputs."""
        backbone_out = self.forward_image(frames)
        _, feats, pos, sizes = self._prepare_backbone_features(backbone_out)
        return FrameFeatures(feats, pos, sizes)

    def track(
        self,
        features: FrameFeatures,
        num_objects: int,
        hidden_inputs: Tensor | None = None,
        point_inputs: dict[str, Tensor] | None = None,
    ) -> Iterator[dict[str, Tensor]]:
        """Track ``num_objects`` objects prompted on frame 0 through all frames, in order.

        Args:
            features: encoded frames (:meth:`encode_frames`).
            num_objects: ``O``, the SAM 2 batch.
            hidden_inputs: ``(O, n, hidden_dim)`` prompt tokens for frame 0, or None.
            point_inputs: frame-0 points ``{"point_coords": (O, P, 2), "point_labels": (O, P)}``, or None.

        Yields:
            Per frame the outputs of :meth:`track_frame`.
        """
        memory: dict[str, dict[int, dict[str, Any]]] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        for index in range(features.num_frames):
            is_cond = index == 0
            out = self.track_frame(
                index,
                features,
                num_objects,
                memory,
                hidden_inputs=hidden_inputs if is_cond else None,
                point_inputs=point_inputs if is_cond else None,
            )
            memory["cond_frame_outputs" if is_cond else "non_cond_frame_outputs"][index] = {
                key: out[key] for key in ("maskmem_features", "maskmem_pos_enc", "obj_ptr")
            }
            self._forget_unreachable(memory["non_cond_frame_outputs"], index)
            yield out

    def _forget_unreachable(self, frames: dict[int, Any], index: int) -> None:
        # Frames further back than the memory bank and the pointer window are never read again.
        reach = max(self.num_maskmem, self.max_obj_ptrs_in_encoder)
        for old in [t for t in frames if t <= index - reach]:
            del frames[old]

    def track_frame(
        self,
        index: int,
        features: FrameFeatures,
        num_objects: int,
        memory: dict[str, dict[int, dict[str, Any]]],
        hidden_inputs: Tensor | None = None,
        point_inputs: dict[str, Tensor] | None = None,
    ) -> dict[str, Any]:
        """One tracking step (upstream ``track_step`` with the hidden tokens threaded through).

        Returns:
            ``multimask_logits (O, M, S, S)``, ``low_res_multimask_logits (O, M, S/4, S/4)``, ``ious (O, M)``,
            ``object_score_logits (O, 1)``, ``low_res_masks (O, 1, S/4, S/4)``, ``high_res_masks (O, 1, S, S)``
            (best mask by predicted IoU),
            and the memory entries ``maskmem_features``, ``maskmem_pos_enc``, ``obj_ptr``.
        """
        is_cond = not memory["cond_frame_outputs"]
        feats, pos = features.frame(index, num_objects)
        high_res_features = [
            x.permute(1, 2, 0).view(num_objects, x.size(2), *size)
            for x, size in zip(feats[:-1], features.feat_sizes[:-1], strict=True)
        ]
        pix_feat = self._prepare_memory_conditioned_features(
            frame_idx=index,
            is_init_cond_frame=is_cond,
            current_vision_feats=feats[-1:],
            current_vision_pos_embeds=pos[-1:],
            feat_sizes=features.feat_sizes[-1:],
            output_dict=memory,
            num_frames=features.num_frames,
        )
        low_multi, high_multi, ious, low_res, high_res, obj_ptr, scores = self._forward_sam_heads(
            pix_feat,
            point_inputs=point_inputs,
            high_res_features=high_res_features,
            multimask_output=self._use_multimask(is_cond, point_inputs),
            hidden_inputs=hidden_inputs,
        )
        maskmem_features, maskmem_pos_enc = self._encode_new_memory(
            feats, features.feat_sizes, high_res, scores, is_mask_from_pts=point_inputs is not None
        )
        return {
            "multimask_logits": high_multi,
            "low_res_multimask_logits": low_multi,
            "ious": ious,
            "object_score_logits": scores,
            "low_res_masks": low_res,
            "high_res_masks": high_res,
            "maskmem_features": maskmem_features,
            "maskmem_pos_enc": maskmem_pos_enc,
            "obj_ptr": obj_ptr,
        }

    def _encode_prompts(
        self, batch: int, point_inputs: dict[str, Tensor] | None, mask_inputs: Tensor | None, hidden: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        # Without points SAM 2 pads one empty point and the prompt encoder a second (no box): with hidden tokens
        # the decoder sees 2 not_a_point tokens + the hidden tokens, and the dense no_mask_embed.
        device = self.no_mem_embed.device
        if point_inputs is None:
            coords = torch.zeros(batch, 1, 2, device=device)
            labels = -torch.ones(batch, 1, dtype=torch.int32, device=device)
        else:
            coords, labels = point_inputs["point_coords"], point_inputs["point_labels"]
        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_inputs)
        if hidden is not None:
            sparse = torch.cat([sparse, hidden.to(sparse.dtype)], dim=1)
        return sparse, dense

    def _forward_sam_heads(
        self,
        backbone_features: Tensor,
        point_inputs: dict[str, Tensor] | None = None,
        mask_inputs: Tensor | None = None,
        high_res_features: list[Tensor] | None = None,
        multimask_output: bool = False,
        hidden_inputs: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        """SAM prompt encoder + mask decoder on ``backbone_features: (B, C, E, E)``; same outputs as upstream.

        ``hidden_inputs: (B, n, C)`` are appended to the sparse prompt embeddings. NO_OBJ masking follows
        :attr:`masks_no_object`.
        """
        batch = backbone_features.size(0)
        sparse, dense = self._encode_prompts(batch, point_inputs, mask_inputs, hidden_inputs)
        low_multi, ious, tokens, scores = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
        )
        is_object = scores > 0
        if self.masks_no_object:
            low_multi = torch.where(is_object[:, None, None], low_multi, NO_OBJ_SCORE)
        size = (self.image_size, self.image_size)
        high_multi = F.interpolate(low_multi.float(), size=size, mode="bilinear", align_corners=False)
        high_multi = high_multi.to(low_multi.dtype)
        best = ious.argmax(dim=-1)  # always 0 for a single mask
        rows = torch.arange(batch, device=best.device)
        token = tokens[rows, best] if tokens.size(1) > 1 else tokens[:, 0]
        appearing = is_object.to(scores.dtype)
        obj_ptr = appearing * self.obj_ptr_proj(token) + (1 - appearing) * self.no_obj_ptr
        return (
            low_multi,
            high_multi,
            ious,
            low_multi[rows, best].unsqueeze(1),
            high_multi[rows, best].unsqueeze(1),
            obj_ptr,
            scores,
        )
