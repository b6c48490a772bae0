"""Samples per second of the full training data pipeline, per DataLoader worker, on the synthetic corpus.

Run: ``python -m benchmarks.data_pipeline [--image-size 448] [--steps 200] [--workers 2] [--json out/data.json]``.

Writes a synthetic shard set (``--records`` records, half images, half ``--video-frames``-frame videos, every task
family), then times ``UniPixelDataModule``'s training loader: read the tar, decode the sampled JPEG frames and the
masks at the sampled frames, sample frames, template, draw prompts, Qwen processing (tokens, mRoPE, smart resize of
the uint8 frames when their size changes), collate into a batch of uint8 frames and original-size masks. One
process with ``num_workers=0`` *is* one worker; with ``--workers W`` the rate of W workers is divided by W.

A per-stage breakdown (one process, same records) follows, with the device half for reference: the CLIP
normalisation + patchify and the SAM 2 resize + normalisation of frames and target masks that
``LitUniPixel.prepare_batch`` runs on the accelerator after the transfer (timed here on the CPU, one thread).
Tokens use the tiny tokenizer (the sequence layout, not the vocabulary, sets the cost).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from benchmarks.common import environment, format_table, write_json
from unipixel_pl.config import preset
from unipixel_pl.datamodules.build import build_sample
from unipixel_pl.datamodules.datamodule import UniPixelDataModule
from unipixel_pl.datamodules.frames import decode_frames
from unipixel_pl.datamodules.health import SkipPolicy
from unipixel_pl.datamodules.mixing import Source
from unipixel_pl.datamodules.pipeline import read_records
from unipixel_pl.datamodules.synthetic_shards import write_synthetic
from unipixel_pl.models.pixel_pipeline import prepare_batch

T = TypeVar("T")
STAGES = (
    "read tar + meta + mask tables",
    "decode sampled JPEG frames",
    "sample frames, masks, template, prompts",
    "qwen processor (tokens, mRoPE, resize) + prompts",
    "collate",
    "device half on CPU (not in the loader)",
)


def _module(args: argparse.Namespace, shards: Path, workers: int) -> UniPixelDataModule:
    config = preset("unipixel-tiny")
    config.mask_decoder = dataclasses.replace(config.mask_decoder, image_size=args.sam_image_size)
    return UniPixelDataModule(
        model_config=config,
        train=[Source(str(shards))],
        batch_size=args.batch_size,
        num_workers=workers,
        sample_frames=args.sample_frames,
        shuffle_buffer=args.shuffle_buffer,
        seed=0,
    )


def loader_rate(args: argparse.Namespace, shards: Path, workers: int) -> dict[str, float]:
    """Samples/s of the training DataLoader after ``--warmup`` batches, total and per worker."""
    module = _module(args, shards, workers)
    module.setup("fit")
    batches = iter(module.train_dataloader())
    for _ in range(args.warmup):
        next(batches)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(batches)
    seconds = time.perf_counter() - start
    rate = args.steps * args.batch_size / seconds
    return {"workers": workers, "samples_per_s": rate, "samples_per_s_per_worker": rate / max(workers, 1)}


def _timed(function: Callable[[], T]) -> tuple[T, float]:
    tick = time.perf_counter()
    result = function()
    return result, time.perf_counter() - tick


def stage_breakdown(args: argparse.Namespace, shards: Path) -> list[dict[str, float]]:
    """Mean milliseconds per sample of each stage, in one process, over ``--breakdown-samples`` records."""
    module = _module(args, shards, 0)
    processor, collator = module.sample_processor(train=True), module.collator()
    config = module.model_config
    rng = np.random.default_rng(0)
    records, read = _timed(lambda: list(read_records(module.shards("fit")[0].shards, SkipPolicy(strict=True))))
    timings: dict[str, list[float]] = {name: [] for name in STAGES}
    timings[STAGES[0]] = [read / len(records)]
    for record in records[: args.breakdown_samples]:
        built, build = _timed(lambda record=record: build_sample(record, processor.config, rng))
        indices = built.frame_indices if built.frames is not None else []
        _, decode = _timed(lambda record=record, indices=indices: indices and decode_frames(record, indices))
        sample, encode = _timed(lambda built=built: processor.encoder(built.frames, built.task, built.key))
        batch, collate = _timed(lambda sample=sample: collator([sample]))
        _, device = _timed(
            lambda batch=batch: prepare_batch(batch, config.backbone.vision, config.mask_decoder.image_size)
        )
        for name, value in zip(STAGES[1:], (decode, build - decode, encode, collate, device), strict=True):
            timings[name].append(value)
    return [{"stage": name, "ms_per_sample": 1000 * float(np.mean(values))} for name, values in timings.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=240, help="synthetic records to write")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--video-frames", type=int, default=12)
    parser.add_argument("--sample-frames", type=int, default=8)
    parser.add_argument("--sam-image-size", type=int, default=768, help="SAM 2 input side (768 in UniPixel)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--shuffle-buffer", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200, help="timed micro-steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed micro-steps first (buffers fill)")
    parser.add_argument("--workers", type=int, default=0, help="also time W DataLoader workers (0: skip)")
    parser.add_argument("--breakdown-samples", type=int, default=60)
    parser.add_argument("--shards", type=Path, default=None, help="reuse this synthetic shard set")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        shards = args.shards or Path(scratch) / "synthetic"
        if args.shards is None:
            write_synthetic(shards, args.records, "train", args.image_size, args.video_frames, samples_per_shard=50)
        rates = [loader_rate(args, shards, 0)] + ([loader_rate(args, shards, args.workers)] if args.workers else [])
        stages = stage_breakdown(args, shards)
    print(format_table(rates, ["workers", "samples_per_s", "samples_per_s_per_worker"]))
    print(format_table(stages, ["stage", "ms_per_sample"]))
    if args.json is not None:
        env = environment(torch.device("cpu"))
        write_json(args.json, {"config": vars(args), "rates": rates, "stages": stages, "env": env})


if __name__ == "__main__":
    main()
