"""Shard writing and reading: manifest counts and checksums, deterministic bytes, records read back intact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from unipixel_pl.datamodules.manifest import load_manifest, verify_shards
from unipixel_pl.datamodules.reader import decode_record, expand, iter_tar
from unipixel_pl.datamodules.schema import META
from unipixel_pl.datamodules.synthetic_shards import synthetic_sample, write_synthetic
from unipixel_pl.datamodules.writer import ShardSetWriter

from .conftest import CORPUS_SIZE, IMAGE_SIZE, VIDEO_FRAMES


def test_manifest_counts_and_checksums(corpus: Path) -> None:
    manifest, directory = load_manifest(corpus / "train")
    assert [s.num_records for s in manifest.shards] == [8, 8, 8, 6]
    assert manifest.num_records == CORPUS_SIZE
    assert manifest.num_samples == sum(manifest.data_types.values()) == sum(s.num_samples for s in manifest.shards)
    for shard in manifest.shards:
        data = (directory / shard.name).read_bytes()
        assert shard.sha256 == hashlib.sha256(data).hexdigest() and shard.num_bytes == len(data)
    assert verify_shards(corpus / "train") == []


def test_records_read_back_as_written(corpus: Path) -> None:
    manifest, directory = load_manifest(corpus / "train")
    records = [decode_record(raw) for shard in manifest.shards for raw in iter_tar(directory / shard.name)]
    assert [r.key for r in records] == [f"synthetic__{i:07d}" for i in range(CORPUS_SIZE)]
    for index in (0, 7, 29):
        written = synthetic_sample(index, "train", IMAGE_SIZE, VIDEO_FRAMES)
        record = records[index]
        assert record.meta == written.meta
        assert [record.members[n] for n in written.meta.media.frame_names] == written.frames
    units = sum(len(expand(record)) for record in records)
    assert units == manifest.num_samples


def test_writing_is_deterministic_and_verify_detects_changes(tmp_path: Path) -> None:
    first = write_synthetic(tmp_path / "a", 6, "val", 32, 2, samples_per_shard=4)
    second = write_synthetic(tmp_path / "b", 6, "val", 32, 2, samples_per_shard=4)
    assert [s.sha256 for s in first.shards] == [s.sha256 for s in second.shards]
    other_seed = write_synthetic(tmp_path / "c", 6, "val", 32, 2, seed=1, samples_per_shard=4)
    assert other_seed.shards[0].sha256 != first.shards[0].sha256
    shard = tmp_path / "a" / first.shards[1].name
    shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    assert verify_shards(tmp_path / "a") == [f"{shard}: sha256 differs from the manifest"]
    (tmp_path / "a" / first.shards[0].name).unlink()
    assert "missing" in verify_shards(tmp_path / "a")[0]


def test_writer_rejects_duplicates_and_foreign_samples(tmp_path: Path) -> None:
    sample = synthetic_sample(0, "train", 32, 1)
    with ShardSetWriter(tmp_path, "synthetic", "train") as writer:
        writer.write(sample)
        with pytest.raises(ValueError, match="duplicate sample key 'synthetic__0000000'"):
            writer.write(sample)
        with pytest.raises(ValueError, match="this writer writes synthetic"):
            writer.write(synthetic_sample(1, "val", 32, 1))
        writer.drop("too_many_objects")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["num_records"] == 1 and manifest["filtered"] == {"too_many_objects": 1}


def test_tar_members_are_grouped_by_key(corpus: Path) -> None:
    manifest, directory = load_manifest(corpus / "train")
    raw = next(iter_tar(directory / manifest.shards[0].name))
    assert raw["__key__"] == "synthetic__0000000"
    assert {META, "masks.json", "f0000.jpg"} <= set(raw)
