"""unipixel-pl's own checkpoint directory: our config, our state-dict keys, our tokenizer and processor settings.

Layout::

    unipixel.json          {"format": "unipixel-pl", "format_version": 1, "config": {...}, "processor": {...}}
    model.safetensors      LitUniPixel.state_dict() keys (a tied lm_head left out), or shards + index
    tokenizer.json, tokenizer_config.json, chat_template.jinja

``config`` is :class:`UniPixelConfig` as nested mappings (``unipixel_pl.config.from_dict`` reads it back);
``processor`` holds the :class:`UniPixelProcessor` pixel budgets. Weights keep their dtype.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from unipixel_pl.checkpoints.key_map import check_state_dict
from unipixel_pl.checkpoints.materialize import build_model, expected_shapes, model_state
from unipixel_pl.checkpoints.safetensors_io import read_weights, write_weights
from unipixel_pl.config import UniPixelConfig, from_dict
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import load_tokenizer

CONFIG_FILE = "unipixel.json"
FORMAT = "unipixel-pl"
FORMAT_VERSION = 1
PROCESSOR_SETTINGS = ("min_pixels", "max_pixels", "budget_frames")


def is_ours(path: str | Path) -> bool:
    """Whether ``path`` is a unipixel-pl checkpoint directory (it has ``unipixel.json``)."""
    return (Path(path) / CONFIG_FILE).is_file()


def read_ours(
    checkpoint_dir: str | Path,
) -> tuple[UniPixelConfig, dict[str, Tensor], PreTrainedTokenizerFast, dict[str, int]]:
    """Config, checked weights (stored dtypes), tokenizer and processor settings of one of our checkpoints.

    Raises:
        FileNotFoundError: ``unipixel.json`` or weights are missing.
        ValueError: the file is not in our format, or a version this code cannot read.
        KeyError: keys or shapes do not fit the config (named).
    """
    path = Path(checkpoint_dir)
    if not is_ours(path):
        raise FileNotFoundError(f"{str(path)!r} is not a unipixel-pl checkpoint: no {CONFIG_FILE}")
    meta = json.loads((path / CONFIG_FILE).read_text())
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path / CONFIG_FILE} declares format {meta.get('format')!r} version {meta.get('format_version')!r}; "
            f"this unipixel-pl reads {FORMAT!r} version {FORMAT_VERSION}"
        )
    config = from_dict(meta["config"])
    state = read_weights(path)
    check_state_dict(state, expected_shapes(config), f"checkpoint {str(path)!r}")
    return config, state, load_tokenizer(path), dict(meta.get("processor", {}))


def load_ours(
    checkpoint_dir: str | Path, dtype: torch.dtype | None = torch.float32
) -> tuple[LitUniPixel, UniPixelProcessor]:
    """Load one of our checkpoint directories: the model (eval mode, ``dtype`` floats) and its processor."""
    config, state, tokenizer, settings = read_ours(checkpoint_dir)
    model = build_model(config, state, dtype).eval()
    return model, UniPixelProcessor.from_config(tokenizer, config.backbone, **settings)


def save_ours(
    model: LitUniPixel,
    processor: UniPixelProcessor,
    out_dir: str | Path,
    dtype: torch.dtype | None = None,
    max_shard_size: int | str = "5GB",
) -> None:
    """Write ``model`` and ``processor`` as one of our checkpoint directories (``dtype``: None keeps the model's)."""
    settings = {name: getattr(processor, name) for name in PROCESSOR_SETTINGS}
    write_ours(model.config, model_state(model, dtype), processor.tokenizer, out_dir, settings, max_shard_size)


def write_ours(
    config: UniPixelConfig,
    state: dict[str, Tensor],
    tokenizer: PreTrainedTokenizerFast,
    out_dir: str | Path,
    processor_settings: dict[str, int] | None = None,
    max_shard_size: int | str = "5GB",
) -> None:
    """Write a checkpoint directory from a config and a state dict in our key names (checked first)."""
    check_state_dict(state, expected_shapes(config), "model state")
    path = Path(out_dir)
    write_weights(state, path, max_shard_size)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(config),
        "processor": dict(processor_settings or {}),
    }
    (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    tokenizer.save_pretrained(str(path))
