"""Time of one ``VideoJF.update`` (region J + DAVIS boundary F of every frame) on a synthetic video.

Run: ``python benchmarks/jf_update.py [--frames 100] [--height 480] [--width 854] [--repeats 5] [--device cpu]``.
The video is a moving ellipse; the prediction is the same ellipse slightly shifted and resized, so boundaries
are near each other as with a reasonable model. Prints the median and the fastest of the timed repeats after one
warm-up update.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unipixel_pl.metrics import VideoJF


def ellipses(frames: int, height: int, width: int, offset: float, scale: float, device: str) -> torch.Tensor:
    """``(frames, height, width)`` bool masks of an ellipse drifting down and right."""
    rows = torch.arange(height, device=device).view(1, -1, 1).float()
    cols = torch.arange(width, device=device).view(1, 1, -1).float()
    step = torch.arange(frames, device=device).view(-1, 1, 1).float()
    centre_y, centre_x = height * 0.45 + 0.3 * step + offset, width * 0.4 + 0.8 * step - offset
    radius_y, radius_x = height * 0.3 * scale, width * 0.25 * scale
    return ((rows - centre_y) / radius_y) ** 2 + ((cols - centre_x) / radius_x) ** 2 < 1


def time_update(pred: torch.Tensor, gt: torch.Tensor, repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats + 1):
        metric = VideoJF().to(pred.device)
        start = time.perf_counter()
        metric.update(pred, gt)
        if pred.is_cuda:
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    return timings[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    gt = ellipses(args.frames, args.height, args.width, offset=0.0, scale=1.0, device=args.device)
    pred = ellipses(args.frames, args.height, args.width, offset=3.0, scale=1.03, device=args.device)
    timings = time_update(pred, gt, args.repeats)
    print(
        f"VideoJF.update, {args.frames} frames of {args.height}x{args.width} on {args.device} "
        f"({torch.get_num_threads()} thread(s)): median {statistics.median(timings):.3f} s, "
        f"fastest {min(timings):.3f} s over {args.repeats} repeats"
    )


if __name__ == "__main__":
    main()
