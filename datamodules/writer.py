"""Write samples into WebDataset ``.tar`` shards plus ``manifest.json`` (``reference/DATA.md`` §11.1).

Tar members get a fixed mtime, owner and mode, so the same samples always produce byte-identical shards (and the
same checksums). A video is stored either as frames (``f0000.jpg`` ...) or as its original ``video.mp4`` bytes
(:func:`mp4_media` describes it; the reader decodes the sampled frames with PyAV).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import webdataset as wds

from unipixel_pl.datamodules.manifest import Manifest, ShardInfo, file_sha256
from unipixel_pl.datamodules.rle import MaskTable
from unipixel_pl.datamodules.schema import GT, IGNORE, MASKS, META, REFER, VIDEO, Media, SampleMeta, validate_meta
from unipixel_pl.inference.media import probe_video


@dataclass
class ShardSample:
    """A sample to write.

    Attributes:
        meta: its ``meta.json``.
        frames: encoded frame bytes, one per ``meta.media.frame_names`` entry.
        video: ``video.mp4`` bytes (media kind ``mp4``).
        masks: target masks (``masks.json``), refer: mask prompts (``refer.json``), ignore: ``ignore.json``.
        gt: evaluation-only scoring data (``gt.json``).
    """

    meta: SampleMeta
    frames: list[bytes] = field(default_factory=list)
    video: bytes | None = None
    masks: MaskTable | None = None
    refer: MaskTable | None = None
    ignore: MaskTable | None = None
    gt: dict[str, Any] | None = None

    def members(self) -> dict[str, bytes]:
        """Member suffix -> bytes, as written to the tar (with ``__key__``)."""
        validate_meta(self.meta)
        names = self.meta.media.frame_names
        if len(names) != len(self.frames):
            raise ValueError(f"{self.meta.key}: {len(self.frames)} frame payloads for {len(names)} frame names")
        if (self.meta.media.kind == "mp4") != (self.video is not None):
            raise ValueError(
                f"{self.meta.key}: media kind {self.meta.media.kind!r} with{'out' if self.video is None else ''} "
                "video bytes; an mp4 sample needs `video`, other kinds must not have one"
            )
        members: dict[str, Any] = {"__key__": self.meta.key, META: self.meta.to_json()}
        members.update(zip(names, self.frames, strict=True))
        tables = {MASKS: self.masks, REFER: self.refer, IGNORE: self.ignore}
        members.update({name: _json(table.to_json()) for name, table in tables.items() if table is not None})
        if self.video is not None:
            members[VIDEO] = self.video
        if self.gt is not None:
            members[GT] = _json(self.gt)
        return members


def mp4_media(video: bytes, stride: int = 1, name: str = VIDEO) -> Media:
    """``Media`` of an mp4 kept as its original bytes, every ``stride``-th frame available to the sampler.

    The frame count and size come from one PyAV decoding pass (no colour conversion).

    Raises:
        MediaError: bytes PyAV cannot decode, without a video stream or without frames (``name`` is reported).
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    count, (height, width), _ = probe_video(video, name)
    orig = list(range(0, count, stride))
    return Media(kind="mp4", num_frames=len(orig), height=height, width=width, orig_frame_indices=orig, stride=stride)


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


class ShardSetWriter:
    """Writes ``{prefix}-{index:06d}.tar`` shards into ``directory`` and their manifest on ``close``.

    Args:
        directory: output directory (created).
        source: corpus name; split: split name (both recorded in the manifest and the shard names).
        samples_per_shard: records per shard at most.
        max_shard_bytes: start a new shard once a shard holds this many bytes.
    """

    def __init__(
        self,
        directory: str | Path,
        source: str,
        split: str,
        samples_per_shard: int = 1000,
        max_shard_bytes: int = 1 << 30,
    ) -> None:
        if samples_per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(source=source, split=split)
        self.samples_per_shard, self.max_shard_bytes = samples_per_shard, max_shard_bytes
        self.filtered: Counter[str] = Counter()
        self._keys: set[str] = set()
        self._writer: wds.TarWriter | None = None
        self._current: ShardInfo | None = None

    def write(self, sample: ShardSample) -> None:
        """Append one sample; raises ``ValueError`` on a duplicate key or a sample of another source."""
        meta = sample.meta
        if meta.source != self.manifest.source or meta.split != self.manifest.split:
            raise ValueError(f"{meta.key} is {meta.source}/{meta.split}, this writer writes {self.manifest.source}")
        if meta.key in self._keys:
            raise ValueError(f"duplicate sample key {meta.key!r}; make (vid, qid) unique within the source")
        self._keys.add(meta.key)
        members = sample.members()
        writer, shard = self._shard()
        shard.num_bytes += writer.write(members)
        shard.num_records += 1
        shard.num_samples += meta.num_units
        types = self.manifest.data_types
        types[meta.data_type_template] = types.get(meta.data_type_template, 0) + meta.num_units

    def drop(self, reason: str) -> None:
        """Count a record an offline filter dropped (recorded in the manifest's ``filtered``)."""
        self.filtered[reason] += 1

    def _shard(self) -> tuple[wds.TarWriter, ShardInfo]:
        shard = self._current
        if shard is None or shard.num_records >= self.samples_per_shard or shard.num_bytes >= self.max_shard_bytes:
            self._finish_shard()
            name = f"{self.manifest.source}-{self.manifest.split}-{len(self.manifest.shards):06d}.tar"
            name = name.replace("/", "_")
            self._writer = wds.TarWriter(
                str(self.directory / name), encoder=False, mtime=0, user="", group="", format="PAX_FORMAT"
            )
            self._current = ShardInfo(name=name, num_records=0, num_samples=0, num_bytes=0, sha256="")
            self.manifest.shards.append(self._current)
        return self._writer, self._current

    def _finish_shard(self) -> None:
        if self._writer is None or self._current is None:
            return
        self._writer.close()
        path = self.directory / self._current.name
        self._current.num_bytes, self._current.sha256 = path.stat().st_size, file_sha256(path)
        self._writer = self._current = None

    def close(self) -> Manifest:
        """Finish the last shard and write ``manifest.json``; returns the manifest."""
        self._finish_shard()
        manifest = self.manifest
        manifest.num_records = sum(s.num_records for s in manifest.shards)
        manifest.num_samples = sum(s.num_samples for s in manifest.shards)
        manifest.filtered = dict(sorted(self.filtered.items()))
        manifest.save(self.directory)
        return manifest

    def __enter__(self) -> ShardSetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_shards(
    samples: Iterable[ShardSample], directory: str | Path, source: str, split: str, samples_per_shard: int = 1000
) -> Manifest:
    """Write ``samples`` as one shard set; returns its manifest."""
    with ShardSetWriter(directory, source, split, samples_per_shard) as writer:
        for sample in samples:
            writer.write(sample)
    return writer.manifest
