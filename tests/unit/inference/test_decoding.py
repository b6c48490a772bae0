"""Batched greedy decoding gives every request exactly what single-sample decoding gives it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from tests.unit.inference.helpers import moving_square
from unipixel_pl.inference.decoding import batched_greedy_decode
from unipixel_pl.inference.encoding import encode_request
from unipixel_pl.inference.media import open_media
from unipixel_pl.inference.predictor import Predictor
from unipixel_pl.inference.requests import RegionPrompt, Request
from unipixel_pl.models.backbone import BackboneOutput
from unipixel_pl.models.generation import greedy_decode, single_sample
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.types import UniPixelBatch


@pytest.fixture(scope="module")
def batch(predictor: Predictor) -> UniPixelBatch:
    """Three requests of different lengths: an image with a prompt <|seg|>, a video with a box, a short one."""
    image, video = open_media(moving_square(1)[0]), open_media(moving_square(7))
    requests = [
        (image, Request(image, "Please segment the red square in this image. <|seg|>")),
        (
            video,
            Request(video, "What is [0] <|ref|> doing with the dog on the left?", [RegionPrompt((3, 4, 20, 30), 2)]),
        ),
        (image, Request(image, "Hi")),
    ]
    return predictor.collate([encode_request(predictor.processor, 128, m, r).record for m, r in requests])


@pytest.fixture(scope="module")
def lively_model(predictor: Predictor) -> LitUniPixel:
    """The tiny model with large language-model weights, so greedy answers vary from token to token."""
    model = copy.deepcopy(predictor.model)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.backbone.named_parameters():
            if "language_model" in name and parameter.dim() == 2:
                parameter.normal_(0, 0.3)
    return model


@contextmanager
def scripted(model: LitUniPixel, scripts: list[list[int]]) -> Iterator[None]:
    """Make the k-th backbone call prefer token ``scripts[b][k]`` for sample ``b`` (+1e4 on its logit)."""
    original, calls = model.backbone.forward, [0]

    def forward(*args: object, **kwargs: object) -> BackboneOutput:
        out = original(*args, **kwargs)
        for b, script in enumerate(scripts):
            if calls[0] < len(script):
                out.logits[b, :, script[calls[0]]] += 1e4
        calls[0] += 1
        return out

    model.backbone.forward = forward
    try:
        yield
    finally:
        del model.backbone.forward


def test_batched_tokens_equal_single_sample_decoding(lively_model: LitUniPixel, batch: UniPixelBatch) -> None:
    decoded = batched_greedy_decode(lively_model, batch, max_new_tokens=10)
    for b in range(batch.batch_size):
        single = greedy_decode(lively_model, single_sample(batch, b), max_new_tokens=10)
        assert decoded[b].token_ids == single.token_ids and len(set(single.token_ids)) > 3
        torch.testing.assert_close(decoded[b].seg_states, single.seg_states, rtol=1e-4, atol=1e-5)
    assert [d.seg_states.shape[0] for d in decoded] == [1, 0, 0]


def test_generated_seg_tokens_and_early_stops(predictor: Predictor, batch: UniPixelBatch) -> None:
    tokens = predictor.model.config.backbone.tokens
    scripts = [[7, tokens.seg, 9, tokens.im_end], [tokens.seg, tokens.seg, tokens.im_end], [11, 12, 13, 14, 15, 16]]
    with scripted(predictor.model, scripts):
        decoded = batched_greedy_decode(predictor.model, batch, max_new_tokens=5)
    assert [d.token_ids for d in decoded] == [scripts[0], scripts[1], scripts[2][:5]]
    assert [d.seg_states.shape[0] for d in decoded] == [2, 2, 0]  # prompt <|seg|> first, then generated ones
    for b, script in enumerate(scripts):
        with scripted(predictor.model, [script]):
            single = greedy_decode(predictor.model, single_sample(batch, b), max_new_tokens=5)
        assert single.token_ids == decoded[b].token_ids
        torch.testing.assert_close(decoded[b].seg_states, single.seg_states, rtol=1e-4, atol=1e-5)
