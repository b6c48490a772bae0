"""Videos stored as their original ``video.mp4`` member: written, probed, sampled and decoded with PyAV."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.unit.inference.helpers import moving_square, write_mp4
from unipixel_pl.config import preset
from unipixel_pl.datamodules.build import BuildConfig, build_sample
from unipixel_pl.datamodules.datamodule import UniPixelDataModule
from unipixel_pl.datamodules.frames import uniform_indices
from unipixel_pl.datamodules.health import BadSampleError
from unipixel_pl.datamodules.mixing import Source
from unipixel_pl.datamodules.reader import decode_record
from unipixel_pl.datamodules.schema import VIDEO, SchemaError, validate_meta
from unipixel_pl.datamodules.synthetic_shards import synthetic_sample
from unipixel_pl.datamodules.writer import ShardSample, mp4_media, write_shards
from unipixel_pl.inference.media import MediaError
from unipixel_pl.models.pixel_pipeline import prepare_batch

FRAMES, SIZE, STRIDE, SAMPLED = 12, 48, 2, 3
SEG_VIDEO_INDEX = 6
"""Record 6 of the synthetic corpus is a segmentation video (``KINDS[0]``, odd block)."""


def mp4_bytes(frames: np.ndarray, tmp_path: Path) -> bytes:
    return write_mp4(tmp_path / "clip.mp4", frames).read_bytes()


def all_frames(video: bytes) -> np.ndarray:
    """Every frame decoded with PyAV directly (the independent reference)."""
    with av.open(io.BytesIO(video)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.fixture(scope="module")
def mp4_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[ShardSample, np.ndarray]:
    """A synthetic segmentation video re-stored as an mp4 keeping every 2nd frame, and its ``(O, T, H, W)`` masks."""
    sample = synthetic_sample(SEG_VIDEO_INDEX, "val", SIZE, FRAMES)
    frames = np.stack([_jpeg(data) for data in sample.frames])
    video = mp4_bytes(frames, tmp_path_factory.mktemp("mp4"))
    masks = sample.masks.decode(range(len(sample.masks.objects)), range(FRAMES)).transpose(1, 0, 2, 3)
    strided = type(sample.masks).from_masks(masks[:, ::STRIDE])
    meta = dataclasses.replace(sample.meta, media=mp4_media(video, stride=STRIDE))
    return ShardSample(meta, video=video, masks=strided), masks


def _jpeg(data: bytes) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def test_mp4_media_probes_count_size_and_strided_frames(tmp_path: Path) -> None:
    media = mp4_media(mp4_bytes(moving_square(9, 32, 48), tmp_path), stride=4)
    assert (media.kind, media.num_frames, media.height, media.width) == ("mp4", 3, 32, 48)
    assert media.orig_frame_indices == [0, 4, 8] and media.stride == 4 and media.frame_names == []
    validate_meta(dataclasses.replace(synthetic_sample(0, "val", SIZE, 1).meta, media=media))


def test_writer_and_schema_refuse_inconsistent_mp4_samples(mp4_sample) -> None:
    sample, _ = mp4_sample
    with pytest.raises(ValueError, match="an mp4 sample needs `video`"):
        dataclasses.replace(sample, video=None).members()
    with pytest.raises(SchemaError, match="orig_frame_indices"):
        validate_meta(dataclasses.replace(sample.meta, media=dataclasses.replace(sample.meta.media, num_frames=5)))
    with pytest.raises(MediaError, match="cannot read video"):
        mp4_media(b"not a video")


def test_mp4_shard_is_read_back_through_the_datamodule(mp4_sample, tmp_path: Path) -> None:
    sample, masks = mp4_sample
    write_shards([sample], tmp_path / "val", "synthetic", "val")
    module = UniPixelDataModule(val=[Source(str(tmp_path / "val"))], eval_sample_frames=SAMPLED)
    module.setup("validate")
    batches = list(module.val_dataloader())
    assert len(batches) == len(sample.meta.turns)  # one sample per expression of the video
    orig = [STRIDE * i for i in uniform_indices(FRAMES // STRIDE, SAMPLED)]
    expected = all_frames(sample.video)[orig]
    for batch in batches:
        assert batch.frames[0].dtype == torch.uint8 and batch.frame_sizes[0] == (SIZE, SIZE)
        np.testing.assert_array_equal(batch.frames[0].numpy(), expected)
        turn = sample.meta.turns[int(batch.keys[0].rsplit("__t", 1)[1])]
        target = masks[turn.objects][:, orig].any(axis=0)  # the turn's objects merged, at the sampled frames
        np.testing.assert_array_equal(batch.frame_masks[0][:, 0].numpy(), target)


def test_mp4_training_batches_prepare_into_model_inputs(mp4_sample, tmp_path: Path) -> None:
    sample, _ = mp4_sample
    write_shards([sample], tmp_path / "train", "synthetic", "val")
    config = preset("unipixel-tiny")
    train = [Source(str(tmp_path / "train"))]
    module = UniPixelDataModule(config, train=train, sample_frames=SAMPLED, steps_per_epoch=2, shuffle_buffer=2)
    module.setup("fit")
    batches = list(module.train_dataloader())
    strided = all_frames(sample.video)[::STRIDE]
    assert len(batches) == 2
    for batch in batches:
        assert tuple(batch.frames[0].shape) == (SAMPLED, SIZE, SIZE, 3)
        for frame in batch.frames[0].numpy():  # randomly sampled, each one of the kept frames
            assert any(np.array_equal(frame, kept) for kept in strided)
        prepared = prepare_batch(batch, config.backbone.vision, config.mask_decoder.image_size)
        size = config.mask_decoder.image_size
        assert tuple(prepared.sam_frames[0].shape) == (SAMPLED, 3, size, size) and not prepared.has_host_media


def test_corrupt_mp4_is_a_bad_sample_naming_its_key(mp4_sample, tmp_path: Path) -> None:
    sample, _ = mp4_sample
    members = sample.members()
    members[VIDEO] = members[VIDEO][: len(members[VIDEO]) // 3]  # truncated: later frames are missing
    record = decode_record({**members, "__url__": str(tmp_path / "shard.tar")})
    config = BuildConfig(sample_frames=SAMPLED, frame_sampler="uniform", train=False)
    with pytest.raises(BadSampleError, match="unreadable_video") as error:
        build_sample(record, config, np.random.default_rng(0))
    assert error.value.bad.key == record.key
