"""The Predictor: same answers and masks as the model's own generation path, batching, checkpoint detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.unit.inference.helpers import moving_square
from unipixel_pl.checkpoints.official import save_official
from unipixel_pl.inference.encoding import encode_request
from unipixel_pl.inference.media import open_media
from unipixel_pl.inference.predictor import CheckpointError, InferenceSettings, Predictor
from unipixel_pl.inference.requests import RegionPrompt, Request
from unipixel_pl.models.generation import greedy_generate
from unipixel_pl.models.sam2_transforms import sam2_transform

FRAMES = moving_square(10)
PROMPT = "Please segment the red square in this video. <|seg|>"


def test_prediction_equals_greedy_generate_over_all_frames(predictor: Predictor) -> None:
    prediction = predictor.predict(FRAMES, "What is [0] <|ref|>? <|seg|>", points=[(20, 20, 7)])
    assert prediction.masks.shape == (1, 10, 48, 64) and prediction.masks.dtype == torch.bool
    media = open_media(FRAMES)
    request = Request(media, "What is [0] <|ref|>? <|seg|>", [RegionPrompt((20.0, 20.0), 7)])
    batch = predictor.collate([encode_request(predictor.processor, 128, media, request).record])
    batch.sam_frames = [sam2_transform(torch.from_numpy(FRAMES), 128)]  # SAM 2 sees every frame
    expected = greedy_generate(predictor.model, batch, 0, predictor.settings.max_new_tokens)
    assert prediction.token_ids == expected.sequences[0].tolist() and 7 in prediction.llm_frames
    assert prediction.num_objects == 1 and 0 < int(prediction.masks.sum()) < prediction.masks.numel()
    assert torch.equal(prediction.masks, expected.masks[0])


def test_batch_of_requests_on_two_media_equals_one_by_one(predictor: Predictor) -> None:
    image = FRAMES[3]
    box = RegionPrompt((10.0, 10.0, 40.0, 30.0), 0)
    requests = [
        Request(FRAMES, PROMPT),
        Request(image, "Which object is <|ref|>? <|seg|> <|seg|>", [box]),
        Request(FRAMES, "Describe the video."),
    ]
    batched = predictor.predict_batch(requests)
    assert [p.masks.shape for p in batched] == [(1, 10, 48, 64), (2, 1, 48, 64), (0, 10, 48, 64)]
    for request, prediction in zip(requests, batched, strict=True):
        single = predictor.predict_batch([request])[0]
        assert single.token_ids == prediction.token_ids and single.text == prediction.text
        assert torch.equal(single.masks, prediction.masks)


def test_stream_yields_each_frame_once_for_all_requests(predictor: Predictor) -> None:
    stream = predictor.stream([Request(FRAMES, PROMPT), Request(FRAMES, "Two: <|seg|> <|seg|>")])
    frames = list(stream.frames)
    assert [answer.num_objects for answer in stream.answers] == [1, 2] and len(frames) == 10
    assert [tuple(m.shape) for m in frames[5].masks] == [(1, 48, 64), (2, 48, 64)]
    np.testing.assert_array_equal(frames[5].rgb, FRAMES[5])
    with pytest.raises(ValueError, match="requests about one media"):
        predictor.stream([Request(FRAMES, PROMPT), Request(FRAMES[0], PROMPT)])


def test_masks_given_as_arrays_and_files(predictor: Predictor, tmp_path: Path) -> None:
    mask = np.zeros((48, 64), dtype=bool)
    mask[12:28, 0:16] = True
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    from_array = predictor.predict(FRAMES[0], "What colour is [0]? <|seg|>", masks=[mask])
    from_file = predictor.predict(FRAMES[0], "What colour is [0]? <|seg|>", masks=[tmp_path / "mask.png"])
    assert from_array.token_ids == from_file.token_ids and torch.equal(from_array.masks, from_file.masks)


def test_bfloat16_backbone_with_float32_heads_agrees_with_float32(tiny_checkpoint: Path, predictor: Predictor) -> None:
    half = Predictor.from_pretrained(tiny_checkpoint, "cpu", torch.bfloat16, predictor.settings)
    assert half.model.backbone.hf_model.dtype == torch.bfloat16
    assert {p.dtype for p in half.model.mask_decoder.parameters()} == {torch.float32}
    mask = np.zeros((48, 64), dtype=bool)
    mask[12:28, 0:16] = True
    request = {"media": FRAMES[:4], "prompt": "Is [0] <|ref|> like [0]? <|seg|>", "points": [(8, 20, 1)]}
    low, full = half.predict(**request, masks=[mask]), predictor.predict(**request, masks=[mask])
    assert low.masks.shape == full.masks.shape == (1, 4, 48, 64)
    assert (low.masks != full.masks).float().mean() < 0.01


def test_settings_must_be_positive() -> None:
    with pytest.raises(ValueError, match="InferenceSettings.llm_frames must be at least 1, got 0"):
        InferenceSettings(llm_frames=0)


def test_official_checkpoints_are_detected(predictor: Predictor, tmp_path: Path) -> None:
    save_official(predictor.model, predictor.processor.tokenizer, tmp_path / "official", dtype=torch.float32)
    official = Predictor.from_pretrained(tmp_path / "official", "cpu")
    assert official.model.config.mem_pooling == "reference"  # the published weights' switches
    ours = predictor.model.state_dict()
    for key, value in official.model.state_dict().items():
        assert torch.equal(value, ours[key]), key


def test_directories_that_are_not_checkpoints_are_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="neither unipixel.json .* nor config.json"):
        Predictor.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="is not a directory"):
        Predictor.from_pretrained(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    with pytest.raises(CheckpointError, match="model_type 'qwen2_5_vl'"):
        Predictor.from_pretrained(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "unipixel.json").write_text((tiny_checkpoint / "unipixel.json").read_text())
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        Predictor.from_pretrained(broken)
