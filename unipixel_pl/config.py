"""Typed configuration of UniPixel and its named presets.

Every field is a dataclass attribute with a docstring, so LightningCLI turns these classes into YAML, ``--help``
and ``--print_config`` directly. Three presets exist: ``unipixel-tiny`` (random, CPU tests and the demo),
``unipixel-3b`` and ``unipixel-7b`` (the published model sizes, see ``reference/MODEL.md`` §2 and §5.3).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

MemPooling = Literal["reference", "raster"]
RopeIndexRule = Literal["reference", "transformers"]

# Order in which Qwen2.5 appends its special tokens after the regular vocabulary, followed by UniPixel's three.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<|ref|>",
    "<|seg|>",
    "<|mem|>",
)
REF_TOKEN, SEG_TOKEN, MEM_TOKEN = "<|ref|>", "<|seg|>", "<|mem|>"
IGNORE_INDEX = -100


@dataclass
class TokenIds:
    """Ids of the special tokens the model relies on (Qwen2.5 numbering by default)."""

    endoftext: int = 151643
    """``<|endoftext|>``: bos and padding."""
    im_start: int = 151644
    im_end: int = 151645
    """``<|im_end|>``: end of a turn, the eos of generation."""
    vision_start: int = 151652
    vision_end: int = 151653
    image: int = 151655
    """``<|image_pad|>`` placeholder, one per merged image token."""
    video: int = 151656
    """``<|video_pad|>`` placeholder, one per merged video token."""
    ref: int = 151665
    seg: int = 151666
    mem: int = 151667

    @classmethod
    def after_vocabulary(cls, first_special_id: int) -> TokenIds:
        """Ids for a tokenizer whose special tokens follow ``SPECIAL_TOKENS`` from ``first_special_id`` on."""
        index = {name: first_special_id + i for i, name in enumerate(SPECIAL_TOKENS)}
        return cls(
            endoftext=index["<|endoftext|>"],
            im_start=index["<|im_start|>"],
            im_end=index["<|im_end|>"],
            vision_start=index["<|vision_start|>"],
            vision_end=index["<|vision_end|>"],
            image=index["<|image_pad|>"],
            video=index["<|video_pad|>"],
            ref=index[REF_TOKEN],
            seg=index[SEG_TOKEN],
            mem=index[MEM_TOKEN],
        )


@dataclass
class VisionConfig:
    """Qwen2.5-VL vision transformer (window attention ViT + 2x2 patch merger)."""

    depth: int = 32
    hidden_size: int = 1280
    num_heads: int = 16
    intermediate_size: int = 3420
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    window_size: int = 112
    """Window side in pixels (112 = 4x4 merged tokens)."""
    fullatt_block_indexes: list[int] = field(default_factory=lambda: [7, 15, 23, 31])
    tokens_per_second: int = 2


@dataclass
class BackboneConfig:
    """Qwen2.5-VL language model with its vision tower."""

    hidden_size: int = 2048
    num_hidden_layers: int = 36
    num_attention_heads: int = 16
    num_key_value_heads: int = 2
    intermediate_size: int = 11008
    vocab_size: int = 151936
    """Embedding rows (Qwen pads beyond the tokenizer length; UniPixel's tokens reuse padded rows)."""
    tie_word_embeddings: bool = True
    rope_theta: float = 1_000_000.0
    mrope_section: list[int] = field(default_factory=lambda: [16, 24, 24])
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 128000
    vision: VisionConfig = field(default_factory=VisionConfig)
    tokens: TokenIds = field(default_factory=TokenIds)
    attn_implementation: str = "sdpa"
    rope_index: RopeIndexRule = "reference"
    """3-D position rule: ``reference`` = transformers 4.53 (published weights), ``transformers`` = 5.x."""
    gradient_checkpointing: bool = False


@dataclass
class MaskDecoderConfig:
    """SAM 2.1 (Hiera trunk, FPN neck, SAM heads, memory attention and encoder) at UniPixel's input size."""

    image_size: int = 768
    hidden_dim: int = 256
    """SAM 2 width ``S``; each ``<|seg|>`` becomes ``prompt_tokens`` vectors of this size."""
    trunk_embed_dim: int = 112
    trunk_num_heads: int = 2
    trunk_stages: list[int] = field(default_factory=lambda: [2, 3, 16, 3])
    trunk_global_att_blocks: list[int] = field(default_factory=lambda: [12, 16, 20])
    trunk_window_spec: list[int] = field(default_factory=lambda: [8, 4, 14, 7])
    trunk_window_pos_embed_bkg_spatial_size: list[int] = field(default_factory=lambda: [14, 14])
    drop_path_rate: float = 0.1
    memory_attention_layers: int = 4
    memory_attention_ffn_dim: int = 2048
    memory_dim: int = 64
    dropout: float = 0.1
    num_maskmem: int = 7
    max_obj_ptrs_in_encoder: int = 16
    prompt_tokens: int = 2
    """Prompt tokens per ``<|seg|>`` produced by the pointer head."""
    rope_grad: bool = True
    """False reproduces the reference: memory-attention RoPE runs under ``no_grad`` (MODEL.md §11 #2)."""
    mask_no_object_in_training: bool = False
    """True = upstream SAM 2: NO_OBJ mask replacement in training too. False = the reference (MODEL.md §11 #3),
    our default: a replaced frame adds a large constant focal loss and gives its mask no gradient."""
    multimask_output: bool = True
    """True = SAM 2.1 and the reference: 3 candidate masks on every frame, the loss supervises the best one and the
    predicted IoU picks one at inference. False = one mask (SAM's single-mask token): a model trained from scratch
    then cannot satisfy the loss with one candidate per object while ignoring the prompt (docs/DEMO.md). Official
    checkpoints need True."""

    @property
    def backbone_channel_list(self) -> list[int]:
        """Hiera stage widths, deepest first (the FPN neck's input channels)."""
        return [self.trunk_embed_dim * 2**i for i in reversed(range(len(self.trunk_stages)))]

    @property
    def embedding_size(self) -> int:
        """Side of SAM 2's image embedding grid (stride 16)."""
        return self.image_size // 16


@dataclass
class LossConfig:
    """Weights of the SAM 2 mask loss and how the LM and mask losses combine."""

    focal: float = 100.0
    dice: float = 5.0
    iou: float = 5.0
    object_score: float = 5.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    lm: float = 1.0
    mask: float = 1.0
    sample_objects: int = 5
    """Supervise at most this many ``<|seg|>`` per sample (<= 0: all)."""
    global_object_count: bool = False
    """True = reference: normalise by the all-reduced mean object count (a collective every rank must reach)."""
    lm_reduction: Literal["sample", "token"] = "token"
    """LM loss: ``sample`` = mean over samples of per-sample token means (reference), ``token`` = over all tokens."""


@dataclass
class UniPixelConfig:
    """The whole model: backbone, prompt encoder settings, pointer head, mask decoder and loss."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    mask_decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    mem_pooling: MemPooling = "raster"
    """``<|mem|>`` pooling order: ``reference`` (window order, published weights) or ``raster`` (corrected)."""
    bf16_prompt_coords: bool = False
    """True = reference: in training, ``<|ref|>`` point/box coordinates are rounded to bfloat16 and shifted by the
    +0.5 pixel centre in bfloat16, as the reference's DeepSpeed input cast does (MODEL.md §11 #9: up to 2 px off;
    from 128 px on the shift is rounded too). It follows the prompt encoder's train mode, so a wholly frozen prompt
    encoder under ``optimizer.frozen_modules_eval`` keeps fp32. False (corrected): fp32 in training and inference."""
    temporal_features: int = 128
    """Random-Fourier features of the 1-D frame code (output width is twice this)."""


@dataclass
class OptimizerConfig:
    """AdamW with linear warmup and cosine decay; learning rates and freezing by parameter-name substring."""

    lr: float = 2e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_ratio: float = 0.03
    """Fraction of the total steps spent warming up linearly from 0."""
    module_lrs: dict[str, float] = field(default_factory=dict)
    """Learning rate per parameter-name substring, first match wins, e.g. ``{"mask_decoder": 5e-6}``."""
    trainable: list[str] | None = None
    """Parameter-name substrings that train; everything else is frozen. None trains everything."""
    frozen_modules_eval: bool = True
    """True (corrected): during training every module whose parameters are all frozen runs in eval mode, so a
    frozen SAM 2 (stage 2) has no dropout or drop-path. False = reference: frozen modules stay in train mode
    (MODEL.md §11 #11)."""


@dataclass
class LoraConfig:
    """Low-rank adapters (peft) on the backbone's attention projections; SAM 2 and the heads never get one.

    The defaults are the reference's stage-3 ``qkvo_all`` setting (``reference/MODEL.md`` §8.3).
    """

    r: int = 128
    alpha: float = 256.0
    """Scaling numerator: the update is ``(alpha / r) * B @ A``."""
    dropout: float = 0.1
    targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "attn.qkv", "attn.proj"]
    )
    """Linear layers of the backbone whose name ends with one of these (LLM self-attention, ViT attention)."""
    adapter: str | None = None
    """An adapter-only safetensors file loaded right after injection; its keys are relative to the transformers
    model, as ``unipixel_pl.models.lora.save_adapter(lit_model.backbone.hf_model, path)`` writes them."""


@dataclass
class GenerationConfig:
    """Greedy decoding; a mask is decoded for every ``<|seg|>`` in the prompt and every one generated."""

    max_new_tokens: int = 512


def _tiny() -> UniPixelConfig:
    vision = VisionConfig(
        depth=2,
        hidden_size=32,
        num_heads=2,
        intermediate_size=64,
        window_size=56,
        fullatt_block_indexes=[0],
        tokens_per_second=2,
    )
    backbone = BackboneConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=512,
        mrope_section=[4, 2, 2],
        max_position_embeddings=4096,
        vision=vision,
        tokens=TokenIds.after_vocabulary(480),
    )
    mask_decoder = MaskDecoderConfig(
        image_size=128,
        hidden_dim=32,
        trunk_embed_dim=16,
        trunk_num_heads=1,
        trunk_stages=[1, 2, 2, 1],
        trunk_global_att_blocks=[4],
        trunk_window_spec=[8, 4, 2, 2],
        trunk_window_pos_embed_bkg_spatial_size=[4, 4],
        drop_path_rate=0.0,
        memory_attention_layers=1,
        memory_attention_ffn_dim=64,
        memory_dim=16,
        dropout=0.0,
    )
    # the reference ties the frame code to SAM 2's width (hidden_dim / 2 features), as the official format assumes
    return UniPixelConfig(backbone=backbone, mask_decoder=mask_decoder, temporal_features=mask_decoder.hidden_dim // 2)


def _seven_b() -> UniPixelConfig:
    backbone = BackboneConfig(
        hidden_size=3584,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        intermediate_size=18944,
        vocab_size=152064,
        tie_word_embeddings=False,
    )
    return UniPixelConfig(backbone=backbone)


PRESETS = {
    "unipixel-tiny": _tiny,
    "unipixel-3b": UniPixelConfig,
    "unipixel-7b": _seven_b,
}


def preset(name: str) -> UniPixelConfig:
    """Return a fresh copy of the named preset.

    Raises:
        KeyError: ``name`` is not a preset; the message lists the known ones.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown UniPixel preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


def from_dict(data: dict[str, Any], cls: type = UniPixelConfig, path: str = "") -> Any:
    """Build a (nested) config dataclass from a plain mapping, rejecting unknown keys by their dotted name."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f" in {path!r}" if path else ""
        raise ValueError(f"unknown config key(s){where}: {unknown}; known keys: {sorted(known)}")
    values = {}
    for name, value in data.items():
        nested = _dataclass_type(cls, name)
        values[name] = from_dict(value, nested, f"{path}.{name}".lstrip(".")) if nested else value
    return cls(**values)


def _dataclass_type(cls: type, name: str) -> type | None:
    default = cls.__dataclass_fields__[name].default_factory  # type: ignore[attr-defined]
    if default is dataclasses.MISSING:
        return None
    sample = default()
    return type(sample) if dataclasses.is_dataclass(sample) else None
