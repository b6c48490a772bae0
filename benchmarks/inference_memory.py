"""Memory of streamed inference on a long video: does it stay flat as frames go by?

Two cases, each in its own process so the peaks do not mix:

- ``--case predictor``: ``Predictor.stream`` end to end on the tiny preset (random weights) over an mp4 written to a
  temporary folder (``--size`` HxW, ``--frames`` frames): decoding, 16-frame LLM prefill, greedy decoding of a prompt
  with one ``<|seg|>``, and SAM 2 over every frame (masks thresholded, then dropped).
- ``--case sam2``: the mask decoder of ``--preset`` alone (``unipixel-3b``: SAM 2.1 Hiera-B+ at 768) tracking one
  object prompted with random tokens over frames synthesised on the fly, through the same streaming path.

Resident memory (``/proc/self/status`` VmRSS on CPU, allocated memory on CUDA) is read after setup (model built,
one 2-frame warm-up), then after every frame; the report gives the setup figure, the largest figure seen while
streaming, the figure at frame 1, the peaks over frames 1-16 (SAM 2's memory bank fills up) and after frame 16
(it is full), the figure at the last frame, and the process high-water mark (``ru_maxrss`` on
CPU, which also catches the LLM prefill between two readings; peak allocated memory on CUDA). Run::

    python -m benchmarks.inference_memory --case predictor --frames 300
    python -m benchmarks.inference_memory --case sam2 --preset unipixel-3b --frames 40
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import environment, peak_memory_gib, write_json
from unipixel_pl.checkpoints.ours import save_ours
from unipixel_pl.config import preset
from unipixel_pl.inference.media import Media
from unipixel_pl.inference.predictor import InferenceSettings, Predictor
from unipixel_pl.inference.requests import Request
from unipixel_pl.inference.streaming import track_media
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.models.mask_decoder import MaskDecoder
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import build_tiny_tokenizer


class SyntheticVideo(Media):
    """Frames made on demand (a bright square moving over noise), none kept."""

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        height, width = self.frame_size
        for index in indices:
            frame = np.random.default_rng(index).integers(0, 80, (height, width, 3), dtype=np.uint8)
            left = (4 * index) % max(1, width - height // 3)
            frame[height // 3 : 2 * height // 3, left : left + height // 3] = 230
            yield index, frame


def synthetic_video(num_frames: int, height: int, width: int) -> SyntheticVideo:
    return SyntheticVideo("<synthetic>", "video", num_frames, (height, width), [f"{i:05d}" for i in range(num_frames)])


def resident_mib(device: torch.device) -> float:
    """Current resident set of this process (CPU) or allocated CUDA memory, MiB."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def write_video(path: Path, media: Media, fps: int = 10) -> Path:
    import av  # noqa: PLC0415

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = media.frame_size
        stream.pix_fmt = "yuv420p"
        for _, frame in media.iter_frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def predictor_case(args: argparse.Namespace, device: torch.device) -> Iterator[float]:
    """Yield the resident memory after setup, then after each streamed frame."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = LitUniPixel.from_preset("unipixel-tiny")
        save_ours(model, UniPixelProcessor.from_config(build_tiny_tokenizer(), model.config.backbone), root / "ckpt")
        del model
        video = write_video(root / "clip.mp4", synthetic_video(args.frames, *args.size))
        warmup = write_video(root / "warmup.mp4", synthetic_video(2, *args.size))
        predictor = Predictor.from_pretrained(root / "ckpt", device, settings=InferenceSettings(max_new_tokens=8))
        prompt = "Please segment the bright square. <|seg|>"
        for _ in predictor.stream([Request(warmup, prompt)]).frames:
            pass
        yield resident_mib(device)
        for _ in predictor.stream([Request(video, prompt)]).frames:
            yield resident_mib(device)


def sam2_case(args: argparse.Namespace, device: torch.device) -> Iterator[float]:
    """Yield the resident memory after setup, then after each tracked frame (SAM 2 alone, one object)."""
    config = preset(args.preset).mask_decoder
    decoder = MaskDecoder(config).to(device).eval()
    tokens = torch.randn(1, config.prompt_tokens, config.hidden_dim, device=device)
    for _ in track_media(decoder, synthetic_video(2, *args.size), tokens):
        pass
    yield resident_mib(device)
    for frame in track_media(decoder, synthetic_video(args.frames, *args.size), tokens):
        frame.segmentation.mask_logits.gt(0).cpu()
        yield resident_mib(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("predictor", "sam2"), default="predictor")
    parser.add_argument("--preset", default="unipixel-3b", help="SAM 2 sizes of the sam2 case")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    device = torch.device(args.device)
    trace = list((predictor_case if args.case == "predictor" else sam2_case)(args, device))
    setup, streamed = trace[0], trace[1:]
    result = {
        "case": args.case,
        "preset": "unipixel-tiny" if args.case == "predictor" else args.preset,
        "frames": args.frames,
        "frame_size": list(args.size),
        "setup_mib": round(setup, 1),
        "peak_while_streaming_mib": round(max(streamed), 1),
        "at_frame_1_mib": round(streamed[0], 1),
        "peak_frames_1_to_16_mib": round(max(streamed[:16]), 1),
        "peak_after_frame_16_mib": round(max(streamed[16:]), 1) if len(streamed) > 16 else None,
        "at_last_frame_mib": round(streamed[-1], 1),
        "process_high_water_mib": round(peak_memory_gib(device) * 1024, 1),
        "environment": environment(device),
    }
    print({key: value for key, value in result.items() if key != "environment"})
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
