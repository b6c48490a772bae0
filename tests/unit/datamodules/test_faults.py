"""Bad data: each fault is skipped, logged with its key and counted in training, and an error naming the key in
evaluation."""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from unipixel_pl.datamodules.collate import Collator
from unipixel_pl.datamodules.encode import SampleEncoder
from unipixel_pl.datamodules.evaluation import ExactEvalStream
from unipixel_pl.datamodules.health import BadSample, BadSampleError
from unipixel_pl.datamodules.mixing import Source, SourceShards
from unipixel_pl.datamodules.pipeline import StreamConfig
from unipixel_pl.datamodules.reader import iter_tar
from unipixel_pl.datamodules.synthetic_shards import synthetic_sample
from unipixel_pl.datamodules.training import MixedTrainStream
from unipixel_pl.datamodules.writer import write_shards

from .shard_helpers import make_processor, read_raw, write_raw

BAD_KEY = "synthetic__0000012"


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four image segmentation records (one data type) in one shard; the second is the one we break."""
    directory = tmp_path_factory.mktemp("clean")
    samples = [synthetic_sample(index, "train", 40, 1) for index in (0, 12, 24, 36)]
    write_shards(samples, directory, "synthetic", "train")
    return directory


def _shard(directory: Path) -> Path:
    return directory / "synthetic-train-000000.tar"


def _corrupt_jpeg(record: dict) -> None:
    record["f0000.jpg"] = b"\xff\xd8 definitely not a jpeg"


def _invalid_rle(record: dict) -> None:
    masks = json.loads(record["masks.json"])
    masks["objects"][0][0] = {"size": [40, 40], "counts": "0zz"}
    record["masks.json"] = json.dumps(masks).encode()


def _missing_member(record: dict) -> None:
    del record["f0000.jpg"]


def _count_mismatch(record: dict) -> None:
    masks = json.loads(record["masks.json"])
    masks["objects"] = [row + [None] for row in masks["objects"]]  # two frames of masks for a one-frame image
    record["masks.json"] = json.dumps(masks).encode()


MEMBER_FAULTS: dict[str, Callable[[dict], None]] = {
    "corrupt_image": _corrupt_jpeg,
    "invalid_rle": _invalid_rle,
    "missing_member": _missing_member,
    "count_mismatch": _count_mismatch,
}


def _broken(clean: Path, tmp_path: Path, fault: str) -> Path:
    directory = tmp_path / fault
    shutil.copytree(clean, directory)
    if fault == "truncated_tar":
        with tarfile.open(_shard(clean)) as tar:
            member = next(m for m in tar.getmembers() if m.name.startswith(BAD_KEY + ".meta"))
        data = _shard(clean).read_bytes()
        _shard(directory).write_bytes(data[: member.offset_data + member.size // 2])
        return directory
    records = read_raw(_shard(clean))
    MEMBER_FAULTS[fault](next(r for r in records if r["__key__"] == BAD_KEY))
    write_raw(_shard(directory), records)
    return directory


FAULTS = ["truncated_tar", *MEMBER_FAULTS]


@pytest.mark.parametrize("fault", FAULTS)
def test_training_skips_logs_and_counts_each_fault(
    clean: Path, tmp_path: Path, encoder: SampleEncoder, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    source = SourceShards.load(Source(str(_broken(clean, tmp_path, fault))))
    stream = MixedTrainStream([source], make_processor(encoder), Collator(0), 2, StreamConfig(shuffle_buffer=1), 4)
    with caplog.at_level(logging.WARNING, logger="unipixel_pl.datamodules"):
        batches = list(stream)
    assert len(batches) == 4 and all(b.batch_size == 2 for b in batches)
    assert all(BAD_KEY not in b.keys for b in batches)
    assert batches[-1].skipped.get(fault, 0) >= 1 and set(batches[-1].skipped) == {fault}
    assert any(BAD_KEY in message and fault in message for message in caplog.messages)


@pytest.mark.parametrize("fault", FAULTS)
def test_evaluation_raises_naming_the_bad_key(clean: Path, tmp_path: Path, encoder: SampleEncoder, fault: str) -> None:
    source = SourceShards.load(Source(str(_broken(clean, tmp_path, fault))))
    stream = ExactEvalStream([source], make_processor(encoder, train=False), Collator(0), 1, StreamConfig())
    with pytest.raises(BadSampleError, match=f"bad sample '{BAD_KEY}'.*{fault}"):
        list(stream)


def test_shard_cut_at_a_record_boundary_is_reported_against_the_manifest(
    clean: Path, tmp_path: Path, encoder: SampleEncoder
) -> None:
    directory = tmp_path / "short"
    shutil.copytree(clean, directory)
    write_raw(_shard(directory), read_raw(_shard(clean))[:3])
    *records, last = iter_tar(_shard(directory), expected=4)
    assert len(records) == 3 and isinstance(last, BadSample) and last.reason == "truncated_tar"
    source = SourceShards.load(Source(str(directory)))
    stream = ExactEvalStream([source], make_processor(encoder, train=False), Collator(0), 1, StreamConfig())
    with pytest.raises(BadSampleError, match="read 3 records, the manifest lists 4"):
        list(stream)


def test_a_data_type_without_any_usable_sample_stops_with_its_name(
    clean: Path, tmp_path: Path, encoder: SampleEncoder
) -> None:
    directory = tmp_path / "all_bad"
    shutil.copytree(clean, directory)
    records = read_raw(_shard(clean))
    for record in records:
        _corrupt_jpeg(record)
    write_raw(_shard(directory), records)
    source = SourceShards.load(Source(str(directory)))
    stream = MixedTrainStream([source], make_processor(encoder), Collator(0), 1, StreamConfig(shuffle_buffer=1), 1)
    with pytest.raises(RuntimeError, match="seg_image: 200 samples failed in a row"):
        list(stream)
