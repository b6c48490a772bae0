"""Write held-out synthetic media for the demo's `unipixel infer` step, and the requests to run on them.

    python scripts/demo_media.py --out runs/demo/data/held_out_media

From the test split generator (never train), at record indices beyond every test shard set the demo writes: one
image (``image.jpg``) and one video as a frame folder (``video/``), the target mask of each referred object
(``*-target/``) and ``requests.tsv``, one row per request (name, media, point, prompt, reference answer, target):
a referring query for the image and for the video, and a point-prompt region question on the image.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from unipixel_pl.datamodules.schema import SampleMeta
from unipixel_pl.datamodules.synthetic_shards import synthetic_sample
from unipixel_pl.datamodules.templates import SEG_RESPONSES, seg_question
from unipixel_pl.datamodules.writer import ShardSample

FIRST_INDEX = 100_000
"""Records are searched from here on, so the media are new to the held-out test shards as well."""
COLUMNS = ("name", "media", "point", "prompt", "reference", "target")


@dataclass
class InferRequest:
    """One `unipixel infer` call of the demo (a row of ``requests.tsv``)."""

    name: str
    media: str
    point: str
    prompt: str
    reference: str
    target: str


def held_out_record(accept: Callable[[SampleMeta], bool], image_size: int, video_frames: int) -> ShardSample:
    """The first test-split record from :data:`FIRST_INDEX` on whose metadata ``accept`` is true."""
    index = FIRST_INDEX
    while not accept((sample := synthetic_sample(index, "test", image_size, video_frames)).meta):
        index += 1
    return sample


def is_point_question_on_image(meta: SampleMeta) -> bool:
    """A point/box region-QA record (``<|ref|>`` questions) on an image."""
    return meta.data_type_template == "ref_{}" and meta.media.kind == "image"


def is_referring_query_on_video(meta: SampleMeta) -> bool:
    """A referring-segmentation record (``query`` turns) on a video."""
    return meta.media.kind == "frames" and meta.turns[0].type == "query"


def write_media(sample: ShardSample, path: Path) -> Path:
    """The record's frames as ``path`` (an image file) or as a frame folder ``path`` (a video)."""
    if len(sample.frames) == 1:
        path.write_bytes(sample.frames[0])
        return path
    path.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(sample.meta.media.frame_names, sample.frames, strict=True):
        (path / name).write_bytes(frame)
    return path


def object_masks(sample: ShardSample, obj: int) -> np.ndarray:
    """``(T, H, W)`` bool masks of object ``obj``."""
    assert sample.masks is not None
    return sample.masks.decode([obj], range(sample.meta.media.num_frames))[:, 0]


def write_target(masks: np.ndarray, directory: Path) -> Path:
    """``masks: (T, H, W)`` as 8-bit PNGs (255 = object), one per frame, named in frame order."""
    directory.mkdir(parents=True, exist_ok=True)
    for t, mask in enumerate(masks):
        Image.fromarray(mask.astype(np.uint8) * 255).save(directory / f"{t:05d}.png")
    return directory


def inner_point(mask: np.ndarray) -> tuple[int, int]:
    """The ``(x, y)`` pixel of ``mask: (H, W)`` closest to its centroid (inside the object even if not convex)."""
    ys, xs = np.nonzero(mask)
    nearest = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
    return int(xs[nearest]), int(ys[nearest])


def image_requests(out: Path, image_size: int, video_frames: int) -> list[InferRequest]:
    """A referring query naming an object of a held-out image, and a point-prompt question about that object."""
    sample = held_out_record(is_point_question_on_image, image_size, video_frames)
    media = str(write_media(sample, out / "image.jpg"))
    turn = sample.meta.turns[0]  # "What colour is <|ref|>?" about one object
    obj = turn.objects[0]
    masks = object_masks(sample, obj)
    x, y = inner_point(masks[0])
    name = sample.meta.objects[obj].category
    query = seg_question("query", f"the {name}", "image", None)
    target = str(write_target(masks, out / "image-target"))
    return [
        InferRequest("image-seg", media, "", query, SEG_RESPONSES[0], target),
        InferRequest("image-point", media, f"{x},{y}", turn.text, turn.answer, ""),
    ]


def video_request(out: Path, image_size: int, video_frames: int) -> InferRequest:
    """The referring query of a held-out video's first segmentation turn."""
    sample = held_out_record(is_referring_query_on_video, image_size, video_frames)
    media = str(write_media(sample, out / "video"))
    turn = sample.meta.turns[0]
    query = seg_question("query", turn.text, "video", None)
    target = str(write_target(object_masks(sample, turn.objects[0]), out / "video-target"))
    return InferRequest("video-seg", media, "", query, SEG_RESPONSES[0], target)


def write_requests(requests: list[InferRequest], path: Path) -> Path:
    """``requests`` as a tab-separated table with a header row (read by ``demo.sh`` and ``demo_report.py``)."""
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([getattr(request, column) for column in COLUMNS] for request in requests)
    return path


def write_held_out_media(out: Path, image_size: int = 112, video_frames: int = 4) -> Path:
    """Write the media, targets and ``requests.tsv`` under ``out``; returns the ``requests.tsv`` path."""
    out.mkdir(parents=True, exist_ok=True)
    requests = [*image_requests(out, image_size, video_frames), video_request(out, image_size, video_frames)]
    return write_requests(requests, out / "requests.tsv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo/data/held_out_media"))
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--video-frames", type=int, default=4)
    args = parser.parse_args()
    print(f"held-out media and requests: {write_held_out_media(args.out, args.image_size, args.video_frames)}")


if __name__ == "__main__":
    main()
