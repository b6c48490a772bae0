"""Forward+backward time of the tiny preset on one image sample and one 4-frame video sample (CPU by default).

Run: ``python benchmarks/tiny_forward_backward.py [--repeats 5] [--device cpu]``. Prints the median and the
fastest of the timed repeats after one warm-up step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unipixel_pl.datamodules.synthetic import SyntheticDataModule
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.types import UniPixelBatch


def sample_batch(video_frames: int) -> UniPixelBatch:
    """One referring-segmentation sample: an image (``video_frames=1``) or a video."""
    data = SyntheticDataModule(tasks=["seg"], batch_size=1, video_frames=video_frames, train_samples=2)
    dataset = data.train_dataloader().dataset
    index = 1 if video_frames > 1 else 0  # the synthetic corpus alternates image and video blocks
    return data.train_dataloader().collate_fn([dataset[index]])


def time_step(model: LitUniPixel, batch: UniPixelBatch, repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(batch).loss.backward()
        if batch.input_ids.is_cuda:
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    return timings[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = LitUniPixel.from_preset("unipixel-tiny").to(args.device).train()
    print(f"unipixel-tiny forward+backward on {args.device}, threads={torch.get_num_threads()}")
    for name, frames in (("image", 1), ("video-4f", 4)):
        batch = sample_batch(frames).to(args.device)
        timings = time_step(model, batch, args.repeats)
        print(
            f"{name:9s} tokens={batch.input_ids.shape[1]:4d} "
            f"median={statistics.median(timings):.3f}s min={min(timings):.3f}s"
        )


if __name__ == "__main__":
    main()
