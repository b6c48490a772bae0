"""SAM 2.1 mask propagation: frames/s of the mask decoder alone at its input size, and memory for a long video.

The mask decoder of a preset (``unipixel-3b``: SAM 2.1 Hiera-B+ at 768 px) with random weights is prompted on
frame 0 with random ``<|seg|>`` prompt tokens and tracks the object(s) through the clip, as in inference
(``MaskDecoder.segment``). Three rates are reported: the image encoder (Hiera + FPN, frames encoded in chunks),
the propagation (memory attention, mask decoder, memory encoder, per frame in order) and both together.

The long-video case runs a 300-frame video twice: through ``MaskDecoder.segment`` as it is (all frames encoded
in one batch) and with the frames encoded in chunks first; both report peak device memory.

Run: ``python -m benchmarks.sam2_propagation --preset unipixel-3b --device cuda --json out/sam2.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import Tensor

from benchmarks.common import (
    environment,
    free_device_memory,
    is_out_of_memory,
    peak_memory_gib,
    repeat_timed,
    reset_peak_memory,
    summarize,
    time_call,
    write_json,
)
from benchmarks.flops import count_flops
from benchmarks.profiling import profile_call
from unipixel_pl.config import preset
from unipixel_pl.models.mask_decoder import FrameFeatures, MaskDecoder


def build_decoder(name: str, device: torch.device) -> MaskDecoder:
    """The preset's mask decoder with random weights, fp32, eval mode, no parameter requiring a gradient."""
    torch.manual_seed(0)
    with torch.device(device):
        decoder = MaskDecoder(preset(name).mask_decoder)
    return decoder.eval().requires_grad_(False)


def random_frames(count: int, size: int, device: torch.device, seed: int = 0) -> Tensor:
    """``(count, 3, size, size)`` standard-normal frames (normalised inputs; never zeros, which time faster)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(count, 3, size, size, device=device, generator=generator)


def encode_chunked(decoder: MaskDecoder, frames: Tensor, chunk: int) -> FrameFeatures:
    """``MaskDecoder.encode_frames`` over ``chunk`` frames at a time, concatenated along the frame axis."""
    parts = [decoder.encode_frames(frames[start : start + chunk]) for start in range(0, frames.shape[0], chunk)]
    return FrameFeatures(
        vision_feats=[torch.cat(level, dim=1) for level in zip(*(p.vision_feats for p in parts), strict=True)],
        vision_pos_embeds=[
            torch.cat(level, dim=1) for level in zip(*(p.vision_pos_embeds for p in parts), strict=True)
        ],
        feat_sizes=parts[0].feat_sizes,
    )


def prompt_tokens(decoder: MaskDecoder, objects: int, device: torch.device) -> Tensor:
    """``(objects, n, hidden)`` random prompt tokens, as the pointer head would produce."""
    generator = torch.Generator(device=device).manual_seed(1)
    shape = (objects, decoder.config.prompt_tokens, decoder.hidden_dim)
    return torch.randn(*shape, device=device, generator=generator)


def clip_rates(decoder: MaskDecoder, args: argparse.Namespace) -> dict:
    """Encoder, propagation and end-to-end frames/s on a ``--frames`` clip at the decoder's input size."""
    device, size = torch.device(args.device), decoder.image_size
    frames = random_frames(args.frames, size, device)
    tokens = prompt_tokens(decoder, args.objects, device)
    features: list[FrameFeatures] = []
    encode = repeat_timed(lambda: features.append(encode_chunked(decoder, frames, args.chunk)), device, args.repeats, 1)
    track = repeat_timed(lambda: decoder.segment(features[-1], tokens, (size, size)), device, args.repeats, 1)
    encode_s, track_s = summarize(encode)["median_s"], summarize(track)["median_s"]
    per_frame = _flops_per_frame(decoder, frames, tokens, args.chunk)
    return {
        "frames": args.frames,
        "objects": args.objects,
        "image_size": size,
        "encode_fps": args.frames / encode_s,
        "propagate_fps": args.frames / track_s,
        "end_to_end_fps": args.frames / (encode_s + track_s),
        "encode_gflop_per_frame": per_frame["encode"] / 1e9,
        "propagate_gflop_per_frame": per_frame["propagate"] / 1e9,
        "encode_tflops": per_frame["encode"] * args.frames / encode_s / 1e12,
        "propagate_tflops": per_frame["propagate"] * args.frames / track_s / 1e12,
    }


def _flops_per_frame(decoder: MaskDecoder, frames: Tensor, tokens: Tensor, chunk: int) -> dict[str, float]:
    clip = frames[:chunk]
    features = encode_chunked(decoder, clip, chunk)
    encode = count_flops(lambda: decoder.encode_frames(clip))
    size = (decoder.image_size, decoder.image_size)
    propagate = count_flops(lambda: decoder.segment(features, tokens, size))
    return {"encode": encode / clip.shape[0], "propagate": propagate / clip.shape[0]}


def long_video(decoder: MaskDecoder, args: argparse.Namespace, chunked: bool) -> dict:
    """Peak memory and time of segmenting a ``--long-frames`` video (original size ``--frame-size``)."""
    device = torch.device(args.device)
    frames = random_frames(args.long_frames, decoder.image_size, device)
    tokens = prompt_tokens(decoder, args.objects, device)
    height, width = (int(v) for v in args.frame_size.lower().split("x"))
    record = {
        "frames": args.long_frames,
        "frame_size": args.frame_size,
        "encode": "chunked" if chunked else "one batch",
    }
    free_device_memory(device)
    reset_peak_memory(device)

    def run() -> None:
        source = encode_chunked(decoder, frames, args.chunk) if chunked else frames
        decoder.segment(source, tokens, (height, width))

    try:
        seconds = time_call(run, device)
        record |= {"status": "ok", "seconds": seconds, "fps": args.long_frames / seconds}
    except Exception as error:  # noqa: BLE001 - an out-of-memory here is a result
        if not is_out_of_memory(error):
            raise
        record["status"] = "out of memory"
    record["peak_memory_gib"] = peak_memory_gib(device)
    free_device_memory(device)
    return record


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="unipixel-tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=16, help="frames per image-encoder batch")
    parser.add_argument("--long-frames", type=int, default=300)
    parser.add_argument("--frame-size", default="720x1280", help="original HEIGHTxWIDTH of the long video")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="kernel summary of propagating one chunk")
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    decoder = build_decoder(args.preset, device)
    report: dict = {"benchmark": "sam2_propagation", "environment": environment(device), "preset": args.preset}
    report |= {"precision": args.precision, "chunk": args.chunk}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        report["clip"] = clip_rates(decoder, args)
        print(_clip_line(report["clip"]), flush=True)
        report["long_video"] = [long_video(decoder, args, chunked) for chunked in (False, True)]
        for record in report["long_video"]:
            print(record, flush=True)
        if args.profile:
            report["profile"] = _profile(decoder, args)
            print(report["profile"]["top_ops"], flush=True)
    if args.json:
        write_json(args.json, report)
    return report


def _profile(decoder: MaskDecoder, args: argparse.Namespace) -> dict:
    device, size = torch.device(args.device), decoder.image_size
    features = encode_chunked(decoder, random_frames(args.chunk, size, device), args.chunk)
    tokens = prompt_tokens(decoder, args.objects, device)
    decoder.segment(features, tokens, (size, size))
    return profile_call(lambda: decoder.segment(features, tokens, (size, size)), device)


def _clip_line(clip: dict) -> str:
    return (
        f"SAM 2 at {clip['image_size']} px, {clip['frames']} frames, {clip['objects']} object(s): encoder "
        f"{clip['encode_fps']:.1f} frames/s ({clip['encode_tflops']:.1f} TFLOP/s), propagation "
        f"{clip['propagate_fps']:.1f} frames/s ({clip['propagate_tflops']:.2f} TFLOP/s), end to end "
        f"{clip['end_to_end_fps']:.1f} frames/s"
    )


if __name__ == "__main__":
    main()
