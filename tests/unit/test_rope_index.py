"""mRoPE position ids: the 5.x rule against transformers itself, the 4.53 rule by hand and against recorded ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import Qwen2_5_VLConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

from unipixel_pl.rope_index import get_rope_index, next_position_ids

FIXTURE = Path(__file__).parents[2] / ".." / "shared" / "fixtures" / "reference-tiny"
KIND = {"text": 0, "image": 1, "video": 2}


@pytest.fixture(scope="module")
def hf_model() -> Qwen2_5_VLModel:
    text = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
    text |= {"intermediate_size": 16, "vocab_size": 64, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 0}
    text["rope_scaling"] = {"rope_type": "default", "mrope_section": [2, 1, 1]}
    vision = {"depth": 1, "hidden_size": 16, "num_heads": 2, "intermediate_size": 16, "out_hidden_size": 16}
    vision |= {"tokens_per_second": 2, "spatial_merge_size": 2}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision)
    with torch.device("meta"):
        return Qwen2_5_VLModel(config)


def make_batch(rows: list[list[tuple]], padding_side: str = "right") -> dict[str, torch.Tensor | None]:
    """Token types, mask and grids for rows of ("text", n) / ("image" | "video", (t, h, w)) segments."""
    types, images, videos = [], [], []
    for row in rows:
        row_types = []
        for kind, value in row:
            if kind == "text":
                row_types += [0] * value
                continue
            row_types += [KIND[kind]] * (value[0] * value[1] * value[2] // 4)
            (images if kind == "image" else videos).append(list(value))
        types.append(row_types)
    length = max(len(row) for row in types)
    mm_token_type_ids = torch.zeros(len(rows), length, dtype=torch.long)
    attention_mask = torch.zeros(len(rows), length, dtype=torch.long)
    for index, row in enumerate(types):
        span = slice(length - len(row), length) if padding_side == "left" else slice(0, len(row))
        mm_token_type_ids[index, span] = torch.tensor(row)
        attention_mask[index, span] = 1
    return {
        "input_ids": torch.randint(2, 60, (len(rows), length), generator=torch.Generator().manual_seed(0)),
        "mm_token_type_ids": mm_token_type_ids,
        "image_grid_thw": torch.tensor(images) if images else None,
        "video_grid_thw": torch.tensor(videos) if videos else None,
        "attention_mask": attention_mask,
    }


MIXED = [
    [("text", 2), ("image", (1, 2, 2)), ("text", 1), ("video", (2, 4, 2)), ("text", 3)],
    [("text", 1), ("video", (1, 6, 4)), ("text", 2), ("image", (1, 4, 4)), ("text", 1)],
    [("text", 5)],
    [("video", (3, 2, 4)), ("image", (1, 2, 6)), ("text", 2)],
]
CASES = {
    "text_only": ([[("text", 7)], [("text", 4)]], None),
    "image": ([[("text", 3), ("image", (1, 4, 6)), ("text", 5)]], None),
    "video": ([[("text", 2), ("video", (2, 4, 4)), ("text", 4)]], [1.0]),
    "video_fractional_seconds": ([[("text", 2), ("video", (4, 2, 4)), ("text", 1)]], [0.7]),
    "mixed": (MIXED, [1.0, 0.5, 1.5]),
    "mixed_no_seconds": (MIXED, None),
}


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_transformers_rule_equals_transformers(hf_model, case, padding_side):
    rows, seconds = CASES[case]
    batch = make_batch(rows, padding_side)
    batch["second_per_grid_ts"] = torch.tensor(seconds) if seconds is not None else None
    expected_positions, expected_deltas = hf_model.get_rope_index(**batch)
    positions, deltas = get_rope_index(**batch, spatial_merge_size=2, tokens_per_second=2, rule="transformers")
    assert torch.equal(positions, expected_positions)
    assert torch.equal(deltas, expected_deltas)


def test_transformers_rule_without_attention_mask(hf_model):
    batch = make_batch(MIXED[:2]) | {"attention_mask": None}
    positions, deltas = get_rope_index(**batch, spatial_merge_size=2, tokens_per_second=2, rule="transformers")
    expected_positions, expected_deltas = hf_model.get_rope_index(**batch)
    assert torch.equal(positions, expected_positions) and torch.equal(deltas, expected_deltas)


def _video_case(seconds: float, rule: str) -> tuple[list[list[int]], int]:
    batch = make_batch([[("text", 2), ("video", (2, 4, 4)), ("text", 2)]])
    batch["second_per_grid_ts"] = torch.tensor([seconds])
    positions, deltas = get_rope_index(**batch, spatial_merge_size=2, tokens_per_second=2, rule=rule)
    return positions[:, 0].tolist(), int(deltas)


def test_reference_rule_by_hand():
    # text 0,1; video starts at 2: 2 temporal patches x 2x2 merged tokens, temporal step 1 s * 2 tokens/s = 2;
    # text resumes after the largest vision position (4 + 1 = 5).
    assert _video_case(1.0, "reference") == (
        [
            [0, 1, 2, 2, 2, 2, 4, 4, 4, 4, 5, 6],
            [0, 1, 2, 2, 3, 3, 2, 2, 3, 3, 5, 6],
            [0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 5, 6],
        ],
        7 - 12,
    )


def test_reference_rule_truncates_seconds_before_scaling():
    # int(0.5) = 0: every temporal patch at the start; text resumes after the spatial maximum 3.
    assert _video_case(0.5, "reference") == (
        [
            [0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 4, 5],
            [0, 1, 2, 2, 3, 3, 2, 2, 3, 3, 4, 5],
            [0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 4, 5],
        ],
        6 - 12,
    )
    assert _video_case(1.7, "reference") == _video_case(1.0, "reference")


def test_transformers_rule_by_hand():
    # 0.5 s * 2 tokens/s = 1 per temporal patch; text resumes at start + max(4, 4) / 2 = 4, ignoring time.
    assert _video_case(0.5, "transformers") == (
        [
            [0, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 5],
            [0, 1, 2, 2, 3, 3, 2, 2, 3, 3, 4, 5],
            [0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 4, 5],
        ],
        6 - 12,
    )


@pytest.mark.parametrize("rule, pad_position", [("reference", 1), ("transformers", 0)])
def test_padding_positions(rule, pad_position):
    batch = make_batch(MIXED[:3], padding_side="left")
    positions, _ = get_rope_index(**batch, spatial_merge_size=2, tokens_per_second=2, rule=rule)
    padded = batch["attention_mask"] == 0
    assert padded.any() and (positions[:, padded] == pad_position).all()


@pytest.mark.parametrize("rule", ["reference", "transformers"])
def test_next_position_ids_continue_the_prompt(rule):
    prompt = make_batch(MIXED[:3], padding_side="left")
    full = make_batch([row + [("text", 3)] for row in MIXED[:3]], padding_side="left")
    kwargs = {"spatial_merge_size": 2, "tokens_per_second": 2, "rule": rule}
    _, deltas = get_rope_index(**prompt, **kwargs)
    full_positions, _ = get_rope_index(**full, **kwargs)
    assert torch.equal(next_position_ids(deltas, full["attention_mask"], 3), full_positions[..., -3:])


def test_vision_run_not_matching_its_grid_raises():
    batch = make_batch([[("text", 2), ("video", (2, 4, 4))]])
    batch["video_grid_thw"] = torch.tensor([[2, 4, 6]])
    with pytest.raises(ValueError, match="run of 8 video tokens does not match its grid"):
        get_rope_index(**batch, spatial_merge_size=2, tokens_per_second=2, rule="reference")


@pytest.mark.parametrize("extra", [True, False])
def test_grid_count_mismatch_raises(extra):
    batch = make_batch([[("text", 2), ("image", (1, 4, 4))]])
    batch["image_grid_thw"] = torch.tensor([[1, 4, 4]] * 2) if extra else None
    with pytest.raises(ValueError, match="more rows than" if extra else "more image runs"):
        get_rope_index(**batch, spatial_merge_size=2, tokens_per_second=2, rule="transformers")


def test_bad_shapes_raise():
    batch = make_batch([[("text", 4)]])
    with pytest.raises(ValueError, match="must match input_ids"):
        get_rope_index(
            **batch | {"attention_mask": torch.ones(1, 3)}, spatial_merge_size=2, tokens_per_second=2, rule="reference"
        )
    with pytest.raises(ValueError, match="without any attended token"):
        get_rope_index(
            **batch | {"attention_mask": torch.zeros(1, 4)}, spatial_merge_size=2, tokens_per_second=2, rule="reference"
        )


@pytest.mark.skipif(not FIXTURE.is_dir(), reason="shared reference-tiny fixture not available")
def test_reference_rule_equals_recorded_transformers_4_53_ids():
    from safetensors.torch import load_file

    inputs, outputs = load_file(FIXTURE / "inputs.safetensors"), load_file(FIXTURE / "outputs.safetensors")
    config = json.loads((FIXTURE / "checkpoint" / "config.json").read_text())
    grids = {"a": "image_as_video", "e": "image_as_video", "b": "video", "c": "video", "d": "video"}
    for case in json.loads((FIXTURE / "manifest.json").read_text())["cases"]:
        input_ids = inputs[f"{case}.eval.input_ids"]
        types = torch.where(input_ids == config["video_token_id"], 2, 0)
        types = torch.where(input_ids == config["image_token_id"], 1, types)
        grid = inputs[f"media.{grids[case[0]]}.video_grid_thw"]
        is_image = bool((types == 1).any())
        positions, deltas = get_rope_index(
            input_ids,
            types,
            grid if is_image else None,
            None if is_image else grid,
            inputs["media.video.second_per_grid_ts"],
            inputs[f"{case}.eval.attention_mask"],
            spatial_merge_size=config["vision_config"]["spatial_merge_size"],
            tokens_per_second=config["vision_config"]["tokens_per_second"],
            rule="reference",
        )
        assert torch.equal(positions, outputs[f"{case}.eval.position_ids"]), case
        assert torch.equal(deltas, outputs[f"{case}.eval.rope_deltas"]), case
