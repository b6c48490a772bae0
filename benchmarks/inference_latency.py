"""Image query latency: prefill (ViT + LLM over the prompt) + greedy decode of a short answer + one SAM 2 mask.

The phases mirror ``unipixel_pl.models.generation.greedy_generate`` step for step (one host read of the argmax
per token, KV cache, position ``max + 1`` per step), but always decode ``--new-tokens`` tokens, since a random
model would stop at an arbitrary point; the mask is decoded from the last hidden state, as for a generated
``<|seg|>``. ``greedy_generate`` itself is timed too (it may stop earlier at a random ``<|im_end|>``).

Precision ``bf16``: the backbone (LLM + ViT) holds bf16 weights and everything runs under bf16 autocast (SAM 2,
prompt encoder and pointer head keep fp32 weights; the SAM 2 point encoder needs fp32 buffers). ``32``: fp32.

Run: ``python -m benchmarks.inference_latency --preset unipixel-3b --device cuda --json out/inference.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from contextlib import AbstractContextManager

import torch

from benchmarks.batches import INFERENCE_BUDGET_FRAMES, make_batch, visual_tokens
from benchmarks.common import (
    environment,
    peak_memory_gib,
    repeat_timed,
    reset_peak_memory,
    summarize,
    synchronize,
    time_call,
    write_json,
)
from benchmarks.flops import INFERENCE, grids_of, llm_flops, vision_flops
from benchmarks.profiling import profile_call
from unipixel_pl.config import preset
from unipixel_pl.models.generation import decode_step, greedy_generate, single_sample
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.types import UniPixelBatch

DEFAULT_SIZES = ("1260x1260", "896x672")
"""(width x height) 2025 visual tokens (the largest square of the training budget) and 768 (a 4:3 photo)."""


def build_inference_model(name: str, device: torch.device, precision: str) -> LitUniPixel:
    """A random preset in eval mode; with ``bf16`` the backbone weights are cast to bf16."""
    torch.manual_seed(0)
    with torch.device(device):
        model = LitUniPixel(preset(name))
        model.configure_model()
    if precision == "bf16":
        model.backbone.to(torch.bfloat16)
    return model.eval()


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def query_sample(name: str, width: int, height: int, device: torch.device) -> UniPixelBatch:
    """One image referring-segmentation conversation at the inference pixel budget (16 frames, DATA.md §4.2)."""
    batch = make_batch(preset(name), 1, height, width, budget_frames=INFERENCE_BUDGET_FRAMES)
    return single_sample(batch, 0).to(device)


@torch.no_grad()
def query_phases(model: LitUniPixel, sample: UniPixelBatch, new_tokens: int) -> dict[str, float]:
    """Milliseconds of prefill, ``new_tokens`` decode steps and one mask, for a batch of one."""
    device = sample.input_ids.device
    phases: dict[str, float] = {}
    out = None

    def prefill() -> None:
        nonlocal out
        out = model.run_backbone(sample, use_cache=True)

    phases["prefill_ms"] = 1000.0 * time_call(prefill, device)
    state: list[torch.Tensor] = []
    phases["decode_ms"] = 1000.0 * time_call(lambda: state.append(_decode(model, sample, out, new_tokens)), device)
    frames = sample.sam_frames[0]
    size = (int(frames.shape[-2]), int(frames.shape[-1]))
    prompt = model.pointer_head(state[0])
    phases["mask_ms"] = 1000.0 * time_call(lambda: model.mask_decoder.segment(frames, prompt, size), device)
    phases["total_ms"] = phases["prefill_ms"] + phases["decode_ms"] + phases["mask_ms"]
    return phases


def _decode(model: LitUniPixel, sample: UniPixelBatch, out: object, new_tokens: int) -> torch.Tensor:
    """``greedy_generate``'s decode loop without its stop test; returns the last ``(1, D)`` hidden state."""
    attention = sample.attention_mask
    position = sample.position_ids.max() + 1
    for _ in range(new_tokens):
        step = torch.tensor([[int(out.logits[0, -1].argmax())]], device=attention.device)
        out, attention = decode_step(model, step, attention, position, out)
        position = position + 1
    return out.hidden_states[0, -1:]


def measure_size(model: LitUniPixel, sample: UniPixelBatch, args: argparse.Namespace) -> dict:
    """Median phases over repeats, the ``greedy_generate`` time, prefill FLOPs and peak memory."""
    device = sample.input_ids.device
    with autocast(device, args.precision):
        for _ in range(args.warmup):
            query_phases(model, sample, args.new_tokens)
        reset_peak_memory(device)
        runs = [query_phases(model, sample, args.new_tokens) for _ in range(args.repeats)]
        peak = peak_memory_gib(device)
        generated: list[int] = []
        greedy = repeat_timed(
            lambda: generated.append(greedy_generate(model, sample, 0, args.new_tokens).sequences.shape[1]),
            device,
            args.repeats,
            warmup=0,
        )
    medians = {key: summarize([run[key] for run in runs])["median_s"] for key in runs[0]}
    return medians | {
        "greedy_generate_ms": 1000.0 * summarize(greedy)["median_s"],
        "greedy_generated_tokens": generated[-1],
        "peak_memory_gib": peak,
        "prefill_tflop": _prefill_flops(model, sample) / 1e12,
    }


def _prefill_flops(model: LitUniPixel, sample: UniPixelBatch) -> int:
    backbone = model.config.backbone
    llm = llm_flops(backbone, [sample.input_ids.shape[1]], INFERENCE)
    return llm + vision_flops(backbone.vision, backbone.hidden_size, grids_of(sample.video_grid_thw), INFERENCE)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="unipixel-tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="image sizes as WIDTHxHEIGHT")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "32"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="kernel summary of one query at the first size")
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    model = build_inference_model(args.preset, device, args.precision)
    report: dict = {"benchmark": "inference_latency", "environment": environment(device), "results": []}
    for size in args.sizes:
        sample = query_sample(args.preset, *_size(size), device)
        result = {"preset": args.preset, "size": size, "precision": args.precision, "new_tokens": args.new_tokens}
        result |= {"prompt_tokens": sample.input_ids.shape[1], "visual_tokens": visual_tokens(sample)}
        result |= measure_size(model, sample, args)
        report["results"].append(result)
        print(_summary_line(result), flush=True)
        if args.json:
            write_json(args.json, report)
    if args.profile:
        report["profile"] = _profile(model, query_sample(args.preset, *_size(args.sizes[0]), device), args)
        print(report["profile"]["top_ops"], flush=True)
    if args.json:
        write_json(args.json, report)
    return report


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def _profile(model: LitUniPixel, sample: UniPixelBatch, args: argparse.Namespace) -> dict:
    device = sample.input_ids.device
    with autocast(device, args.precision):
        synchronize(device)
        return profile_call(lambda: query_phases(model, sample, args.new_tokens), device)


def _summary_line(result: dict) -> str:
    return (
        f"{result['preset']} image {result['size']} ({result['visual_tokens']} visual tokens, "
        f"{result['prompt_tokens']} prompt tokens): prefill {result['prefill_ms']:.1f} ms, decode "
        f"{result['new_tokens']} tokens {result['decode_ms']:.1f} ms, mask {result['mask_ms']:.1f} ms, total "
        f"{result['total_ms']:.1f} ms; greedy_generate {result['greedy_generate_ms']:.1f} ms; "
        f"peak {result['peak_memory_gib']:.2f} GiB"
    )


if __name__ == "__main__":
    main()
