"""UniPixel's prompt encoder: ``<|ref|>`` (points/boxes) and ``<|mem|>`` (mask-pooled features) embeddings.

Attribute names are the reference's so that state-dict keys match the published checkpoints (MODEL.md §3, §9.2):
``ref_encoder``, ``ref_proj_single``, ``ref_proj_double``, ``ref_proj``, ``tem_pe``, ``tem_emb``, ``tem_proj``,
``msk_proj``.
"""

from __future__ import annotations

import torch
from lightning import LightningModule
from sam2.modeling.sam.prompt_encoder import PromptEncoder as Sam2PromptEncoder
from torch import Tensor, nn

from unipixel_pl.config import MemPooling
from unipixel_pl.models import mask_memory
from unipixel_pl.models.fourier import RandomFourierEncoding1D, RandomFourierEncoding2D
from unipixel_pl.types import VisualPrompt

_LABELS = {1: [1], 2: [2, 3]}
"""SAM 2 labels by number of points: a positive click, or a box's top-left and bottom-right corners."""


class PromptEncoder(LightningModule):
    """Embeds visual prompts (``<|ref|>``) and object masks (``<|mem|>``) into the LLM width.

    ``<|ref|>`` (MODEL.md §4.3): SAM 2 prompt encoding of the point or box (+0.5 shift, one pad point, /image
    size) flattened to ``2S`` or ``3S`` -> ``ref_proj_single`` / ``ref_proj_double`` -> ``3S``; frame code
    ``t / (L − 1)`` -> 1-D random Fourier -> ``+ tem_emb`` -> ``tem_proj`` -> ``3S``; both -> ``ref_proj`` (GELU,
    Linear) -> ``D``. ``<|mem|>`` (MODEL.md §4.4): mean merger-MLP input under each mask slice -> ``msk_proj``.

    Args:
        llm_hidden: ``D``, the LLM width.
        sam_hidden: ``S``, SAM 2's prompt width.
        sam_image_size: SAM 2 input size in pixels (prompt coordinates lie in ``[0, sam_image_size]``).
        merger_width: ``V``, the vision merger-MLP input width (4 x vision hidden size).
        temporal_features: ``F`` of the 1-D Fourier code (width ``2F``; the reference uses ``F = S/2``).
        mem_pooling: ``reference`` pools window-ordered rows (published weights) or ``raster`` (corrected).
        bf16_coords_in_training: in train mode, round point/box coordinates through bfloat16 and shift them by the
            +0.5 pixel centre in bfloat16, as the reference's training does (MODEL.md §11 #9); eval mode and
            False keep fp32.
    """

    def __init__(
        self,
        llm_hidden: int,
        sam_hidden: int,
        sam_image_size: int,
        merger_width: int,
        temporal_features: int = 128,
        mem_pooling: MemPooling = "raster",
        bf16_coords_in_training: bool = False,
    ) -> None:
        super().__init__()
        if mem_pooling not in ("reference", "raster"):
            raise ValueError(f"mem_pooling must be 'reference' or 'raster', got {mem_pooling!r}")
        self.image_size = sam_image_size
        self.mem_pooling = mem_pooling
        self.bf16_coords_in_training = bf16_coords_in_training
        self.ref_encoder = _build_sam2_prompt_encoder(sam_hidden, sam_image_size)
        self.ref_proj_single = nn.Linear(2 * sam_hidden, 3 * sam_hidden)
        self.ref_proj_double = nn.Linear(3 * sam_hidden, 3 * sam_hidden)
        self.ref_proj = nn.Sequential(nn.GELU(), nn.Linear(6 * sam_hidden, llm_hidden))
        self.tem_pe = RandomFourierEncoding1D(temporal_features)
        self.tem_emb = nn.Embedding(1, 2 * temporal_features)
        self.tem_proj = nn.Linear(2 * temporal_features, 3 * sam_hidden)
        self.msk_proj = nn.Sequential(
            nn.Linear(merger_width, merger_width), nn.GELU(), nn.Linear(merger_width, llm_hidden)
        )
        self._reset_parameters()

    count_mem_tokens = staticmethod(mask_memory.count_mem_tokens)

    @torch.no_grad()
    def init_from_sam2(self, sam_prompt_encoder: nn.Module) -> None:
        """Copy SAM 2's prompt-encoder parameters into ``ref_encoder``; its own Fourier buffer is kept."""
        _copy_parameters(self.ref_encoder, sam_prompt_encoder, "ref_encoder")

    @torch.no_grad()
    def init_from_merger(self, merger_mlp: nn.Sequential) -> None:
        """Copy the vision merger MLP (Linear, GELU, Linear) into ``msk_proj``."""
        _copy_parameters(self.msk_proj, merger_mlp, "msk_proj")

    def encode_prompts(self, prompts: list[VisualPrompt], num_llm_frames: list[int]) -> Tensor:
        """Embed visual prompts; points and boxes may be mixed.

        Args:
            prompts: ``N`` prompts, coordinates in SAM 2 input pixels.
            num_llm_frames: per prompt, ``L = 2·g_t`` of its sample (the even-padded LLM frame count).

        Returns:
            ``(N, D)`` one row per prompt, in order.

        Raises:
            ValueError: a prompt has coordinates outside the SAM 2 image, a frame index outside ``[0, L)``, other
                than 1 or 2 points, or labels other than ``[1]`` / ``[2, 3]``.
        """
        self._check_prompts(prompts, num_llm_frames)
        if not prompts:
            linear = self.ref_proj[1]
            return linear.weight.new_zeros(0, linear.out_features)
        spatial = self._encode_spatial(prompts)
        temporal = self._encode_temporal(prompts, num_llm_frames)
        return self.ref_proj(torch.cat([spatial, temporal], dim=-1))

    def encode_memory(self, merger_inputs: Tensor, window_index: Tensor, refer_mask: Tensor) -> Tensor:
        """Embed one sample's ``<|mem|>`` objects.

        Args:
            merger_inputs: ``(N_b, V)`` the sample's merger-MLP inputs in window order.
            window_index: ``(N_b,)`` raster token index (local to the sample) of each row.
            refer_mask: ``(g_t, O, g_h/2, g_w/2)`` bool, raster order.

        Returns:
            ``(N_mem, D)`` object-major, then non-empty temporal slices (see ``count_mem_tokens``).

        Raises:
            ValueError: the mask grid does not match ``N_b``, or (``raster`` mode) ``window_index`` is not a
                permutation of ``0..N_b-1``.
        """
        if self.mem_pooling == "raster":
            merger_inputs = mask_memory.raster_order(merger_inputs, window_index)
        pooled = mask_memory.masked_slice_means(merger_inputs, refer_mask)
        return self.msk_proj(pooled.to(self.msk_proj[0].weight.dtype))

    def _encode_spatial(self, prompts: list[VisualPrompt]) -> Tensor:
        """``(N, 3S)``: SAM 2 sparse tokens of each prompt, flattened and projected (points and boxes batched)."""
        parts, order = [], []
        for num_points, proj in ((1, self.ref_proj_single), (2, self.ref_proj_double)):
            group = [i for i, prompt in enumerate(prompts) if prompt.coords.shape[0] == num_points]
            if group:
                parts.append(proj(self._sparse_tokens([prompts[i] for i in group]).flatten(1).to(proj.weight.dtype)))
                order.extend(group)
        rows = torch.cat(parts)
        return rows[torch.argsort(torch.tensor(order, device=rows.device))]

    def _sparse_tokens(self, prompts: list[VisualPrompt]) -> Tensor:
        """``(n, P + 1, S)`` SAM 2 prompt tokens of same-size prompts (the last one is the pad point)."""
        device = self.ref_proj_single.weight.device
        coords = torch.stack([prompt.coords for prompt in prompts]).to(device, self._coords_dtype())
        labels = torch.stack([prompt.labels for prompt in prompts]).to(device)
        sparse, _ = self.ref_encoder((coords, labels), None, None)
        return sparse

    def _coords_dtype(self) -> torch.dtype:
        # SAM 2 adds the +0.5 shift in the coordinates' dtype; its Fourier layer then computes in fp32 either way.
        return torch.bfloat16 if self.bf16_coords_in_training and self.training else torch.float32

    def _encode_temporal(self, prompts: list[VisualPrompt], num_llm_frames: list[int]) -> Tensor:
        """``(N, 3S)``: 1-D Fourier code of each prompt's frame, plus ``tem_emb``, through ``tem_proj``."""
        device = self.tem_emb.weight.device
        frames = torch.tensor([prompt.frame for prompt in prompts], dtype=torch.float32, device=device)
        lengths = torch.tensor(num_llm_frames, dtype=torch.float32, device=device)
        code = self.tem_pe(frames, lengths).to(self.tem_emb.weight.dtype) + self.tem_emb.weight
        return self.tem_proj(code)

    def _check_prompts(self, prompts: list[VisualPrompt], num_llm_frames: list[int]) -> None:
        if len(num_llm_frames) != len(prompts):
            raise ValueError(
                f"num_llm_frames has {len(num_llm_frames)} entries for {len(prompts)} prompts; give one "
                "L = 2·g_t per prompt"
            )
        for i, (prompt, length) in enumerate(zip(prompts, num_llm_frames, strict=True)):
            self._check_prompt(i, prompt, length)

    def _check_prompt(self, i: int, prompt: VisualPrompt, length: int) -> None:
        num_points = prompt.coords.shape[0] if prompt.coords.dim() == 2 else -1
        if num_points not in _LABELS or prompt.coords.shape[-1] != 2:
            raise ValueError(
                f"prompt {i} has coords of shape {tuple(prompt.coords.shape)}; use (1, 2) for a point or (2, 2) "
                "for a box"
            )
        if prompt.labels.tolist() != _LABELS[num_points]:
            raise ValueError(
                f"prompt {i} has labels {prompt.labels.tolist()}; use {_LABELS[num_points]} for "
                f"{'a point' if num_points == 1 else 'a box'}"
            )
        coords = prompt.coords.float()
        if not bool(((coords >= 0) & (coords <= self.image_size)).all()):
            raise ValueError(
                f"prompt {i} has coordinates {prompt.coords.tolist()} outside [0, {self.image_size}]; give (x, y) "
                f"in pixels of the {self.image_size}x{self.image_size} SAM 2 input"
            )
        if length < 2 or not 0 <= prompt.frame < length:
            raise ValueError(
                f"prompt {i} is on frame {prompt.frame} but its sample has L = {length} LLM frames; the frame "
                "must index the sampled LLM frames (0 <= frame < L, L = 2·g_t >= 2)"
            )

    def _reset_parameters(self) -> None:
        for module in (self.ref_proj_single, self.ref_proj_double, self.ref_proj, self.tem_proj, self.msk_proj):
            _xavier_linears(module)
        nn.init.normal_(self.tem_emb.weight, mean=0.0, std=0.02)


def _build_sam2_prompt_encoder(sam_hidden: int, sam_image_size: int) -> Sam2PromptEncoder:
    """SAM 2's prompt encoder whose Fourier layer (same drawn matrix) is swapped for the fp32 variant."""
    embedding = sam_image_size // 16
    encoder = Sam2PromptEncoder(
        embed_dim=sam_hidden,
        image_embedding_size=(embedding, embedding),
        input_image_size=(sam_image_size, sam_image_size),
        mask_in_chans=16,
    )
    drawn = encoder.pe_layer.positional_encoding_gaussian_matrix
    encoder.pe_layer = RandomFourierEncoding2D(sam_hidden // 2, drawn)
    return encoder


def _xavier_linears(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def _copy_parameters(target: nn.Module, source: nn.Module, name: str) -> None:
    """Copy every parameter of ``source`` into the same-named, same-shaped parameter of ``target``."""
    ours = dict(target.named_parameters())
    theirs = dict(source.named_parameters())
    if ours.keys() != theirs.keys():
        raise ValueError(
            f"cannot initialise {name}: source parameters {sorted(theirs)} differ from {sorted(ours)}; pass the "
            "matching module"
        )
    for key, param in ours.items():
        if param.shape != theirs[key].shape:
            raise ValueError(
                f"cannot initialise {name}.{key}: source shape {tuple(theirs[key].shape)} != {tuple(param.shape)}; "
                "the source was built with other sizes"
            )
        param.copy_(theirs[key])
