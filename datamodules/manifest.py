"""``manifest.json`` of a shard set (one source x split): counts, schema version and per-shard checksums."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unipixel_pl.datamodules.schema import SCHEMA_VERSION

MANIFEST = "manifest.json"


@dataclass
class ShardInfo:
    """One ``.tar`` of the set: file name (relative to the manifest), records, online samples, size, sha256."""

    name: str
    num_records: int
    num_samples: int
    num_bytes: int
    sha256: str


@dataclass
class Manifest:
    """What a shard set holds.

    Attributes:
        source: corpus name (e.g. ``refcoco``, ``synthetic``).
        split: ``train``, ``val``, ``test`` ...
        num_records: tar samples over all shards.
        num_samples: samples they yield online (per-video records expand to one per expression).
        data_types: online samples per data-type template (e.g. ``{"seg_video": 120, "ref_{}": 40}``); these are
            the counts behind the mixing weights.
        shards: the shards in reading order.
        filtered: records dropped by each offline filter while writing (reason -> count).
        classes: per-source class tables (semantic sources), else empty.
        schema: sample schema version of every record.
    """

    source: str
    split: str
    num_records: int = 0
    num_samples: int = 0
    data_types: dict[str, int] = field(default_factory=dict)
    shards: list[ShardInfo] = field(default_factory=list)
    filtered: dict[str, int] = field(default_factory=dict)
    classes: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")
        return path


def load_manifest(path: str | Path) -> tuple[Manifest, Path]:
    """Read a manifest from a shard directory or the ``manifest.json`` path; returns it and its directory.

    Raises:
        FileNotFoundError: no manifest there.
        ValueError: the manifest is malformed or of another schema version.
    """
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no shard manifest at {file}; write shards with `unipixel shards ...` first")
    document = json.loads(file.read_text())
    if document.get("schema") != SCHEMA_VERSION:
        raise ValueError(
            f"{file} describes schema {document.get('schema')!r} shards; this reader reads schema {SCHEMA_VERSION}"
        )
    try:
        shards = [ShardInfo(**shard) for shard in document.pop("shards")]
        return Manifest(**document, shards=shards), file.parent
    except (KeyError, TypeError) as error:
        raise ValueError(f"malformed manifest {file}: {error}") from error


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_shards(path: str | Path) -> list[str]:
    """Problems of a shard set (missing shard, size or checksum mismatch); empty when it is intact."""
    manifest, directory = load_manifest(path)
    problems = []
    for shard in manifest.shards:
        file = directory / shard.name
        if not file.is_file():
            problems.append(f"{file}: missing")
        elif file.stat().st_size != shard.num_bytes:
            problems.append(f"{file}: {file.stat().st_size} bytes, manifest says {shard.num_bytes}")
        elif file_sha256(file) != shard.sha256:
            problems.append(f"{file}: sha256 differs from the manifest")
    return problems
