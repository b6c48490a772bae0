"""Streamed SAM 2 tracking equals tracking over frames encoded all at once."""

from __future__ import annotations

import pytest
import torch

from tests.unit.inference.helpers import moving_square
from unipixel_pl.inference.media import open_media
from unipixel_pl.inference.predictor import Predictor
from unipixel_pl.inference.streaming import StreamedFrameFeatures, track_media
from unipixel_pl.models.sam2_transforms import sam2_transform


def test_streamed_tracking_matches_the_whole_video_path(predictor: Predictor) -> None:
    decoder = predictor.model.mask_decoder
    frames = moving_square(12)  # longer than the 7-frame memory bank
    tokens = torch.randn(2, 2, 32, generator=torch.Generator().manual_seed(0))
    streamed = list(track_media(decoder, open_media(frames), tokens))
    whole = list(decoder.stream_segment(sam2_transform(torch.from_numpy(frames), 128), tokens, (48, 64)))
    assert [frame.index for frame in streamed] == list(range(12))
    for frame, expected in zip(streamed, whole, strict=True):
        assert torch.equal(torch.from_numpy(frame.rgb), torch.from_numpy(frames[frame.index]))
        torch.testing.assert_close(frame.segmentation.mask_logits, expected.mask_logits, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(frame.segmentation.object_score_logits, expected.object_score_logits)
    assert (streamed[-1].segmentation.mask_logits > 0).any()


def test_features_are_encoded_in_order_only(predictor: Predictor) -> None:
    frames = iter(sam2_transform(torch.from_numpy(moving_square(3)), 128))
    features = StreamedFrameFeatures(predictor.model.mask_decoder, frames, num_frames=3)
    feats, _ = features.frame(0, num_objects=2)
    assert features.num_frames == 3 and feats[-1].shape == (64, 2, 32)
    with pytest.raises(RuntimeError, match="frame 2 asked after frame 0"):
        features.frame(2, num_objects=2)


def test_no_object_tracks_nothing(predictor: Predictor) -> None:
    assert list(track_media(predictor.model.mask_decoder, open_media(moving_square(3)), torch.zeros(0, 2, 32))) == []
