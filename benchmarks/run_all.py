"""Run a set of benchmarks, print one table per benchmark and write every result to one JSON file.

Profiles: ``cpu-smoke`` (the tiny preset at toy sizes: what CI runs, seconds), ``cpu`` (the tiny preset at the
reference sizes) and ``gpu`` (3B and 7B with random weights at the reference sizes; ceilings, training, image
query latency, SAM 2 propagation). With ``--isolate`` (default for ``gpu``) every job runs in its own process
under its own time limit, within an overall ``--budget``; a job that fails or runs out of time is recorded and
the next one runs. The whole ``gpu`` profile needs about 15 minutes on an H200; ``--only`` splits it into runs
that fit a shorter lease (``benchmarks/RESULTS.md`` lists the commands used).

Run: ``python -m benchmarks.run_all --profile gpu --out results/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import format_table, write_json


@dataclass(frozen=True)
class Job:
    """One benchmark invocation: ``python -m {module} {argv} --json {out}/{name}.json``."""

    name: str
    module: str
    argv: tuple[str, ...]
    timeout_s: int


TRAIN, INFER, SAM2, CEIL = (
    f"benchmarks.{m}" for m in ("train_throughput", "inference_latency", "sam2_propagation", "ceilings")
)
TINY = ("--preset", "unipixel-tiny")
SMOKE_TRAIN = (*TINY, "--video-side", "56", "--frames", "2", "--steps", "1", "--warmup", "0", "--precision", "32")

PROFILES: dict[str, tuple[Job, ...]] = {
    "cpu-smoke": (
        Job("ceilings", CEIL, ("--matmul-size", "64", "--copy-mib", "1"), 60),
        Job(
            "train-tiny",
            TRAIN,
            (*SMOKE_TRAIN, "--recipes", "stage3", "--samples", "video", "--checkpointing", "on", "--phases"),
            120,
        ),
        Job(
            "inference-tiny",
            INFER,
            (*TINY, "--sizes", "56x56", "--new-tokens", "2", "--repeats", "1", "--warmup", "0"),
            60,
        ),
        Job(
            "sam2-tiny",
            SAM2,
            (*TINY, "--frames", "2", "--chunk", "2", "--long-frames", "3", "--frame-size", "72x128", "--repeats", "1"),
            60,
        ),
    ),
    "cpu": (
        Job("ceilings", CEIL, (), 120),
        Job("train-tiny", TRAIN, (*TINY, "--steps", "3", "--phases"), 1800),
        Job("inference-tiny", INFER, (*TINY, "--repeats", "3"), 900),
        Job("sam2-tiny", SAM2, (*TINY, "--frames", "16", "--long-frames", "64"), 900),
    ),
    "gpu": (
        Job("ceilings", CEIL, (), 60),
        Job("train-3b", TRAIN, ("--preset", "unipixel-3b", "--phases", "--profile"), 300),
        Job("inference-3b", INFER, ("--preset", "unipixel-3b", "--profile"), 120),
        Job("sam2-b+", SAM2, ("--preset", "unipixel-3b", "--profile"), 120),
        Job("train-3b-b4", TRAIN, ("--preset", "unipixel-3b", "--recipes", "stage3", "--batch-sizes", "4"), 240),
        Job("train-7b", TRAIN, ("--preset", "unipixel-7b", "--recipes", "stage3"), 180),
    ),
}


def run_job(job: Job, scratch: Path, isolate: bool, timeout_s: float) -> dict:
    """Run one job, its JSON written under ``scratch``; returns that report, or a record of why there is none."""
    target = scratch / f"{job.name}.json"
    argv = [*job.argv, "--json", str(target)]
    start = time.perf_counter()
    if not isolate:
        importlib.import_module(job.module).main(argv)
        return json.loads(target.read_text()) | {"seconds": time.perf_counter() - start}
    try:
        completed = subprocess.run([sys.executable, "-m", job.module, *argv], timeout=timeout_s, check=False)
        status = "ok" if completed.returncode == 0 else f"exit code {completed.returncode}"
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout_s:.0f} s"
    report = json.loads(target.read_text()) if target.is_file() else {"benchmark": job.module}
    return report | {"job_status": status, "seconds": time.perf_counter() - start}


def run_profile(jobs: Sequence[Job], out: Path, scratch: Path, isolate: bool, budget_s: float) -> dict[str, dict]:
    """Run ``jobs`` in order within ``budget_s``; a job gets the smaller of its own limit and what is left.

    ``out/results.json`` holds every report so far after each job, so a run cut short keeps what it measured.
    """
    deadline = time.perf_counter() + budget_s
    reports: dict[str, dict] = {}
    for job in jobs:
        left = deadline - time.perf_counter()
        if left < 20:
            reports[job.name] = {"benchmark": job.module, "job_status": "skipped: overall budget spent"}
            continue
        print(f"=== {job.name}: python -m {job.module} {' '.join(job.argv)}", flush=True)
        reports[job.name] = run_job(job, scratch, isolate, min(job.timeout_s, left))
        write_json(out / "results.json", reports)
    return reports


def tables(reports: dict[str, dict]) -> str:
    """One text table per job (training, inference, SAM 2, ceilings), headed by its device and status."""
    sections = []
    for name, report in reports.items():
        build_rows, columns = ROW_BUILDERS.get(report.get("benchmark"), (lambda _: [], ()))
        rows = build_rows(report)
        env = report.get("environment", {})
        header = f"[{name}] {env.get('gpu', env.get('device', ''))} status: {report.get('job_status', 'ok')}"
        sections.append(header + "\n" + (format_table(rows, columns) if rows else "(no results)"))
    return "\n\n".join(sections)


def _train_rows(report: dict) -> list[dict]:
    rows = []
    for r in report.get("results", []):
        mfu = r.get("mfu")
        checkpointing = "on" if r["checkpointing"] else "off"
        rows.append(
            {
                "case": f"{r['preset']} {r['recipe']} {r['sample']} B={r['batch_size']} ckpt={checkpointing}",
                "status": r.get("status"),
                "seq": r.get("seq_len"),
                "step_ms": None if r.get("median_s") is None else 1000 * r["median_s"],
                "samples/s": r.get("samples_per_s"),
                "tokens/s": r.get("tokens_per_s"),
                "TFLOP/step": r.get("model_tflop_per_step"),
                "TFLOP/s": r.get("achieved_tflops"),
                "MFU%": None if mfu is None else 100 * mfu,
                "peak_GiB": r.get("peak_memory_gib"),
            }
        )
    return rows


def _inference_rows(report: dict) -> list[dict]:
    keys = ("prefill_ms", "decode_ms", "mask_ms", "total_ms", "greedy_generate_ms", "peak_memory_gib")
    return [
        {"case": f"{r['preset']} {r['size']} vis={r['visual_tokens']} new={r['new_tokens']}"} | {k: r[k] for k in keys}
        for r in report.get("results", [])
    ]


def _sam2_rows(report: dict) -> list[dict]:
    rows = []
    if "clip" in report:
        clip = report["clip"]
        rows.append({"case": f"{report['preset']} {clip['frames']} frames at {clip['image_size']} px"} | clip)
    for record in report.get("long_video", []):
        rows.append({"case": f"{record['frames']} frames, encode {record['encode']}"} | record)
    return rows


def _ceiling_rows(report: dict) -> list[dict]:
    return [{k: report.get(k) for k in ("matmul_dtype", "matmul_size", "matmul_tflops", "copy_gbps")}]


ROW_BUILDERS = {
    "train_throughput": (
        _train_rows,
        ("case", "status", "seq", "step_ms", "samples/s", "tokens/s", "TFLOP/step", "TFLOP/s", "MFU%", "peak_GiB"),
    ),
    "inference_latency": (
        _inference_rows,
        ("case", "prefill_ms", "decode_ms", "mask_ms", "total_ms", "greedy_generate_ms", "peak_memory_gib"),
    ),
    "sam2_propagation": (
        _sam2_rows,
        ("case", "encode_fps", "propagate_fps", "end_to_end_fps", "status", "fps", "peak_memory_gib"),
    ),
    "ceilings": (_ceiling_rows, ("matmul_dtype", "matmul_size", "matmul_tflops", "copy_gbps")),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu-smoke", choices=sorted(PROFILES))
    parser.add_argument("--out", default="benchmark-results", help="folder of results.json")
    parser.add_argument("--scratch", default=None, help="folder of the per-job JSON files (default: OUT/jobs)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these job names")
    parser.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one process per job (default: on for gpu, off otherwise)",
    )
    parser.add_argument("--budget", type=float, default=540.0, help="overall seconds for all jobs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    args = parse_args(argv)
    jobs = [job for job in PROFILES[args.profile] if args.only is None or job.name in args.only]
    isolate = args.profile == "gpu" if args.isolate is None else args.isolate
    out = Path(args.out)
    scratch = Path(args.scratch) if args.scratch else out / "jobs"
    reports = run_profile(jobs, out, scratch, isolate, args.budget)
    print("\n" + tables(reports), flush=True)
    write_json(out / "results.json", reports)
    return reports


if __name__ == "__main__":
    main()
