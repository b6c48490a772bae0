"""Read shard records: tar members grouped by key, then ``meta.json`` and the mask tables parsed and checked.

Faults are attributed to a key: a tar that ends early yields a ``BadSample`` for the record being read (or the
shard, when it ended on a record boundary before its manifest count), a record whose members or mask tables do not
match its ``meta.json`` fails ``decode_record``. Frames and masks are decoded later, only at the sampled frames.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from unipixel_pl.datamodules.health import BadSample, bad
from unipixel_pl.datamodules.rle import InvalidRLEError, MaskTable
from unipixel_pl.datamodules.schema import MASKS, META, REFER, VIDEO, SampleMeta, SchemaError

RawRecord = dict[str, bytes | str]
"""Members of one key: suffix -> bytes, plus ``__key__`` and ``__url__``."""


def iter_tar(path: str | Path, expected: int | None = None) -> Iterator[RawRecord | BadSample]:
    """Records of one shard in file order; a read error ends the shard with a ``BadSample``.

    Args:
        path: the ``.tar`` file.
        expected: records the manifest announces; fewer is reported as a truncated shard.
    """
    url, current, reading, count = str(path), None, Path(path).name, 0
    try:
        with open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                reading, _, suffix = info.name.partition(".")
                if current is not None and current["__key__"] != reading:
                    yield current
                    count, current = count + 1, None
                current = current or {"__key__": reading, "__url__": url}
                current[suffix] = tar.extractfile(info).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as error:
        yield BadSample(reading, "truncated_tar", f"shard unreadable after {count} records: {error}", url)
        return
    if current is not None:
        yield current
        count += 1
    if expected is not None and count < expected:
        yield BadSample(Path(path).name, "truncated_tar", f"read {count} records, the manifest lists {expected}", url)


@dataclass
class Record:
    """A checked shard record.

    Attributes:
        key: sample key; url: its shard.
        meta: parsed ``meta.json``.
        members: all member bytes by suffix (frames, ``video.mp4`` ...).
        masks: the target mask table, refer: the mask-prompt table (None when absent).
        turn: the turn this record stands for after expansion of a per-video record, else None.
    """

    key: str
    url: str
    meta: SampleMeta
    members: dict[str, bytes]
    masks: MaskTable | None = None
    refer: MaskTable | None = None
    turn: int | None = None

    @property
    def unit_key(self) -> str:
        """Unique key of the online sample (``{key}__t{turn}`` for expanded records)."""
        return self.key if self.turn is None else f"{self.key}__t{self.turn}"


def decode_record(raw: RawRecord) -> Record:
    """Parse ``meta.json`` and the mask tables of a raw record and check them against each other.

    Raises:
        BadSampleError: missing member, bad ``meta.json``, malformed mask table or mask/frame count mismatch.
    """
    key, url = str(raw["__key__"]), str(raw["__url__"])
    members = {name: value for name, value in raw.items() if not name.startswith("__")}
    if META not in members:
        raise bad(key, "missing_member", f"no {META} (members: {sorted(members)})", url)
    try:
        meta = SampleMeta.from_json(members[META])  # type: ignore[arg-type]
    except SchemaError as error:
        raise bad(key, "bad_meta", str(error), url) from error
    _check_media_members(key, url, meta, members)
    masks = _mask_table(key, url, meta, members, MASKS)
    refer = _mask_table(key, url, meta, members, REFER)
    needed = max((o.mask_index for o in meta.objects), default=-1)
    if needed >= 0 and masks is None and refer is None:
        raise bad(key, "missing_member", f"objects use mask rows up to {needed} but there is no {MASKS}", url)
    return Record(key, url, meta, members, masks, refer)  # type: ignore[arg-type]


def _check_media_members(key: str, url: str, meta: SampleMeta, members: dict) -> None:
    names = [*meta.media.frame_names, *([VIDEO] if meta.media.kind == "mp4" else [])]
    missing = [name for name in names if name not in members]
    if missing:
        raise bad(key, "missing_member", f"meta.json lists {missing} but the shard has no such member", url)


def _mask_table(key: str, url: str, meta: SampleMeta, members: dict, name: str) -> MaskTable | None:
    if name not in members:
        return None
    try:
        table = MaskTable.from_json(json.loads(members[name]))
    except (ValueError, UnicodeDecodeError) as error:
        raise bad(key, "invalid_rle", f"{name}: {error}", url) from error
    media = meta.media
    if table.num_frames - {media.num_frames}:
        raise bad(key, "count_mismatch", f"{name} has {sorted(table.num_frames)} frames, media {media.num_frames}", url)
    if (table.height, table.width) != (media.height, media.width):
        raise bad(
            key,
            "count_mismatch",
            f"{name} masks are {table.height}x{table.width}, frames {media.height}x{media.width}",
            url,
        )
    rows = max((o.mask_index for o in meta.objects), default=-1)
    if rows >= len(table.objects):
        raise bad(key, "count_mismatch", f"objects use mask row {rows} but {name} has {len(table.objects)}", url)
    return table


def expand(record: Record) -> list[Record]:
    """One record per turn for per-video records (``meta.expand``), else the record itself."""
    if not record.meta.expand:
        return [record]
    return [replace(record, turn=index) for index in range(len(record.meta.turns))]


def check_masks_decodable(record: Record) -> None:
    """Decode every mask of the record (used by ``unipixel shards verify --deep``)."""
    for table in (record.masks, record.refer):
        if table is None:
            continue
        try:
            table.decode(range(len(table.objects)), range(record.meta.media.num_frames))
        except InvalidRLEError as error:
            raise bad(record.key, "invalid_rle", str(error), record.url) from error
