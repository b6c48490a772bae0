"""Which parameters a benchmarked training step trains.

``full``: every parameter. ``stage3``: the reference's stage-3 joint SFT (``reference/MODEL.md`` §8.1-8.3):
LoRA (r 128, alpha 256, dropout 0.1) on LLM q/k/v/o and ViT ``attn.qkv`` / ``attn.proj`` through ``peft``; full
token embeddings / LM head, the prompt encoder (``ref_*``, ``tem_*``, ``ref_encoder``, ``msk_proj``), the pointer
head (``seg_head``) and all of SAM 2 train; the LLM, ViT and merger base weights are frozen.
"""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model

from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.models.optim import apply_trainable

from benchmarks.flops import Training

RECIPES = ("full", "stage3")
LORA_RANK, LORA_ALPHA, LORA_DROPOUT = 128, 256, 0.1
LORA_TARGETS = r".*\.(q_proj|k_proj|v_proj|o_proj|attn\.qkv|attn\.proj)"
STAGE3_TRAINABLE = ["lora_", "embed_tokens", "lm_head", "prompt_encoder", "pointer_head", "mask_decoder"]


def apply_recipe(model: LitUniPixel, recipe: str) -> dict[str, int]:
    """Set what trains in ``model`` (adding LoRA adapters for ``stage3``); returns parameter counts.

    Raises:
        ValueError: unknown ``recipe``.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown training recipe {recipe!r}; choose one of {RECIPES}")
    if recipe == "full":
        for param in model.parameters():
            param.requires_grad_(True)
    else:
        config = LoraConfig(
            r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=LORA_DROPOUT, bias="none", target_modules=LORA_TARGETS
        )
        inject_adapter_in_model(config, model.backbone.hf_model)
        tied = model.config.backbone.tie_word_embeddings  # a tied LM head is the embedding, named only once
        apply_trainable(model, [key for key in STAGE3_TRAINABLE if not (tied and key == "lm_head")])
    return parameter_counts(model)


def parameter_counts(model: LitUniPixel) -> dict[str, int]:
    """Total, trainable and LoRA parameter counts, and the number of LoRA-adapted modules."""
    params = dict(model.named_parameters())
    return {
        "total": sum(p.numel() for p in params.values()),
        "trainable": sum(p.numel() for p in params.values() if p.requires_grad),
        "lora": sum(p.numel() for name, p in params.items() if "lora_" in name),
        "lora_modules": sum(1 for name in params if name.endswith("lora_A.default.weight")),
    }


def recipe_training(recipe: str) -> Training:
    """The analytic-FLOP view of a recipe."""
    if recipe == "full":
        return Training()
    return Training(base_weights=False, embeddings=True, lora_rank=LORA_RANK)
