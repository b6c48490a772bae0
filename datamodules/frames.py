"""Online frame sampling (``reference/DATA.md`` §3) and decoding of the sampled frames only."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from unipixel_pl.datamodules.health import bad
from unipixel_pl.datamodules.reader import Record
from unipixel_pl.datamodules.schema import VIDEO
from unipixel_pl.inference.media import MediaError, decode_video

SAMPLERS: tuple[str, ...] = ("uniform", "random")


def uniform_indices(num_frames: int, count: int) -> list[int]:
    """``count`` indices spread over ``num_frames`` including the first and last (all when ``num_frames <= count``).

    ``arange(0, n, (n - 1) / (count - 1))[:count].round()`` as the reference; ``count == 1`` takes the middle frame
    (the reference divides by zero, quirk Q6).
    """
    if num_frames <= count:
        return list(range(num_frames))
    if count == 1:
        return [(num_frames - 1) // 2]
    return np.arange(0, num_frames, (num_frames - 1) / (count - 1))[:count].round().astype(int).tolist()


def random_indices(num_frames: int, count: int, rng: np.random.Generator) -> list[int]:
    """TSN sampling: one uniform pick per segment of ``[0, num_frames)`` (all frames when ``num_frames <= count``)."""
    if num_frames <= count:
        return list(range(num_frames))
    bounds = np.arange(0, num_frames, (num_frames - 1) / count)[: count + 1].round().astype(int)
    return [int(rng.integers(lo, max(lo + 1, hi))) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def sample_indices(
    num_frames: int, count: int, sampler: str, rng: np.random.Generator, keep: int | None = None
) -> list[int]:
    """Sampled frame indices, ascending; ``keep`` (when given) replaces the nearest sampled index.

    Raises:
        ValueError: unknown sampler or ``count < 1``.
    """
    if count < 1:
        raise ValueError(f"frames to sample must be >= 1, got {count}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown frame sampler {sampler!r}; choose one of {SAMPLERS}")
    indices = uniform_indices(num_frames, count) if sampler == "uniform" else random_indices(num_frames, count, rng)
    if keep is not None and keep not in indices:
        nearest = int(np.argmin([abs(index - keep) for index in indices]))
        indices[nearest] = keep
    return sorted(indices)


def decode_frames(record: Record, indices: list[int]) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` RGB frames of ``record`` at ``indices`` (only these are decoded; an mp4 is decoded
    in order up to the last of them, only they are converted to RGB).

    Raises:
        BadSampleError: a corrupt image, a frame of another size, or an unreadable video.
    """
    media = record.meta.media
    if media.kind == "mp4":
        frames = _decode_mp4(record, [media.orig_frame_indices[i] for i in indices])
    else:
        frames = np.stack([_decode_image(record, media.frame_names[i]) for i in indices])
    if frames.shape[1:3] != (media.height, media.width):
        detail = f"frames are {frames.shape[1]}x{frames.shape[2]}, meta.json says {media.height}x{media.width}"
        raise bad(record.key, "corrupt_image", detail, record.url)
    return frames


def _decode_image(record: Record, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(record.members[name])) as image:
            return np.asarray(_rgb(image))
    except (OSError, SyntaxError, ValueError) as error:
        raise bad(record.key, "corrupt_image", f"{name}: {error}", record.url) from error


def _rgb(image: Image.Image) -> Image.Image:
    """RGB as ``qwen_vl_utils`` converts: RGBA is composited on white, other modes converted."""
    if image.mode == "RGB":
        return image
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.split()[3])
    return background


def _decode_mp4(record: Record, frame_indices: list[int]) -> np.ndarray:
    """Frames of the ``video.mp4`` member at original indices, decoded in memory with PyAV up to the last one."""
    unique = sorted(set(frame_indices))
    try:
        decoded = decode_video(record.members[VIDEO], unique, f"{record.key}/{VIDEO}")
    except MediaError as error:
        raise bad(record.key, "unreadable_video", str(error), record.url) from error
    return decoded[[unique.index(index) for index in frame_indices]]
