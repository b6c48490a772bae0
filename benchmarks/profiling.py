"""Where the time goes: forward time per model part, and a kernel-level summary of one profiled call.

:func:`phase_times` brackets the forward of named submodules with device events (host clocks on a CPU), so the
vision tower, the LLM and SAM 2 can be told apart inside one real step. :func:`profile_call` runs one call under
``torch.profiler`` and sums device time by kernel family (matrix products, attention, the rest), which shows
whether a step is bound by arithmetic, by small element-wise kernels or by the host launching them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import synchronize

KERNEL_FAMILIES = {
    "attention": re.compile(r"flash|fmha|attention|sdpa|softmax", re.I),
    "matmul": re.compile(r"gemm|cutlass|xmma|nvjet|wgmma|sm90_|cublas|addmm|\bmm\b|bmm|linear|conv", re.I),
}
"""Kernel-name patterns, tried in order (attention first: cuDNN's SDPA kernels also carry ``sm90``/``wgmma``)."""


class _Stopwatch:
    """Start/stop marks on the device stream (CUDA events) or the host clock, summed over calls."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.spans: list[tuple[Any, Any]] = []
        self._start: Any = None

    def _mark(self) -> Any:
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self) -> None:
        self._start = self._mark()

    def stop(self) -> None:
        self.spans.append((self._start, self._mark()))

    def total_ms(self) -> float:
        if self.device.type == "cuda":
            return sum(start.elapsed_time(end) for start, end in self.spans)
        return sum(end - start for start, end in self.spans) * 1000.0


@contextmanager
def phase_times(modules: dict[str, nn.Module], device: torch.device) -> Iterator[dict[str, float]]:
    """Time the forward calls of ``modules`` while the block runs; the yielded dict is filled on exit (ms)."""
    watches = {name: _Stopwatch(device) for name in modules}
    handles = []
    for name, module in modules.items():
        watch = watches[name]
        handles.append(module.register_forward_pre_hook(lambda *_, w=watch: w.start()))
        handles.append(module.register_forward_hook(lambda *_, w=watch: w.stop()))
    result: dict[str, float] = {}
    try:
        yield result
    finally:
        for handle in handles:
            handle.remove()
        synchronize(device)
        result.update({f"{name}_forward_ms": watch.total_ms() for name, watch in watches.items()})


def profile_call(fn: Callable[[], object], device: torch.device, top: int = 20) -> dict[str, Any]:
    """Run ``fn`` once under the profiler; device kernel time by family, busy fraction and the top operators.

    Returns:
        ``wall_ms``, ``kernel_ms`` (sum of device kernel time), ``busy`` (kernel / wall: far below 1 means the
        host or launches leave the device idle), ``kernels`` (launch count), ``families_ms`` and ``top_ops``
        (operators by total device time on a GPU, by CPU time on a CPU) as text.
    """
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        fn()
        synchronize(device)
        wall_ms = (time.perf_counter() - start) * 1000.0
    kernels = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    families = dict.fromkeys([*KERNEL_FAMILIES, "other"], 0.0)
    for event in kernels:
        family = next((name for name, rx in KERNEL_FAMILIES.items() if rx.search(event.key)), "other")
        families[family] += event.self_device_time_total / 1000.0
    kernel_ms = sum(families.values())
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return {
        "wall_ms": wall_ms,
        "kernel_ms": kernel_ms,
        "busy": kernel_ms / wall_ms if wall_ms else None,
        "kernels": sum(event.count for event in kernels),
        "families_ms": families,
        "top_ops": prof.key_averages().table(sort_by=sort_by, row_limit=top, max_name_column_width=60),
    }
