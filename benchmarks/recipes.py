"""Which parameters a benchmarked training step trains.

``full``: every parameter. ``stage3``: the project's stage-3 recipe (``configs/recipes/stage3-3b.yaml``, the
reference's joint SFT, ``reference/MODEL.md`` §8.1-8.3): LoRA from the recipe's ``model.lora`` injected with
``unipixel_pl.models.lora.inject_lora`` (LLM q/k/v/o, ViT ``attn.qkv``/``attn.proj``), and the recipe's
``optimizer.trainable`` names (embeddings / LM head, the prompt-encoder projections, ``seg_head``, all of SAM 2)
plus the adapters train; the LLM, ViT and merger base weights are frozen.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmarks.flops import Training
from unipixel_pl.config import LoraConfig
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.models.lora import LORA_MARKER, inject_lora
from unipixel_pl.models.optim import apply_trainable

RECIPES = ("full", "stage3")
STAGE3_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "recipes" / "stage3-3b.yaml"


def stage3_settings(path: Path = STAGE3_RECIPE) -> tuple[LoraConfig, list[str]]:
    """The LoRA settings and trainable-name list of a stage-3 recipe file."""
    model = yaml.safe_load(path.read_text())["model"]
    return LoraConfig(**model["lora"]), list(model["optimizer"]["trainable"])


def apply_recipe(model: LitUniPixel, recipe: str) -> dict[str, int]:
    """Set what trains in ``model`` (adding LoRA adapters for ``stage3``); returns parameter counts.

    Raises:
        ValueError: unknown ``recipe``.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown training recipe {recipe!r}; choose one of {RECIPES}")
    if recipe == "full":
        model.requires_grad_(True)
        return parameter_counts(model)
    lora, trainable = stage3_settings()
    inject_lora(model.backbone.hf_model, lora)
    names = [name for name, _ in model.named_parameters()]
    # A tied LM head is the embedding, named only once: drop recipe names that this preset does not have.
    apply_trainable(model, [LORA_MARKER, *(key for key in trainable if any(key in name for name in names))])
    return parameter_counts(model)


def parameter_counts(model: LitUniPixel) -> dict[str, int]:
    """Total, trainable and LoRA parameter counts, and the number of LoRA-adapted modules."""
    params = dict(model.named_parameters())
    return {
        "total": sum(p.numel() for p in params.values()),
        "trainable": sum(p.numel() for p in params.values() if p.requires_grad),
        "lora": sum(p.numel() for name, p in params.items() if LORA_MARKER in name),
        "lora_modules": sum(1 for name in params if name.endswith("lora_A.default.weight")),
    }


def recipe_training(recipe: str) -> Training:
    """The analytic-FLOP view of a recipe (stage 3: frozen base weights, trained embeddings, rank-128 LoRA)."""
    if recipe == "full":
        return Training()
    return Training(base_weights=False, embeddings=True, lora_rank=stage3_settings()[0].r)
