"""The device half of the input pipelines: uint8 host media -> ``pixel_values_videos``, ``sam_frames``, targets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from unipixel_pl.config import preset
from unipixel_pl.datamodules.encode import SampleRecord
from unipixel_pl.datamodules.synthetic import SyntheticDataModule
from unipixel_pl.models.pixel_pipeline import prepare_batch
from unipixel_pl.models.sam2_transforms import resize_target_masks, sam2_transform
from unipixel_pl.types import UniPixelBatch
from unipixel_pl.vision_patchify import CLIP_MEAN, CLIP_STD, normalize_frames

CONFIG = preset("unipixel-tiny")
VISION, SAM_SIZE = CONFIG.backbone.vision, CONFIG.mask_decoder.image_size


def host_batch(task: str = "seg", image_size: int = 64) -> tuple[SyntheticDataModule, UniPixelBatch]:
    data = SyntheticDataModule(CONFIG, tasks=[task], batch_size=2, video_frames=3, image_size=image_size)
    loader = data.train_dataloader()
    return data, loader.collate_fn([loader.dataset[i] for i in (1, 2)])  # an image and a video


def prepare(batch: UniPixelBatch) -> UniPixelBatch:
    return prepare_batch(batch, VISION, SAM_SIZE)


def test_normalisation_table_equals_float64_arithmetic() -> None:
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8))
    frames[0, 0, :4, :] = torch.tensor([[0, 0, 0], [255, 255, 255], [1, 128, 254], [77, 3, 200]], dtype=torch.uint8)
    pixels = frames.permute(0, 3, 1, 2).double() / 255.0
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float64).view(1, 3, 1, 1)
    assert torch.equal(normalize_frames(frames), ((pixels - mean) / std).float())


@pytest.mark.parametrize("image_size", [64, 336])  # 64 px is smart-resized on the host, 336 px (12 x 28) is not
def test_prepared_inputs_equal_the_host_computation(image_size: int) -> None:
    data, batch = host_batch(image_size=image_size)
    frames, masks = list(batch.frames), list(batch.frame_masks)
    assert all(f is not None and f.dtype == torch.uint8 for f in frames)
    assert (batch.videos[0] is frames[0]) == (image_size == 336)  # one tensor when the resize keeps the size
    scenes = [data.train_dataloader().dataset[i] for i in (1, 2)]
    expected_pixels = torch.cat([_host_pixel_values(data, record) for record in scenes])
    prepared = prepare(batch)
    assert not prepared.has_host_media and prepared.pixel_values_videos.dtype == torch.float32
    assert torch.equal(prepared.pixel_values_videos, expected_pixels)
    for b in range(2):
        assert torch.equal(prepared.sam_frames[b], sam2_transform(frames[b], SAM_SIZE))
        assert torch.equal(prepared.target_masks[b], resize_target_masks(masks[b], SAM_SIZE))


def _host_pixel_values(data: SyntheticDataModule, record: SampleRecord) -> torch.Tensor:
    """The standalone processor's float pixels of the sample's original frames (resize, normalise, patchify)."""
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "x"}]}]
    return data.encoder.processor(messages, [record.frames.numpy()])["pixel_values_videos"]


def test_prepare_is_idempotent_and_refuses_both_forms() -> None:
    _, batch = host_batch()
    prepared = prepare(batch)
    pixels, sam = prepared.pixel_values_videos, prepared.sam_frames
    again = prepare(prepared)
    assert again.pixel_values_videos is pixels and again.sam_frames is sam
    _, batch = host_batch()
    batch.pixel_values_videos = torch.zeros(1)
    with pytest.raises(ValueError, match="both `videos`"):
        prepare(batch)
    _, batch = host_batch()
    batch.sam_frames = [torch.zeros(1), None]
    with pytest.raises(ValueError, match=r"both `frames\[0\]`"):
        prepare(batch)


def test_a_given_model_input_is_kept_where_the_host_entry_is_none() -> None:
    _, batch = host_batch()
    given = torch.zeros(3, 3, SAM_SIZE, SAM_SIZE)
    batch.frames[1], batch.sam_frames = None, [None, given]
    assert prepare(batch).sam_frames[1] is given


def test_transfer_moves_a_shared_tensor_once_and_keeps_the_class() -> None:
    _, batch = host_batch(image_size=336)
    shard_like = dataclasses.make_dataclass("Tagged", [("tag", str, "")], bases=(UniPixelBatch,))
    tagged = shard_like(**{f.name: getattr(batch, f.name) for f in dataclasses.fields(UniPixelBatch)}, tag="k")
    moved = tagged.to("meta")
    assert isinstance(moved, shard_like) and moved.tag == "k"
    assert moved.frames[0].device.type == "meta" and moved.videos[0] is moved.frames[0]
