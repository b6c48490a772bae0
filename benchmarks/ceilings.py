"""The device's measured ceilings: dense bf16 matrix-product rate and copy bandwidth, next to the datasheet peak.

MFU is quoted against the datasheet peak; this measured matrix rate (random operands, never zeros) says how
much of that a large plain GEMM reaches on the same machine.

Run: ``python -m benchmarks.ceilings --json out/ceilings.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from benchmarks.common import environment, repeat_timed, summarize, write_json


def matmul_tflops(device: torch.device, size: int, repeats: int = 10) -> float:
    """Median rate of ``size``-cubed bf16 matrix products on random operands (TFLOP/s)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    seconds = summarize(repeat_timed(lambda: a @ b, device, repeats, warmup=3))["median_s"]
    return 2 * size**3 / seconds / 1e12


def copy_bandwidth_gbps(device: torch.device, mebibytes: int, repeats: int = 10) -> float:
    """Median device-to-device copy rate, bytes read plus bytes written (GB/s)."""
    source = torch.randn(mebibytes * 2**18, device=device)
    target = torch.empty_like(source)
    seconds = summarize(repeat_timed(lambda: target.copy_(source), device, repeats, warmup=3))["median_s"]
    return 2 * source.numel() * source.element_size() / seconds / 1e9


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--matmul-size", type=int, default=None, help="default 8192 on a GPU, 512 on a CPU")
    parser.add_argument("--copy-mib", type=int, default=None, help="default 2048 on a GPU, 64 on a CPU")
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    size = args.matmul_size or (8192 if gpu else 512)
    mib = args.copy_mib or (2048 if gpu else 64)
    report = {
        "benchmark": "ceilings",
        "environment": environment(device),
        "matmul_size": size,
        "matmul_dtype": "bf16" if gpu else "fp32",
        "matmul_tflops": matmul_tflops(device, size),
        "copy_mib": mib,
        "copy_gbps": copy_bandwidth_gbps(device, mib),
    }
    print(
        f"matmul {size}^3 {report['matmul_dtype']}: {report['matmul_tflops']:.1f} TFLOP/s; "
        f"copy {mib} MiB: {report['copy_gbps']:.0f} GB/s",
        flush=True,
    )
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
