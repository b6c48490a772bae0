"""Video files of the benchmarks kept as their original bytes (media kind ``mp4``) at chosen frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unipixel_pl.datamodules.converters.common import ConversionError
from unipixel_pl.datamodules.schema import Media
from unipixel_pl.inference.media import MediaError, probe_video


@dataclass(frozen=True)
class VideoFile:
    """A video's bytes and what one PyAV decoding pass tells about it.

    Attributes:
        data: the file's bytes (stored as the ``video.mp4`` member whatever the container: PyAV reads it by content).
        num_frames: decodable frames.
        height, width: frame size.
        fps: average frame rate.
    """

    data: bytes
    num_frames: int
    height: int
    width: int
    fps: float

    def media(self, frame_indices: Sequence[int]) -> Media:
        """``Media`` offering the sampler the frames ``frame_indices`` (original indices, ascending).

        Raises:
            ConversionError: an index outside the video.
        """
        bad = [index for index in frame_indices if not 0 <= index < self.num_frames]
        if bad:
            raise ConversionError(f"frame {bad[0]} is outside a video of {self.num_frames} frames")
        return Media(
            kind="mp4",
            num_frames=len(frame_indices),
            height=self.height,
            width=self.width,
            orig_frame_indices=list(frame_indices),
        )


def read_video(path: Path) -> VideoFile:
    """Read and probe a video file.

    Raises:
        ConversionError: a missing file, or one PyAV cannot decode.
    """
    if not path.is_file():
        raise ConversionError(f"video file not found: {path}")
    data = path.read_bytes()
    try:
        count, (height, width), fps = probe_video(data, str(path))
    except MediaError as error:
        raise ConversionError(str(error)) from error
    return VideoFile(data, count, height, width, fps)
