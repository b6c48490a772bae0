"""Media for inference: an image, a video file or a folder of frames, read as uint8 RGB frames, streamed.

:func:`open_media` checks a path once (exists, supported extension, readable, one frame size) and returns a
:class:`Media` handle that knows the frame count and size without holding pixels; :meth:`Media.iter_frames` then
decodes frames one at a time, so a long video never sits in memory. Extensions are matched case-insensitively.
Video files are decoded with PyAV (``av``); frame rotation metadata is not applied. :func:`decode_video` and
:func:`probe_video` do the same for a video held in memory (the ``video.mp4`` member of a shard).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unipixel_pl.vision_patchify import to_frames

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg")
FOLDER_FPS = 10.0
"""Playback rate of overlays for frame folders and arrays, which carry no rate of their own."""


class MediaError(ValueError):
    """Media that cannot be used: missing, unsupported, unreadable, empty or of mixed frame sizes."""


@dataclass
class Media:
    """A handle on the frames of one image, video or frame folder (no pixels are kept).

    Attributes:
        source: where the frames come from (a path, or ``<array>``).
        kind: ``image``, ``video`` or ``frames`` (a folder or an in-memory array).
        num_frames: ``T``.
        frame_size: ``(H, W)`` of every frame.
        frame_names: one name per frame, for output files (file stems of a folder, ``00000``... otherwise).
        fps: frames per second of playback.
    """

    source: str
    kind: str
    num_frames: int
    frame_size: tuple[int, int]
    frame_names: list[str]
    fps: float = FOLDER_FPS

    def iter_frames(self, indices: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` with ``frame`` uint8 ``(H, W, 3)`` RGB, in increasing index order.

        Args:
            indices: the frames to decode (default: all); duplicates are yielded once.

        Raises:
            MediaError: an index outside ``[0, T)``, or a frame that cannot be decoded.
        """
        wanted = self._check_indices(indices)
        for index, frame in self._decode(wanted):
            if frame.shape[:2] != self.frame_size:
                raise MediaError(
                    f"frame {index} of {self.source} is {frame.shape[1]}x{frame.shape[0]} (WxH) but the first frame "
                    f"is {self.frame_size[1]}x{self.frame_size[0]}; every frame must have one size"
                )
            yield index, frame

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 ``(len(set(indices)), H, W, 3)`` frames at the sorted unique ``indices``."""
        return np.stack([frame for _, frame in self.iter_frames(indices)])

    def _check_indices(self, indices: Sequence[int] | None) -> list[int]:
        if indices is None:
            return list(range(self.num_frames))
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise MediaError(f"frame index {bad[0]} is past the end of {self.source} ({self.num_frames} frames)")
        return sorted(set(indices))

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError


@dataclass
class ArrayMedia(Media):
    """Frames already in memory (Python API): ``frames`` uint8 ``(T, H, W, 3)``."""

    frames: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8), repr=False)

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            yield index, self.frames[index]


@dataclass
class ImageFiles(Media):
    """One image file or a folder of frame files (``paths`` in frame order)."""

    paths: list[Path] = field(default_factory=list, repr=False)

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            yield index, _read_image(self.paths[index])


@dataclass
class VideoFile(Media):
    """A video file decoded sequentially with PyAV."""

    path: Path = field(default_factory=Path, repr=False)

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        yield from _decode_video(self.path, indices, repr(self.source))


VideoSource = Path | bytes
"""A video file, or the bytes of one (an mp4 shard member)."""


def _decode_video(video: VideoSource, indices: Sequence[int], name: str) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, uint8 (H, W, 3))`` at sorted unique ``indices``, decoding in order and stopping after the last one;
    only the wanted frames are converted to RGB."""
    wanted, index = set(indices), -1
    last = max(wanted, default=-1)
    for index, frame in enumerate(_video_frames(video, name)):
        if index in wanted:
            yield index, frame.to_ndarray(format="rgb24")
        if index >= last:
            return
    if index < last:
        raise MediaError(f"{name} ended after {index + 1} frames while frame {last} was expected")


def decode_video(video: VideoSource, indices: Sequence[int], name: str = "<video>") -> np.ndarray:
    """uint8 ``(len(set(indices)), H, W, 3)`` RGB frames of a video file or bytes at the sorted unique ``indices``.

    Raises:
        MediaError: unreadable data, no video stream, or a video shorter than the largest index.
    """
    return np.stack([frame for _, frame in _decode_video(video, sorted(set(indices)), name)])


def probe_video(video: VideoSource, name: str = "<video>") -> tuple[int, tuple[int, int], float]:
    """``(num_frames, (H, W), fps)`` of a video file or bytes: one decoding pass without colour conversion.

    Raises:
        MediaError: unreadable data, no video stream or no decodable frame.
    """
    count, size = 0, (0, 0)
    for count, frame in enumerate(_video_frames(video, name), start=1):
        if count == 1:
            size = (frame.height, frame.width)
    if count == 0:
        raise MediaError(f"video {name} has no decodable frame")
    return count, size, _video_fps(video)


MediaSource = str | Path | np.ndarray | Image.Image | Media
"""What names a media: a path (image, video, frame folder), a PIL image, a uint8 array or an opened ``Media``."""


def open_media(source: MediaSource) -> Media:
    """Open an image, a video file, a folder of frames, a PIL image or a uint8 ``(T, H, W, 3)`` or ``(H, W, 3)`` array.

    Raises:
        MediaError: the path does not exist, has an unsupported extension, cannot be read, holds no frame, or
            its frames differ in size; the message names the path and what is accepted.
    """
    if isinstance(source, Media):
        return source
    if isinstance(source, (np.ndarray, Image.Image)):
        return _array_media(source)
    path = Path(source)
    if path.is_dir():
        return _folder_media(path)
    if not path.is_file():
        raise MediaError(f"media {str(path)!r} does not exist; give an image, a video file or a folder of frames")
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        height, width = _read_image(path).shape[:2]
        return ImageFiles(str(path), "image", 1, (height, width), [path.stem], paths=[path])
    if suffix in VIDEO_EXTENSIONS:
        return _video_media(path)
    raise MediaError(
        f"media {str(path)!r} has unsupported extension {path.suffix!r}; images: {', '.join(IMAGE_EXTENSIONS)}; "
        f"videos: {', '.join(VIDEO_EXTENSIONS)} (any case); or a folder of frames"
    )


def _array_media(source: np.ndarray | Image.Image) -> Media:
    array = source if isinstance(source, Image.Image) else np.asarray(source)
    if isinstance(array, np.ndarray) and array.ndim == 3:
        array = array[None]  # one (H, W, 3) image
    try:
        frames = to_frames(array)
    except ValueError as error:
        raise MediaError(f"in-memory media: {error}") from error
    kind = "image" if len(frames) == 1 else "frames"
    names = [f"{index:05d}" for index in range(len(frames))]
    return ArrayMedia("<array>", kind, len(frames), frames.shape[1:3], names, frames=frames)


def _read_image(path: Path) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB pixels of an image file (RGBA composited on white, as the processor does)."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_frames(image)[0]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise MediaError(f"cannot read image {str(path)!r}: {error}; is it a valid image file?") from error


def _natural_key(path: Path) -> list[object]:
    """Sort key placing ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _folder_media(path: Path) -> Media:
    paths = sorted(
        (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key
    )
    if not paths:
        raise MediaError(
            f"folder {str(path)!r} holds no frame: expected image files ({', '.join(IMAGE_EXTENSIONS)}, any case)"
        )
    sizes = [_image_size(p) for p in paths]
    for frame_path, size in zip(paths, sizes, strict=True):
        if size != sizes[0]:
            raise MediaError(
                f"frame {frame_path.name} of {str(path)!r} is {size[1]}x{size[0]} (WxH) but {paths[0].name} is "
                f"{sizes[0][1]}x{sizes[0][0]}; every frame of a folder must have one size"
            )
    return ImageFiles(str(path), "frames", len(paths), sizes[0], [p.stem for p in paths], paths=paths)


def _image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` from the image header (pixels are not decoded)."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, SyntaxError, ValueError) as error:
        raise MediaError(f"cannot read image {str(path)!r}: {error}; is it a valid image file?") from error


def _open_video(video: VideoSource) -> Any:
    """An ``av`` input container on a file path or on bytes (``av`` is imported lazily)."""
    import av  # noqa: PLC0415 - heavy, only needed for videos

    return av.open(io.BytesIO(video) if isinstance(video, bytes) else str(video))


def _video_frames(video: VideoSource, name: str) -> Iterator:
    """Decoded ``av.VideoFrame`` objects of the first video stream, in order."""
    import av  # noqa: PLC0415

    try:
        with _open_video(video) as container:
            if not container.streams.video:
                raise MediaError(f"{name} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield from container.decode(stream)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(f"cannot read video {name}: {error}; is it a valid video file?") from error


def _video_media(path: Path) -> Media:
    """Count the frames and read the frame size and rate."""
    count, size, fps = probe_video(path, repr(str(path)))
    return VideoFile(str(path), "video", count, size, [f"{i:05d}" for i in range(count)], fps, path=path)


def _video_fps(video: VideoSource) -> float:
    with _open_video(video) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else FOLDER_FPS
