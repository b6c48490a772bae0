"""Requests: parsing of --point/--box/--mask, checks against the media, and the LLM frame choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.unit.inference.helpers import moving_square
from unipixel_pl.inference.encoding import llm_frame_indices
from unipixel_pl.inference.media import open_media
from unipixel_pl.inference.requests import (
    MaskPrompt,
    RegionPrompt,
    Request,
    RequestError,
    check_request,
    parse_box,
    parse_mask,
    parse_point,
)

VIDEO = open_media(moving_square(6))  # 6 frames of 48x64


def test_points_and_boxes_parse_with_optional_frame() -> None:
    assert parse_point("12,30") == RegionPrompt((12.0, 30.0), 0)
    assert parse_point(" 12.5,30@4 ") == RegionPrompt((12.5, 30.0), 4)
    box = parse_box("1,2,30,40@3")
    assert (box.kind, box.coords, box.frame) == ("box", (1.0, 2.0, 30.0, 40.0), 3)


@pytest.mark.parametrize("text", ["12", "12,30,4", "a,b", "12,30@x", "nan,3", "12;30"])
def test_malformed_points_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(RequestError, match="expected X,Y\\[@FRAME\\]"):
        parse_point(text)


def test_mask_files_parse_palette_and_grey_with_frame(tmp_path: Path) -> None:
    grey = np.zeros((48, 64), dtype=np.uint8)
    grey[5:9, 10:20] = 255
    Image.fromarray(grey).save(tmp_path / "grey.png")
    palette = Image.fromarray((grey > 0).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 128, 0, 0])
    palette.save(tmp_path / "obj@1.png")  # an '@' in the name itself
    parsed = parse_mask(f"{tmp_path / 'grey.png'}@2")
    assert parsed.frame == 2 and parsed.mask.sum() == 40 and parsed.mask[5, 10]
    named = parse_mask(str(tmp_path / "obj@1.png"))
    assert named.frame == 0 and np.array_equal(named.mask, grey > 0)
    with pytest.raises(RequestError, match="cannot read mask"):
        parse_mask(str(tmp_path / "missing.png"))


def test_region_maps_to_sam2_pixels_of_the_squashed_frame() -> None:
    prompt = RegionPrompt((32.0, 12.0, 64.0, 48.0), 5).to_visual_prompt((48, 64), 128, llm_frame=2)
    assert prompt.coords.tolist() == [[64.0, 32.0], [128.0, 128.0]]
    assert prompt.labels.tolist() == [2, 3] and prompt.frame == 2
    point = RegionPrompt((16.0, 24.0)).to_visual_prompt((48, 64), 128, llm_frame=0)
    assert torch.equal(point.labels, torch.tensor([1])) and point.coords.tolist() == [[32.0, 64.0]]


def test_a_valid_request_passes() -> None:
    mask = MaskPrompt(np.ones((48, 64), dtype=bool), frame=5)
    regions = [RegionPrompt((0.0, 0.0), 0), RegionPrompt((0.0, 0.0, 64.0, 48.0), 5)]
    check_request(Request(VIDEO, "Is [0] <|ref|> near <|ref|> and [0]?", regions, [mask]), VIDEO)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (Request(VIDEO, "  "), "the prompt is empty"),
        (Request(VIDEO, "What is <|mem|>?"), "contains <\\|mem\\|>"),
        (Request(VIDEO, "What is this?", [RegionPrompt((1.0, 1.0))]), "has 0 <\\|ref\\|> but 1 point/box"),
        (Request(VIDEO, "<|ref|>", [RegionPrompt((65.0, 1.0))]), "point 65,1 lies outside the 64x48"),
        (Request(VIDEO, "<|ref|>", [RegionPrompt((1.0, -0.5))]), "point 1,-0.5 lies outside"),
        (Request(VIDEO, "<|ref|>", [RegionPrompt((1.0, 1.0, 10.0, 49.0))]), "box 1,1,10,49 lies outside"),
        (Request(VIDEO, "<|ref|>", [RegionPrompt((9.0, 1.0, 3.0, 5.0))]), "X1 <= X2"),
        (Request(VIDEO, "<|ref|>", [RegionPrompt((1.0, 1.0), 6)]), "on frame 6, past the end of <array> \\(6 frame"),
        (Request(VIDEO, "[0]", [], [MaskPrompt(np.ones((48, 64), bool), 9)]), "on frame 9, past the end"),
        (Request(VIDEO, "[0]", [], [MaskPrompt(np.ones((64, 48), bool))]), "mask <array> is 48x64 .* frames are 64x48"),
        (Request(VIDEO, "[0]", [], [MaskPrompt(np.zeros((48, 64), bool))]), "has no object pixel"),
    ],
)
def test_bad_requests_are_named(request_: Request, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        check_request(request_, VIDEO)


def test_llm_frames_are_uniform_and_keep_prompted_frames() -> None:
    assert llm_frame_indices(10, 16, [3]) == list(range(10))
    uniform = llm_frame_indices(100, 16, [])
    assert uniform[0] == 0 and uniform[-1] == 99 and len(uniform) == 16
    kept = llm_frame_indices(100, 16, [8, 50, 50])
    assert {8, 50} <= set(kept) and len(kept) == 16 == len(set(kept))
    assert set(uniform) - set(kept) == {7, 53}  # the nearest sampled frames were replaced
    with pytest.raises(RequestError, match="3 different frames but the LLM sees 2"):
        llm_frame_indices(10, 2, [1, 5, 7])
