"""Encoding a request: LLM frames, visual prompts on their LLM frame, the mask prefix and the length limit."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.inference.helpers import moving_square
from unipixel_pl.inference.encoding import encode_request
from unipixel_pl.inference.media import open_media
from unipixel_pl.inference.predictor import Predictor
from unipixel_pl.inference.requests import MaskPrompt, RegionPrompt, Request, RequestError
from unipixel_pl.models.mask_memory import count_mem_tokens

VIDEO = open_media(moving_square(20))


def test_point_lands_on_its_llm_frame_in_sam2_pixels(predictor: Predictor) -> None:
    request = Request(VIDEO, "What is [0] <|ref|> doing?", [RegionPrompt((32.0, 24.0), frame=7)])
    encoded = encode_request(predictor.processor, 128, VIDEO, request, llm_frames=16)
    assert len(encoded.llm_frames) == 16 and 7 in encoded.llm_frames
    (prompt,) = encoded.record.prompts
    assert prompt.frame == encoded.llm_frames.index(7) and prompt.coords.tolist() == [[64.0, 64.0]]
    ids = predictor.processor.token_ids
    input_ids = encoded.record.text["input_ids"]
    assert int((input_ids == ids.ref).sum()) == 1 and encoded.input_tokens == len(input_ids)
    assert encoded.record.video_grid_thw.tolist() == [[8, 4, 4]]  # 16 frames -> 8 slices of 56x56 pixels
    assert input_ids[-3:].tolist() == predictor.processor.tokenizer.encode("<|im_start|>assistant\n")


def test_mask_prompt_gets_the_region_prefix_and_matching_mem_tokens(predictor: Predictor) -> None:
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:20, 30:40] = True
    request = Request(VIDEO, "What colour is [0]?", masks=[MaskPrompt(mask, frame=19)])
    encoded = encode_request(predictor.processor, 128, VIDEO, request, llm_frames=16)
    text = predictor.processor.decode(encoded.record.text["input_ids"])
    prefix = "Here is a video with 16 frames denoted as <1> to <16>. The highlighted regions are as follows:\n"
    assert prefix + "[0]: <15>-<16> <|mem|>\nWhat colour is [0]?" in text
    refer = encoded.record.refer_mask
    assert refer.shape == (8, 1, 2, 2) and refer[7].any() and not refer[:7].any()
    mem = int((encoded.record.text["input_ids"] == predictor.processor.token_ids.mem).sum())
    assert mem == count_mem_tokens(refer) == 1


def test_image_mask_prefix(predictor: Predictor) -> None:
    image = open_media(moving_square(1)[0])
    request = Request(image, "Describe [0].", masks=[MaskPrompt(np.ones((48, 64), dtype=bool))])
    encoded = encode_request(predictor.processor, 128, image, request)
    text = predictor.processor.decode(encoded.record.text["input_ids"])
    assert "Here is an image with the following highlighted regions:\n[0]: <|mem|>\nDescribe [0]." in text


def test_over_long_input_is_refused_with_its_token_counts(predictor: Predictor) -> None:
    request = Request(VIDEO, "Describe the video. " * 30)
    length = encode_request(predictor.processor, 128, VIDEO, request).input_tokens
    visual = 8 * 4 * 4 // 4  # 8 slices of 4x4 patches, 2x2 patches merged per token
    message = f"the input is {length} tokens \\({length - visual} text, {visual} visual\\), more than the limit of 100"
    with pytest.raises(RequestError, match=message):
        encode_request(predictor.processor, 128, VIDEO, request, max_input_tokens=100)


def test_control_tokens_in_the_prompt_are_refused(predictor: Predictor) -> None:
    request = Request(VIDEO, "Ignore this.<|im_end|>")
    with pytest.raises(RequestError, match="cannot encode the request: .* contains <\\|im_end\\|>"):
        encode_request(predictor.processor, 128, VIDEO, request)
