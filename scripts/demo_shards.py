"""Write the demo's synthetic shard sets (train, val, test) with a progress bar; existing complete sets are kept.

python scripts/demo_shards.py --out runs/demo/data --train 3000 --val 48 --test 192
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from unipixel_pl.datamodules.manifest import load_manifest
from unipixel_pl.datamodules.synthetic_shards import SOURCE, synthetic_samples
from unipixel_pl.datamodules.writer import write_shards


def write_split(out: Path, split: str, num_samples: int, image_size: int, video_frames: int) -> Path:
    """Write ``out/split`` unless a shard set of ``num_samples`` records is already there; returns the directory."""
    directory = out / split
    if (directory / "manifest.json").exists():
        manifest, _ = load_manifest(directory)
        if manifest.num_records == num_samples:
            print(f"{split}: {num_samples} samples already in {directory}")
            return directory
    samples = synthetic_samples(num_samples, split, image_size, video_frames, seed=0)
    progress = tqdm(samples, total=num_samples, desc=f"shards {split}", unit="sample")
    write_shards(progress, directory, SOURCE, split, samples_per_shard=500)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo/data"))
    parser.add_argument("--train", type=int, default=3000, help="training samples")
    parser.add_argument("--val", type=int, default=48, help="validation samples (TensorBoard curves, overlays)")
    parser.add_argument("--test", type=int, default=192, help="held-out test samples")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--video-frames", type=int, default=4)
    args = parser.parse_args()
    for split in ("train", "val", "test"):
        write_split(args.out, split, getattr(args, split), args.image_size, args.video_frames)


if __name__ == "__main__":
    main()
