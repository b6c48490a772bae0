"""Shared helpers of the benchmarks: what ran where, device timing and memory, JSON output and the printed table.

Every benchmark result carries :func:`environment` (machine, versions) next to its own configuration, so each
figure states where and how it was measured.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PEAK_BF16_TFLOPS: dict[str, float] = {"H200": 989.4, "H100": 989.4, "A100": 312.0}
"""Dense (no sparsity) bf16 tensor-core peak per GPU family, vendor datasheets (SXM parts), in TFLOP/s."""

PACKAGES = ("torch", "transformers", "lightning", "sam2", "peft", "numpy")


def environment(device: torch.device) -> dict[str, Any]:
    """Machine, accelerator and package versions of this process, for the record next to every figure."""
    env: dict[str, Any] = {
        "host_cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "device": str(device),
        "versions": {name: _version(name) for name in PACKAGES},
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "gpu_sm_count": props.multi_processor_count,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "peak_bf16_tflops": peak_bf16_tflops(device),
        }
    return env


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def peak_bf16_tflops(device: torch.device) -> float | None:
    """Datasheet dense bf16 peak of ``device`` (TFLOP/s), or None for a CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for family, peak in PEAK_BF16_TFLOPS.items() if family in name), None)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a host clock read after it covers that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds ``fn`` takes, device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def repeat_timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return [time_call(fn, device) for _ in range(repeats)]


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Median, fastest and mean of timings, in seconds."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "mean_s": statistics.fmean(seconds)}


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated device memory since the last reset (CUDA), or this process's peak resident set (CPU), GiB.

    The CPU figure is the process high-water mark since start (``ru_maxrss``), not since the last reset.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def free_device_memory(device: torch.device) -> None:
    """Return cached blocks to the driver so the next case starts from what is really held."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def write_json(path: str | Path, data: object) -> None:
    """Write ``data`` as indented JSON, creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, default=str) + "\n")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A fixed-width text table of ``rows`` restricted to ``columns`` (missing values print as ``-``)."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
