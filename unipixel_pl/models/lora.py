"""LoRA on the backbone through peft: injection, adapter-only checkpoints, merge-and-unload (MODEL.md §8.3, §8.7).

Adapters are injected in place with ``peft.inject_adapter_in_model`` (no ``PeftModel`` wrapper), so every module
keeps its path: a target ``...self_attn.q_proj`` stays there, holding ``base_layer`` (the frozen Linear) and
``lora_A/lora_B.default``. Only Linear layers inside the backbone whose names end with a target suffix are
adapted: the LLM's self-attention q/k/v/o and the ViT's ``attn.qkv``/``attn.proj``; SAM 2's identically named
projections never are. Merging restores plain Linear layers with the exact pre-LoRA names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from unipixel_pl.config import LoraConfig

ADAPTER = "default"
"""peft's adapter name; it appears in parameter names (``lora_A.default.weight``)."""
LORA_MARKER = "lora_"
"""Substring of every adapter parameter name (the optimizer's LoRA group and ``trainable`` use it)."""


def lora_targets(module: nn.Module, suffixes: list[str]) -> list[str]:
    """Names (relative to ``module``) of the ``nn.Linear`` layers whose name ends with ``.<suffix>``."""
    return [
        name
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and any(name.endswith(f".{suffix}") for suffix in suffixes)
    ]


def inject_lora(module: nn.Module, config: LoraConfig) -> list[str]:
    """Add LoRA adapters to ``module`` in place and load ``config.adapter`` when set.

    peft freezes every non-adapter parameter of ``module``; the caller's freezing rule runs afterwards.

    Returns:
        The adapted layer names (relative to ``module``).

    Raises:
        ValueError: no layer matches ``config.targets``.
    """
    names = lora_targets(module, config.targets)
    if not names:
        raise ValueError(f"lora.targets {config.targets} match no Linear layer; use names such as 'q_proj'")
    peft_config = PeftLoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, bias="none", target_modules=names
    )
    inject_adapter_in_model(peft_config, module, adapter_name=ADAPTER)
    if config.adapter is not None:
        load_adapter(module, config.adapter)
    return names


def lora_layers(module: nn.Module) -> dict[str, LoraLayer]:
    """Every adapted layer of ``module`` by name."""
    return {name: child for name, child in module.named_modules() if isinstance(child, LoraLayer)}


@torch.no_grad()
def merge_and_unload(module: nn.Module) -> int:
    """Fold every adapter into its base weight (``W + alpha/r * B @ A``) and put the plain Linear back.

    Returns:
        The number of layers merged.
    """
    layers = lora_layers(module)
    for name, layer in layers.items():
        layer.merge(safe_merge=True)
        parent_name, _, child_name = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, child_name, layer.get_base_layer())
    if hasattr(module, "peft_config"):
        del module.peft_config
    return len(layers)


def lora_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """The adapter tensors of ``module`` (keys relative to it), detached and on the CPU."""
    return {key: value.detach().cpu() for key, value in module.state_dict().items() if LORA_MARKER in key}


def load_lora_state_dict(module: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Copy adapter tensors into ``module``; base weights are untouched.

    Raises:
        KeyError: ``state`` misses an adapter of ``module`` or holds a key that is not one (names listed).
    """
    expected = set(lora_state_dict(module))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise KeyError(
            f"adapter checkpoint does not fit the model: missing {missing[:5]} ({len(missing)} in all), "
            f"unexpected {unexpected[:5]} ({len(unexpected)} in all); inject LoRA with the same targets first"
        )
    module.load_state_dict(dict(state), strict=False)


def save_adapter(module: nn.Module, path: str | Path) -> None:
    """Write the adapters of ``module`` to one safetensors file (keys relative to ``module``)."""
    save_file({key: value.contiguous() for key, value in lora_state_dict(module).items()}, str(path))


def load_adapter(module: nn.Module, path: str | Path) -> None:
    """Load an adapter-only safetensors file written by :func:`save_adapter` for the same module."""
    load_lora_state_dict(module, load_file(str(path)))


def merge_lora_state(state: Mapping[str, Tensor], scaling: float) -> dict[str, Tensor]:
    """Merge adapters in a plain state dict: ``X.base_layer.*`` + ``X.lora_{A,B}`` -> ``X.*`` (no model needed).

    Args:
        state: a state dict of a model with injected LoRA (e.g. read from a training checkpoint).
        scaling: ``alpha / r`` of the run.

    Returns:
        The state dict of the merged model: the keys a model without LoRA has.
    """
    merged: dict[str, Tensor] = {}
    for key, value in state.items():
        if LORA_MARKER in key:
            continue
        prefix, found, rest = key.partition(".base_layer.")
        if not found:
            merged[key] = value
            continue
        if rest == "weight":
            down, up = (state[f"{prefix}.lora_{part}.{ADAPTER}.weight"].float() for part in ("A", "B"))
            value = (value.float() + scaling * up @ down).to(value.dtype)
        merged[f"{prefix}.{rest}"] = value
    return merged
