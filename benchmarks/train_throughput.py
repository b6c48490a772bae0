"""Training-step throughput: samples/s, tokens/s, model FLOPs utilisation and peak memory.

One step = forward (LM + SAM 2 mask loss) + backward + AdamW step on a referring-segmentation batch at the
reference sizes (``benchmarks.batches``), random weights, bf16 autocast over fp32 weights (Lightning's
``bf16-mixed``), the preset's attention implementation (SDPA), activation checkpointing off and on.

Model FLOPs of a step (the MFU numerator, recomputation excluded) are the analytic LLM and ViT FLOPs of
``benchmarks.flops`` plus everything else counted by ``FlopCounterMode`` on one step without checkpointing
(SAM 2, prompt encoder, pointer head); SAM 2 is also counted on its own as a check.

Run: ``python -m benchmarks.train_throughput --preset unipixel-3b --device cuda --json out/train.json``.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from benchmarks.batches import IMAGE_SIDE, VIDEO_FRAMES, VIDEO_SIDE, make_batch, visual_tokens
from benchmarks.common import (
    environment,
    free_device_memory,
    is_out_of_memory,
    peak_bf16_tflops,
    peak_memory_gib,
    repeat_timed,
    reset_peak_memory,
    summarize,
    time_call,
    write_json,
)
from benchmarks.flops import count_flops, grids_of, llm_flops, vision_flops
from benchmarks.profiling import phase_times, profile_call
from benchmarks.recipes import RECIPES, apply_recipe, recipe_training
from unipixel_pl.config import preset
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.types import UniPixelBatch


@dataclass(frozen=True)
class TrainCase:
    """One measured configuration."""

    recipe: str
    sample: str
    """``image`` or ``video``."""
    batch_size: int
    checkpointing: bool


def build_model(name: str, device: torch.device) -> LitUniPixel:
    """A randomly initialised preset, built directly on ``device`` in fp32, in train mode."""
    torch.manual_seed(0)
    with torch.device(device):
        model = LitUniPixel(preset(name))
        model.configure_model()
    return model.train()


def set_checkpointing(model: LitUniPixel, enabled: bool) -> None:
    """Non-reentrant activation checkpointing of every decoder layer and ViT block (what the config switch does)."""
    hf_model = model.backbone.hf_model
    if enabled:
        hf_model.activation_checkpointing_enable({"use_reentrant": False})
    else:
        hf_model.activation_checkpointing_disable()


def make_optimizer(model: LitUniPixel, device: torch.device) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=1e-6, fused=device.type == "cuda")


def forward_backward(model: LitUniPixel, batch: UniPixelBatch, mixed: bool) -> None:
    with torch.autocast(batch.input_ids.device.type, dtype=torch.bfloat16, enabled=mixed):
        loss = model(batch).loss
    loss.backward()


def train_step(model: LitUniPixel, batch: UniPixelBatch, optimizer: torch.optim.Optimizer, mixed: bool) -> None:
    optimizer.zero_grad(set_to_none=True)
    forward_backward(model, batch, mixed)
    optimizer.step()


def sam2_flops(model: LitUniPixel, batch: UniPixelBatch, mixed: bool) -> int:
    """Counted FLOPs of the batch's SAM 2 forward + loss backward, fed random prompt tokens."""
    decoder, cfg = model.mask_decoder, model.config.mask_decoder
    total = 0
    for frames, targets in zip(batch.sam_frames, batch.target_masks, strict=True):
        objects = min(targets.shape[1], model.config.loss.sample_objects)
        tokens = torch.randn(objects, cfg.prompt_tokens, cfg.hidden_dim, device=frames.device, requires_grad=True)

        def run(frames: torch.Tensor = frames, targets: torch.Tensor = targets[:, :objects], tokens=tokens) -> None:
            with torch.autocast(frames.device.type, dtype=torch.bfloat16, enabled=mixed):
                loss = decoder.loss(decoder(frames, tokens), targets)
            loss.backward()

        total += count_flops(run)
    model.zero_grad(set_to_none=True)
    return total


def step_flops(model: LitUniPixel, batch: UniPixelBatch, recipe: str, mixed: bool) -> dict[str, int]:
    """Model FLOPs of one step (checkpointing must be off): analytic LLM and ViT, counted rest, counted total."""
    backbone, training = model.config.backbone, recipe_training(recipe)
    llm = llm_flops(backbone, [batch.input_ids.shape[1]] * batch.batch_size, training)
    vit = vision_flops(backbone.vision, backbone.hidden_size, grids_of(batch.video_grid_thw), training)
    counted = count_flops(lambda: forward_backward(model, batch, mixed))
    model.zero_grad(set_to_none=True)
    sam2 = sam2_flops(model, batch, mixed)
    rest = counted - llm - vit  # SAM 2, prompt encoder and pointer head
    return {"llm": llm, "vision": vit, "sam2_counted": sam2, "rest_counted": rest, "counted_total": counted}


def measure(
    model: LitUniPixel, batch: UniPixelBatch, optimizer: torch.optim.Optimizer, steps: int, warmup: int, mixed: bool
) -> dict[str, Any]:
    """Time ``steps`` training steps after ``warmup`` ones; peak memory over the timed steps."""
    device = batch.input_ids.device
    for _ in range(warmup):
        train_step(model, batch, optimizer, mixed)
    reset_peak_memory(device)
    timings = repeat_timed(lambda: train_step(model, batch, optimizer, mixed), device, steps, warmup=0)
    return summarize(timings) | {"peak_memory_gib": peak_memory_gib(device)}


def forward_phases(model: LitUniPixel, batch: UniPixelBatch, optimizer: torch.optim.Optimizer, mixed: bool) -> dict:
    """Forward time of the ViT, the LLM and SAM 2 inside one step, next to the whole step's time."""
    parts = {
        "vision": model.backbone.hf_model.model.visual,
        "llm": model.backbone.hf_model.model.language_model,
        "sam2": model.mask_decoder,
    }
    with phase_times(parts, batch.input_ids.device) as phases:
        step_ms = 1000.0 * time_call(lambda: train_step(model, batch, optimizer, mixed), batch.input_ids.device)
    return phases | {"step_ms": step_ms}


def case_result(case: TrainCase, batch: UniPixelBatch, timing: dict, flops: dict, device: torch.device) -> dict:
    """Throughput figures of one case."""
    seconds = timing["median_s"]
    tokens = batch.batch_size * batch.input_ids.shape[1]
    model_flops = flops["counted_total"]
    peak = peak_bf16_tflops(device)
    achieved = model_flops / seconds / 1e12
    return (
        asdict(case)
        | timing
        | {
            "seq_len": batch.input_ids.shape[1],
            "visual_tokens": visual_tokens(batch),
            "samples_per_s": batch.batch_size / seconds,
            "tokens_per_s": tokens / seconds,
            "model_tflop_per_step": model_flops / 1e12,
            "flops": flops,
            "achieved_tflops": achieved,
            "mfu": achieved / peak if peak else None,
        }
    )


def sample_batch(name: str, sample: str, batch_size: int, sizes: dict[str, int]) -> UniPixelBatch:
    config = preset(name)
    if sample == "image":
        return make_batch(config, 1, sizes["image_side"], sizes["image_side"], batch_size)
    if sample == "video":
        return make_batch(config, sizes["frames"], sizes["video_side"], sizes["video_side"], batch_size)
    raise ValueError(f"unknown sample kind {sample!r}; use 'image' or 'video'")


def run_recipe(
    model: LitUniPixel, recipe: str, cases: Sequence[TrainCase], batches: dict, args: argparse.Namespace, sink: list
) -> None:
    """Measure every case of one recipe, appending results (or the error) to ``sink``."""
    device, mixed = torch.device(args.device), args.precision == "bf16-mixed"
    counts = apply_recipe(model, recipe)
    optimizer = make_optimizer(model, device)
    flops_cache: dict[tuple[str, int], dict] = {}
    for case in cases:
        batch = batches[(case.sample, case.batch_size)]
        record: dict[str, Any] = asdict(case) | {"preset": args.preset, "parameters": counts}
        try:
            key = (case.sample, case.batch_size)
            if key not in flops_cache:
                set_checkpointing(model, False)
                flops_cache[key] = step_flops(model, batch, recipe, mixed)
            set_checkpointing(model, case.checkpointing)
            timing = measure(model, batch, optimizer, args.steps, args.warmup, mixed)
            record |= case_result(case, batch, timing, flops_cache[key], device) | {"status": "ok"}
            if args.phases:
                record["phases"] = forward_phases(model, batch, optimizer, mixed)
        except Exception as error:  # noqa: BLE001 - one failing case must not lose the others' figures
            if not is_out_of_memory(error):
                raise
            record["status"] = "out of memory"
        finally:
            model.zero_grad(set_to_none=True)
            free_device_memory(device)
        sink.append(record | {"precision": args.precision, "attn": model.config.backbone.attn_implementation})
        print(_summary_line(record), flush=True)
        _save(args, sink)
    del optimizer
    gc.collect()
    free_device_memory(device)


def _summary_line(record: dict) -> str:
    if record["status"] != "ok":
        return f"{record['recipe']} {record['sample']} B={record['batch_size']}: {record['status']}"
    mfu = record["mfu"]
    return (
        f"{record['preset']} {record['recipe']} {record['sample']} B={record['batch_size']} "
        f"ckpt={record['checkpointing']} step={record['median_s'] * 1000:.1f}ms "
        f"samples/s={record['samples_per_s']:.2f} tokens/s={record['tokens_per_s']:.0f} "
        f"TFLOP/s={record['achieved_tflops']:.1f} MFU={'-' if mfu is None else f'{100 * mfu:.1f}%'} "
        f"peak={record['peak_memory_gib']:.1f}GiB"
    )


def _save(args: argparse.Namespace, results: list) -> None:
    if args.json:
        write_json(args.json, {"benchmark": "train_throughput", "environment": args.env, "results": results})


def profile_case(model: LitUniPixel, batch: UniPixelBatch, mixed: bool) -> dict:
    """Kernel summary of one step of the last recipe, checkpointing off."""
    set_checkpointing(model, False)
    optimizer = make_optimizer(model, batch.input_ids.device)
    train_step(model, batch, optimizer, mixed)
    return profile_call(lambda: train_step(model, batch, optimizer, mixed), batch.input_ids.device)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="unipixel-tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--samples", nargs="+", default=["image", "video"], choices=["image", "video"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1])
    parser.add_argument("--checkpointing", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--precision", default="bf16-mixed", choices=["bf16-mixed", "32"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--image-side", type=int, default=IMAGE_SIDE)
    parser.add_argument("--video-side", type=int, default=VIDEO_SIDE)
    parser.add_argument("--frames", type=int, default=VIDEO_FRAMES)
    parser.add_argument("--phases", action="store_true", help="also time the ViT / LLM / SAM 2 forward per case")
    parser.add_argument("--profile", action="store_true", help="kernel summary of one image step, last recipe")
    parser.add_argument("--json", default=None, help="write the results here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    args.env = environment(device)
    sizes = {"image_side": args.image_side, "video_side": args.video_side, "frames": args.frames}
    keys = [(s, b) for s in args.samples for b in args.batch_sizes]
    batches = {(s, b): sample_batch(args.preset, s, b, sizes).to(device) for s, b in keys}
    model = build_model(args.preset, device)
    results: list[dict] = []
    for recipe in [r for r in RECIPES if r in args.recipes]:  # "full" first: stage 3 adds adapters for good
        cases = [TrainCase(recipe, s, b, c == "on") for s, b in keys for c in args.checkpointing]
        run_recipe(model, recipe, cases, batches, args, results)
    report = {"benchmark": "train_throughput", "environment": args.env, "results": results}
    if args.profile:
        report["profile"] = profile_case(model, batches[keys[0]], args.precision == "bf16-mixed")
        print(report["profile"]["top_ops"], flush=True)
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
