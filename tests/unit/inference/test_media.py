"""Media: images, videos and frame folders open with their frame count, size and names, and stream frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.inference.helpers import moving_square, write_frame_folder, write_mp4
from unipixel_pl.inference.media import MediaError, open_media


def test_image_with_upper_case_extension_reads_rgb(tmp_path: Path) -> None:
    frame = moving_square(1)[0]
    Image.fromarray(frame).save(tmp_path / "photo.PNG")
    media = open_media(tmp_path / "photo.PNG")
    assert (media.kind, media.num_frames, media.frame_size, media.frame_names) == ("image", 1, (48, 64), ["photo"])
    np.testing.assert_array_equal(media.read([0])[0], frame)


def test_rgba_image_is_composited_on_white(tmp_path: Path) -> None:
    pixels = np.zeros((4, 5, 4), dtype=np.uint8)
    pixels[..., 0] = 200
    pixels[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(pixels, "RGBA").save(tmp_path / "alpha.png")
    frame = open_media(tmp_path / "alpha.png").read([0])[0]
    assert frame[0, 0].tolist() == [200, 0, 0] and frame[3, 0].tolist() == [255, 255, 255]


def test_folder_is_in_natural_order_and_streams_chosen_frames(tmp_path: Path) -> None:
    frames = moving_square(12)
    folder = write_frame_folder(tmp_path / "frames", frames, suffix=".Png")
    (folder / "notes.txt").write_text("not a frame")
    media = open_media(folder)
    assert media.kind == "frames" and media.num_frames == 12
    assert media.frame_names[:3] == ["frame_1", "frame_2", "frame_3"] and media.frame_names[-1] == "frame_12"
    streamed = list(media.iter_frames([10, 1, 10]))
    assert [index for index, _ in streamed] == [1, 10]
    np.testing.assert_array_equal(streamed[1][1], frames[10])


def test_mp4_counts_frames_and_decodes_them_close_to_the_source(tmp_path: Path) -> None:
    frames = moving_square(9)
    media = open_media(write_mp4(tmp_path / "clip.Mp4", frames, fps=5))
    assert (media.kind, media.num_frames, media.frame_size, media.fps) == ("video", 9, (48, 64), 5.0)
    decoded = media.read(range(9))
    error = np.abs(decoded.astype(int) - frames.astype(int)).mean(axis=(1, 2, 3))
    assert decoded.shape == frames.shape and error.max() < 8  # lossy codec, but the same pictures
    assert [index for index, _ in media.iter_frames([2, 7])] == [2, 7]


def test_arrays_and_pil_images_are_media() -> None:
    frames = moving_square(3)
    assert open_media(frames).num_frames == 3 and open_media(frames).kind == "frames"
    image = open_media(frames[0])
    assert (image.kind, image.num_frames, image.frame_size) == ("image", 1, (48, 64))
    assert open_media(Image.fromarray(frames[0])).frame_size == (48, 64)
    with pytest.raises(MediaError, match="in-memory media"):
        open_media(np.zeros((2, 4, 4), dtype=np.float32))


def test_frame_index_past_the_end_is_named(tmp_path: Path) -> None:
    media = open_media(moving_square(4))
    with pytest.raises(MediaError, match="frame index 4 is past the end of <array> \\(4 frames\\)"):
        media.read([1, 4])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"hello", "unsupported extension '.txt'"),
        ("broken.jpg", b"not a jpeg", "cannot read image"),
        ("broken.MP4", b"not a video at all", "cannot read video"),
    ],
)
def test_unsupported_or_unreadable_files_are_refused(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(MediaError, match=message):
        open_media(tmp_path / name)


def test_missing_empty_or_mixed_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        open_media(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="holds no frame"):
        open_media(tmp_path / "empty")
    folder = write_frame_folder(tmp_path / "mixed", moving_square(2))
    Image.fromarray(moving_square(1, height=32)[0]).save(folder / "frame_3.png")
    with pytest.raises(MediaError, match="frame_3.png .* is 64x32 \\(WxH\\) but frame_1.png is 64x48"):
        open_media(folder)
