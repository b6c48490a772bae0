"""bfloat16 point/box coordinates in training (``UniPixelConfig.bf16_prompt_coords``, MODEL.md §11 #9)."""

from __future__ import annotations

import pytest
import torch

from unipixel_pl.config import preset
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.models.prompt_encoder import PromptEncoder
from unipixel_pl.types import VisualPrompt

IMAGE = 768
"""UniPixel's SAM 2 input size. bfloat16 keeps 8 significant bits: its spacing is 0.5 px in [64, 128), 1 px in
[128, 256), 2 px in [256, 512) and 4 px in [512, 1024)."""


def encoder(bf16_coords: bool) -> PromptEncoder:
    torch.manual_seed(0)
    return PromptEncoder(
        llm_hidden=12, sam_hidden=8, sam_image_size=IMAGE, merger_width=16, temporal_features=4,
        bf16_coords_in_training=bf16_coords,
    )  # fmt: skip


def embed(prompt_encoder: PromptEncoder, prompts: list[VisualPrompt]) -> torch.Tensor:
    with torch.no_grad():
        return prompt_encoder.encode_prompts(prompts, [2] * len(prompts))


# Worked by hand. SAM 2 adds 0.5 to the coordinates; the reference does it in bfloat16 after rounding them:
#   300.5 -> 300 (spacing 2), +0.5 -> 300.5 -> 300       700.25 -> 700 (spacing 4), +0.5 -> 700
#   100.3 -> 100.5 (spacing 0.5), +0.5 -> 101             40.2 -> 40.25 (spacing 0.25), +0.5 -> 40.75
#   257 -> 256 (a tie, to the even 256), +0.5 -> 256      511 -> 512 (a tie, to the even 512), +0.5 -> 512
#   200 + 0.5 -> 200 (a tie, to the even 200)              201 + 0.5 -> 202 (a tie, to the even 202)
# so they act as fp32 coordinates that SAM 2's fp32 +0.5 turns into those values.
RAW = [
    VisualPrompt.point(300.5, 700.25),
    VisualPrompt.box(100.3, 40.2, 257.0, 511.0),
    VisualPrompt.point(200.0, 201.0),
]
AS_IF_FP32 = [
    VisualPrompt.point(299.5, 699.5),
    VisualPrompt.box(100.5, 40.25, 255.5, 511.5),
    VisualPrompt.point(199.5, 201.5),
]


def test_training_rounds_coordinates_through_bf16_as_the_reference() -> None:
    reference, corrected = encoder(bf16_coords=True).train(), encoder(bf16_coords=False).train()
    assert torch.equal(embed(reference, RAW), embed(corrected, AS_IF_FP32))
    assert not torch.equal(embed(reference, RAW), embed(corrected, RAW))


@pytest.mark.parametrize("bf16_coords", [True, False])
def test_inference_and_the_corrected_mode_keep_fp32_coordinates(bf16_coords: bool) -> None:
    exact = embed(encoder(bf16_coords=False).eval(), RAW)
    assert torch.equal(embed(encoder(bf16_coords).eval(), RAW), exact)
    assert torch.equal(embed(encoder(bf16_coords=False).train(), RAW), exact)


def test_prompts_exact_in_bf16_are_unchanged() -> None:
    """Below 128 px, half-pixel coordinates and their +0.5 shift are exact in bfloat16 too."""
    prompts = [VisualPrompt.point(17.0, 100.5), VisualPrompt.box(3.0, 10.0, 40.0, 127.5)]
    assert torch.equal(embed(encoder(True).train(), prompts), embed(encoder(False).train(), prompts))


def test_the_model_config_switch_reaches_the_prompt_encoder() -> None:
    config = preset("unipixel-tiny")
    assert not LitUniPixel(config).prompt_encoder.bf16_coords_in_training
    config.bf16_prompt_coords = True
    assert LitUniPixel(config).prompt_encoder.bf16_coords_in_training
