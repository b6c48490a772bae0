"""SAM 2 input transforms: squashed square frames with ImageNet normalisation, and thresholded target masks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unipixel_pl.models.sam2_transforms import IMAGENET_MEAN, IMAGENET_STD, resize_target_masks, sam2_transform


def test_a_flat_colour_becomes_its_normalised_value() -> None:
    frames = torch.empty(2, 30, 50, 3, dtype=torch.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 0, 51
    out = sam2_transform(frames, 16)
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.float32
    for channel, value in enumerate((1.0, 0.0, 0.2)):
        expected = (value - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        torch.testing.assert_close(out[:, channel], torch.full((2, 16, 16), expected))


def test_frames_must_be_uint8_rgb() -> None:
    with pytest.raises(ValueError, match=r"uint8 \(T, H, W, 3\)"):
        sam2_transform(torch.zeros(1, 8, 8, 3), 16)
    with pytest.raises(ValueError, match=r"uint8 \(T, H, W, 3\)"):
        sam2_transform(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 16)


def test_any_covered_pixel_survives_downscaling() -> None:
    masks = torch.zeros(1, 2, 64, 64, dtype=torch.bool)
    masks[0, 0, 10, 10] = True
    out = resize_target_masks(masks, 16)
    assert out.shape == (1, 2, 16, 16) and out.dtype == torch.bool
    assert out[0, 0].sum() >= 1 and not out[0, 1].any()
    with pytest.raises(ValueError, match=r"\(T, O, H, W\)"):
        resize_target_masks(masks[0], 16)


def test_matches_the_reference_transforms(reference_tiny: Path) -> None:
    inputs = load_file(reference_tiny / "inputs.safetensors")
    for media in ("image", "video"):
        frames = sam2_transform(inputs[f"media.{media}_rgb"], 96)
        torch.testing.assert_close(frames, inputs[f"media.{media}.sam2_frames"], rtol=0, atol=1e-6)
    for case, masks in (("a_image_seg", "media.image_gt_masks"), ("c_video_ref_seg", "media.video_gt_masks")):
        assert torch.equal(resize_target_masks(inputs[masks], 96), inputs[f"{case}.train.label_mask.0"]), case
