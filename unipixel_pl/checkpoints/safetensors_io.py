"""Reading and writing (sharded) safetensors weights the way transformers lays them out.

One file ``model.safetensors``, or shards ``model-0000k-of-0000n.safetensors`` listed in
``model.safetensors.index.json`` (``{"metadata": {"total_size": ...}, "weight_map": {key: file}}``). safetensors
never unpickles anything, so reading an untrusted checkpoint is safe.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors.torch import load_file, save_file
from torch import Tensor

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
METADATA = {"format": "pt"}
"""What transformers writes into every safetensors header."""


def weight_files(checkpoint_dir: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory, in index order.

    Raises:
        FileNotFoundError: neither ``model.safetensors`` nor an index is present, or the index names a missing file.
    """
    index = checkpoint_dir / INDEX_FILE
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [checkpoint_dir / name for name in names]
        absent = [str(path) for path in files if not path.is_file()]
        if absent:
            raise FileNotFoundError(f"{index} lists weight files that do not exist: {absent}")
        return files
    single = checkpoint_dir / SINGLE_FILE
    if single.is_file():
        return [single]
    raise FileNotFoundError(
        f"no {SINGLE_FILE} or {INDEX_FILE} in {str(checkpoint_dir)!r}; the weights must be safetensors (pickled "
        ".bin/.pt weights are refused: loading them could run arbitrary code)"
    )


def read_weights(checkpoint_dir: Path) -> dict[str, Tensor]:
    """Every tensor of a checkpoint directory, dtypes as stored.

    Raises:
        ValueError: two shards hold the same key.
    """
    state: dict[str, Tensor] = {}
    for path in weight_files(checkpoint_dir):
        shard = load_file(str(path))
        repeated = sorted(set(shard) & set(state))
        if repeated:
            raise ValueError(f"{path.name} repeats keys found in another shard: {repeated}")
        state.update(shard)
    return state


def write_weights(state: dict[str, Tensor], out_dir: Path, max_shard_size: int | str = "5GB") -> list[Path]:
    """Write ``state`` as one file or shards plus an index (transformers' layout); returns the files written.

    Tensors must not share memory (drop tied weights first).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    split = split_torch_state_dict_into_shards(
        state, filename_pattern="model{suffix}.safetensors", max_shard_size=max_shard_size
    )
    written = []
    for filename, keys in split.filename_to_tensors.items():
        path = out_dir / filename
        save_file({key: state[key].contiguous() for key in keys}, str(path), metadata=METADATA)
        written.append(path)
    if split.is_sharded:
        index = {
            "metadata": {"total_size": _total_size(state)},
            "weight_map": dict(sorted(split.tensor_to_filename.items())),
        }
        (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return written


def cast_floating(state: dict[str, Tensor], dtype: torch.dtype | None) -> dict[str, Tensor]:
    """``state`` with every floating-point tensor cast to ``dtype`` (None: unchanged)."""
    if dtype is None:
        return dict(state)
    return {key: value.to(dtype) if value.is_floating_point() else value for key, value in state.items()}


def _total_size(state: dict[str, Tensor]) -> int:
    return sum(value.numel() * value.element_size() for value in state.values())
