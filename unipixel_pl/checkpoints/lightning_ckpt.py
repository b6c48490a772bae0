"""Our training checkpoints (Lightning) -> config and consolidated weights, without trusting pickles.

Two layouts: a single ``.ckpt`` file (``torch.save`` of Lightning's checkpoint dict), and a sharded directory
written by ``ModelParallelStrategy`` (FSDP2): torch distributed-checkpoint files (``.metadata`` + ``*.distcp``,
the model under ``state_dict.*``) plus ``meta.pt`` with the rest of Lightning's dict (hyper-parameters included).
Every pickle is read restrictively: ``torch.load(weights_only=True)`` with only our config dataclasses allowed,
and the distributed-checkpoint index with an unpickler that only builds its own metadata classes. The model config
is the ``config`` hyper-parameter ``LitUniPixel`` saved; LoRA adapters are merged with its ``lora`` scaling.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import Tensor
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta, TensorStorageMetadata

from unipixel_pl.checkpoints.key_map import OURS_EMBED_TOKENS, OURS_LM_HEAD
from unipixel_pl.config import (
    BackboneConfig,
    GenerationConfig,
    LoraConfig,
    LossConfig,
    MaskDecoderConfig,
    OptimizerConfig,
    TokenIds,
    UniPixelConfig,
    VisionConfig,
    from_dict,
)
from unipixel_pl.models.lora import LORA_MARKER, merge_lora_state

SHARDED_METADATA = "meta.pt"
"""Lightning's non-tensor checkpoint entries beside a distributed checkpoint."""
DCP_INDEX = ".metadata"
_CONFIG_CLASSES = [
    UniPixelConfig,
    BackboneConfig,
    VisionConfig,
    TokenIds,
    MaskDecoderConfig,
    LossConfig,
    OptimizerConfig,
    GenerationConfig,
    LoraConfig,
]
"""The dataclasses ``LitUniPixel.save_hyperparameters`` may pickle: the only classes a checkpoint may build."""
_PICKLE_GLOBALS = {
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("collections", "OrderedDict"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "PureWindowsPath"),
}


def is_lightning_checkpoint(path: str | Path) -> bool:
    """A ``.ckpt`` file, or a directory holding a distributed checkpoint (``.metadata``)."""
    path = Path(path)
    return (path.is_file() and path.suffix == ".ckpt") or (path / DCP_INDEX).is_file()


def read_lightning_checkpoint(path: str | Path) -> tuple[UniPixelConfig, dict[str, Tensor]]:
    """The model config and full state dict (our keys, no tied ``lm_head`` alias) of a training checkpoint.

    Raises:
        FileNotFoundError: ``path`` is neither layout, or a sharded directory lacks ``meta.pt``.
        ValueError: the checkpoint has no ``config`` hyper-parameter (not a ``LitUniPixel`` checkpoint).
    """
    path = Path(path)
    if path.is_file():
        checkpoint = _safe_torch_load(path)
        state = checkpoint.get("state_dict", {})
    elif (path / DCP_INDEX).is_file():
        if not (path / SHARDED_METADATA).is_file():
            raise FileNotFoundError(f"sharded checkpoint {str(path)!r} has no {SHARDED_METADATA} (written by rank 0)")
        checkpoint = _safe_torch_load(path / SHARDED_METADATA)
        state = _read_sharded_state(path)
    else:
        raise FileNotFoundError(f"{str(path)!r} is neither a Lightning .ckpt file nor a sharded checkpoint directory")
    return _config_of(checkpoint, path), _without_tied_head(_merge_lora(state, checkpoint, path))


def _safe_torch_load(path: Path) -> dict[str, Any]:
    with torch.serialization.safe_globals(_CONFIG_CLASSES):
        return torch.load(path, map_location="cpu", weights_only=True)


def _config_of(checkpoint: dict[str, Any], path: Path) -> UniPixelConfig:
    config = checkpoint.get("hyper_parameters", {}).get("config")
    if config is None:
        raise ValueError(f"{str(path)!r} has no 'config' hyper-parameter: not a LitUniPixel training checkpoint")
    return config if isinstance(config, UniPixelConfig) else from_dict(config)


def _merge_lora(state: dict[str, Tensor], checkpoint: dict[str, Any], path: Path) -> dict[str, Tensor]:
    """Fold LoRA adapters into their base weights (``W + alpha/r * B @ A``), as the reference's export does."""
    if not any(LORA_MARKER in key for key in state):
        return state
    lora = checkpoint.get("hyper_parameters", {}).get("lora")
    if lora is None:
        raise ValueError(f"{str(path)!r} holds LoRA tensors but no 'lora' hyper-parameter to give their scaling")
    rank, alpha = (lora.r, lora.alpha) if isinstance(lora, LoraConfig) else (lora["r"], lora["alpha"])
    return merge_lora_state(state, alpha / rank)


def _without_tied_head(state: dict[str, Tensor]) -> dict[str, Tensor]:
    if (
        OURS_LM_HEAD in state
        and OURS_EMBED_TOKENS in state
        and torch.equal(state[OURS_LM_HEAD], state[OURS_EMBED_TOKENS])
    ):
        return {key: value for key, value in state.items() if key != OURS_LM_HEAD}
    return state


class _SafeMetadataReader(FileSystemReader):
    """Reads the distributed-checkpoint index with an unpickler limited to its own metadata classes."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        with open(Path(self.path) / DCP_INDEX, "rb") as stream:
            metadata = _MetadataUnpickler(stream).load()
        if not isinstance(metadata, Metadata):
            raise ValueError(f"{self.path}/{DCP_INDEX} does not hold distributed-checkpoint metadata")
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("torch.distributed.checkpoint.") or (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"distributed-checkpoint metadata refers to {module}.{name}, which is not allowed")


def _read_sharded_state(path: Path) -> dict[str, Tensor]:
    """The ``state_dict.*`` tensors of a distributed checkpoint, gathered into full CPU tensors."""
    reader = _SafeMetadataReader(str(path))
    prefix = "state_dict."
    entries = reader.read_metadata().state_dict_metadata
    state = {
        key[len(prefix) :]: torch.empty(meta.size, dtype=meta.properties.dtype)
        for key, meta in entries.items()
        if key.startswith(prefix) and isinstance(meta, TensorStorageMetadata)
    }
    dcp.load({"state_dict": state}, storage_reader=reader)
    return state
