"""Ref-SAV training: ``Ref-SAV-Min-Ratio-0.3.json`` (``{vid: {video_path, anno_path, objects: {obj_id:
{formated, ...}}}}``) over SA-V videos (mp4) and their ``*_manual.json`` masklets.

SA-V annotates every 4th frame of the 24 fps mp4 (``masklet[i][obj_id]``, an RLE), so a record keeps the original
``video.mp4`` bytes, ``stride = 4`` and ``orig_frame_indices = 0, 4, 8, ...``, one mask row per object and one
``description`` turn per object (expanded online). The validation split uses the ``meta_expressions`` layout: see
``rvos.py`` (``ref_sav`` valid).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from unipixel_pl.datamodules.converters import rvos
from unipixel_pl.datamodules.converters.common import ConversionError, ConverterOutput, Drop, load_json, require
from unipixel_pl.datamodules.rle import MaskTable
from unipixel_pl.datamodules.schema import Media, ObjectInfo, SampleMeta, Turn
from unipixel_pl.datamodules.writer import ShardSample

SOURCE, STRIDE = "ref_sav", 4
META = "ref_sav/Ref-SAV-Min-Ratio-0.3.json"


def convert(root: Path, split: str, **options: str) -> tuple[str, ConverterOutput]:
    """``root`` holds ``ref_sav/`` and ``sav/`` (the reference's ``data``). Options: ``meta`` (the Ref-SAV json,
    relative to ``root``) and ``videos`` (the SA-V root, default ``root/sav``). ``valid`` reads
    ``root/ref_sav/valid`` in the ``meta_expressions`` layout."""
    if split == "valid":
        return rvos.converter("ref_sav")(root / "ref_sav", split, **options)
    if split != "train":
        raise ConversionError(f"Ref-SAV has splits train and valid, got {split!r}")
    require(options, ("meta", "videos"), SOURCE)
    meta = load_json(root / options.get("meta", META))
    videos = Path(options.get("videos", root / "sav"))
    return SOURCE, _samples(meta, videos)


def _samples(meta: dict, videos: Path) -> Iterator[ShardSample | Drop]:
    for vid, video in meta.items():
        yield _sample(vid, video, videos)


def _sample(vid: str, video: dict, videos: Path) -> ShardSample | Drop:
    video_path = videos / video["video_path"].split("/", 1)[1]
    anno_path = videos / video["anno_path"].split("/", 1)[1]
    if not video_path.is_file() or not anno_path.is_file():
        raise ConversionError(f"Ref-SAV video {vid}: missing {video_path if not video_path.is_file() else anno_path}")
    manual = load_json(anno_path)
    masklet = manual["masklet"]
    qids = list(video["objects"])
    if any(int(qid) >= len(masklet[0]) for qid in qids):
        return Drop("object_not_in_masklet")
    media = Media(
        kind="mp4",
        num_frames=len(masklet),
        height=int(manual["video_height"]),
        width=int(manual["video_width"]),
        orig_frame_indices=[STRIDE * i for i in range(len(masklet))],
        stride=STRIDE,
    )
    rows = [[frame[int(qid)] for frame in masklet] for qid in qids]
    meta = SampleMeta(
        source=SOURCE,
        split="train",
        family="seg",
        data_type_template="seg_video",
        vid=vid,
        media=media,
        turns=[Turn("description", video["objects"][qid]["formated"].strip(), "", [i]) for i, qid in enumerate(qids)],
        objects=[ObjectInfo(int(qid), "", i) for i, qid in enumerate(qids)],
        expand=True,
    )
    table = MaskTable(media.height, media.width, [[_compressed(rle) for rle in row] for row in rows])
    return ShardSample(meta, video=video_path.read_bytes(), masks=table)


def _compressed(rle: dict | None) -> dict | None:
    if rle is None:
        return None
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
