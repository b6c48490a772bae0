"""UniPixelProcessor, the ChatML template and labels, and the Qwen2.5-VL pixel pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

from unipixel_pl.config import IGNORE_INDEX, TokenIds, VisionConfig, preset
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.rope_index import get_rope_index
from unipixel_pl.tokenizer import build_tiny_tokenizer, load_tokenizer
from unipixel_pl.vision_patchify import frame_pixel_budget, patchify, pixel_values, process_video, smart_resize

FIXTURE = Path(__file__).parents[2] / ".." / "shared" / "fixtures" / "reference-tiny"
SMALL_BUDGET = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28, "budget_frames": 1}
VIDEO_PAD = 493


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def processor(tokenizer):
    return UniPixelProcessor.from_config(tokenizer, preset("unipixel-tiny").backbone, **SMALL_BUDGET)


def frames(count: int, height: int = 56, width: int = 84, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def conversation(*media: str, answer: str = "Sure, it is <|seg|>.") -> list[dict]:
    content = [{"type": kind} for kind in media] + [{"type": "text", "text": "Please segment the red ball."}]
    return [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]


# --- smart resize and budgets -------------------------------------------------------------------------------


def test_smart_resize_equals_transformers_on_many_sizes():
    rng = np.random.default_rng(0)
    sizes = [(int(h), int(w)) for h, w in rng.integers(15, 3000, (400, 2))] + [(15, 15), (27, 2700), (4000, 20)]
    budgets = [(128 * 784, 256 * 784), (4 * 784, 16 * 784), (56 * 56, 28 * 28 * 1280), (100 * 784, 144 * 784 * 16)]
    for height, width in sizes:
        if max(height, width) / min(height, width) > 200:
            continue
        for low, high in budgets:
            expected = hf_smart_resize(height, width, 28, low, high)
            assert smart_resize(height, width, 28, low, high) == expected, (height, width, low, high)


def test_smart_resize_clamps_tiny_sides_like_qwen_vl_utils():
    # transformers rounds sides <= 14 px to 0 and rescales from scratch; qwen_vl_utils (UniPixel's resize) keeps 28.
    assert smart_resize(13, 2600, 28, 3136, 10**6) == (28, 2604)
    assert hf_smart_resize(13, 2600, 28, 3136, 10**6) == (28, 812)
    assert smart_resize(537, 14, 28, 3136, 12544) == (672, 28) != hf_smart_resize(537, 14, 28, 3136, 12544)


def test_smart_resize_rejects_extreme_aspect_ratio():
    with pytest.raises(ValueError, match="aspect ratio 201.0 > 200"):
        smart_resize(10, 2010)


def test_frame_pixel_budget():
    assert frame_pixel_budget(1) == 256 * 784 * 16
    assert frame_pixel_budget(3) == 256 * 784 * 5
    assert frame_pixel_budget(16) == frame_pixel_budget(40) == 256 * 784
    assert frame_pixel_budget(3, max_pixels=100, budget_frames=8) == 200
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        frame_pixel_budget(0)


def test_processor_default_budgets(tokenizer):
    processor = UniPixelProcessor(tokenizer, TokenIds.after_vocabulary(480), VisionConfig())
    assert (processor.min_pixels, processor.frame_max_pixels(8)) == (128 * 784, 256 * 784 * 2)


# --- pixels against transformers' PIL/numpy Qwen2-VL image processor ------------------------------------------


def test_image_patches_equal_qwen2vl_image_processor_without_resize():
    image = frames(1, 56, 84)
    expected = Qwen2VLImageProcessorPil(do_resize=False)(image[0], return_tensors="pt")
    pixel_values, grid = process_video(image, VisionConfig(), min_pixels=4 * 784, max_pixels=16 * 784)
    assert grid.tolist() == expected["image_grid_thw"][0].tolist() == [1, 4, 6]
    assert (pixel_values - expected["pixel_values"]).abs().max() <= 1e-5


@pytest.mark.parametrize("size", [(61, 97), (200, 150), (30, 41)])
def test_image_patches_equal_qwen2vl_image_processor_with_resize(size):
    image = frames(1, *size, seed=1)
    low, high = 4 * 784, 16 * 784
    expected = Qwen2VLImageProcessorPil(min_pixels=low, max_pixels=high)(image[0], return_tensors="pt")
    pixel_values, grid = process_video(image, VisionConfig(), min_pixels=low, max_pixels=high)
    assert grid.tolist() == expected["image_grid_thw"][0].tolist()
    assert (pixel_values - expected["pixel_values"]).abs().max() <= 1e-5


def test_video_patch_layout_by_loop():
    vision = VisionConfig()
    pixels = torch.randn(3, 3, 56, 84, generator=torch.Generator().manual_seed(0))
    pixel_values, grid = patchify(pixels, vision)
    padded = torch.cat([pixels, pixels[-1:]])  # 3 frames -> 4 by repeating the last
    rows = []
    for t in range(2):
        for unit_y in range(2):
            for unit_x in range(3):
                for y in (2 * unit_y, 2 * unit_y + 1):
                    for x in (2 * unit_x, 2 * unit_x + 1):
                        patch = padded[2 * t : 2 * t + 2, :, 14 * y : 14 * y + 14, 14 * x : 14 * x + 14]
                        rows.append(patch.permute(1, 0, 2, 3).reshape(-1))  # columns (C, t, p, p)
    assert grid.tolist() == [2, 4, 6]
    assert torch.equal(pixel_values, torch.stack(rows))


def test_frame_input_types_agree(processor):
    video = frames(3)
    as_numpy = processor(conversation("video"), [video])
    as_tensor = processor(conversation("video"), [torch.from_numpy(video)])
    as_pil = processor(conversation("video"), [[Image.fromarray(frame) for frame in video]])
    for other in (as_tensor, as_pil):
        assert torch.equal(other["pixel_values_videos"], as_numpy["pixel_values_videos"])
        assert torch.equal(other["input_ids"], as_numpy["input_ids"])


def test_uint8_videos_for_the_device_give_the_same_pixel_values(processor):
    video = frames(3, 61, 97)  # not a multiple of 28: resized on the host
    host = processor(conversation("video"), [video])
    device = processor(conversation("video"), [video], return_pixel_values=False)
    assert device["pixel_values_videos"] is None and device["videos"][0].dtype == torch.uint8
    assert tuple(device["videos"][0].shape) == (3, 14 * 4, 14 * 6, 3)  # (T, 14 g_h, 14 g_w, 3)
    assert torch.equal(device["video_grid_thw"], host["video_grid_thw"])
    assert torch.equal(pixel_values(device["videos"][0], VisionConfig()), host["pixel_values_videos"])
    kept = frames(2, 56, 84)  # already 28-aligned within the budget: no resize, the same pixels
    assert np.array_equal(processor(conversation("video"), [kept], return_pixel_values=False)["videos"][0], kept)


def test_rgba_frames_are_composited_on_white(processor):
    transparent = Image.new("RGBA", (84, 56), (10, 20, 30, 0))
    white = Image.new("RGB", (84, 56), (255, 255, 255))
    pixels = processor(conversation("image"), [transparent])["pixel_values_videos"]
    assert torch.equal(pixels, processor(conversation("image"), [white])["pixel_values_videos"])


# --- grids, placeholders and token types ----------------------------------------------------------------------


@pytest.mark.parametrize("kind, count, grid", [("image", 1, [1, 4, 6]), ("video", 3, [2, 4, 6])])
def test_grid_and_placeholder_count(processor, kind, count, grid):
    out = processor(conversation(kind), [frames(count)])
    tokens = grid[0] * grid[1] * grid[2] // 4
    assert out["video_grid_thw"].tolist() == [grid]
    assert out["pixel_values_videos"].shape == (grid[0] * grid[1] * grid[2], 3 * 2 * 14 * 14)
    assert out["pixel_values_videos"].dtype == torch.float32
    is_pad = out["input_ids"] == VIDEO_PAD
    assert int(is_pad.sum()) == tokens
    assert torch.equal(out["mm_token_type_ids"], torch.where(is_pad, 2, 0))
    first = int(is_pad.nonzero()[0])
    assert out["input_ids"][first - 1] == 489 and out["input_ids"][first + tokens] == 490  # vision start / end
    assert out["second_per_grid_ts"].tolist() == [1.0]


def test_two_media_parts_in_order(processor):
    messages = conversation("image", "video")
    out = processor(messages, [frames(1), frames(5, 112, 56)])
    assert out["video_grid_thw"].tolist() == [[1, 4, 6], [3, 8, 4]]
    assert int((out["input_ids"] == VIDEO_PAD).sum()) == 6 + 24
    assert out["pixel_values_videos"].shape[0] == 24 + 96


def test_position_ids_equal_get_rope_index(processor):
    out = processor(conversation("video"), [frames(3)], second_per_grid_ts=1.0)
    positions, _ = get_rope_index(
        out["input_ids"][None],
        out["mm_token_type_ids"][None],
        None,
        out["video_grid_thw"],
        out["second_per_grid_ts"],
        None,
        spatial_merge_size=2,
        tokens_per_second=2,
        rule="reference",
    )
    assert torch.equal(out["position_ids"], positions[:, 0])
    start = int((out["input_ids"] == VIDEO_PAD).nonzero()[0])
    assert out["position_ids"][0, start + 6 : start + 12].tolist() == [start + 2] * 6  # second temporal patch


def test_text_only_conversation(processor, tokenizer):
    out = processor([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}])
    assert out["pixel_values_videos"] is None and out["video_grid_thw"] is None and out["second_per_grid_ts"] is None
    length = len(out["input_ids"])
    assert torch.equal(out["position_ids"], torch.arange(length).expand(3, -1))
    assert torch.equal(out["attention_mask"], torch.ones(length, dtype=torch.long))


# --- template and labels -------------------------------------------------------------------------------------


def test_chat_template_text(processor):
    text = processor.apply_chat_template(conversation("video"))
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|>Please segment the red ball.<|im_end|>\n"
        "<|im_start|>assistant\nSure, it is <|seg|>.<|im_end|>\n"
    )
    system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert processor.apply_chat_template(system, add_generation_prompt=True) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    text_first = [{"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "image"}]}]
    assert "user\nLook:<|vision_start|><|video_pad|><|vision_end|><|im_end|>" in processor.apply_chat_template(
        text_first
    )


@pytest.mark.skipif(not FIXTURE.is_dir(), reason="shared reference-tiny fixture not available")
def test_chat_template_equals_official_jinja_for_videos_and_strings(processor):
    import jinja2

    template = jinja2.Environment().from_string((FIXTURE / "checkpoint" / "chat_template.jinja").read_text())
    messages = conversation("video") + [{"role": "user", "content": "And now?"}]
    for prompt in (False, True):
        expected = template.render(messages=messages, add_generation_prompt=prompt)
        assert processor.apply_chat_template(messages, prompt) == expected


def test_labels_of_two_turn_conversation_token_by_token(processor, tokenizer):
    messages = conversation("video", answer="It is <|seg|>.") + [
        {"role": "user", "content": "And the blue one?"},
        {"role": "assistant", "content": "The target is <|seg|>."},
    ]
    out = processor(messages, [frames(3)])

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    pads = "<|video_pad|>" * 12
    prompt_1 = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>"
        f"{pads}<|vision_end|>Please segment the red ball.<|im_end|>\n<|im_start|>assistant\n"
    )
    prompt_2 = "\n<|im_start|>user\nAnd the blue one?<|im_end|>\n<|im_start|>assistant\n"
    answer_1, answer_2 = encode("It is <|seg|>.<|im_end|>"), encode("The target is <|seg|>.<|im_end|>")
    pieces = [(encode(prompt_1), False), (answer_1, True), (encode(prompt_2), False), (answer_2, True)]
    expected_ids = [token for piece, _ in pieces for token in piece]
    expected_labels = [token if kept else IGNORE_INDEX for piece, kept in pieces for token in piece]
    assert out["input_ids"].tolist() == expected_ids
    assert out["labels"].tolist() == expected_labels
    assert processor.decode(out["labels"]) == "It is <|seg|>.<|im_end|>The target is <|seg|>.<|im_end|>"


def test_generation_prompt_and_trailing_newline(processor, tokenizer):
    prompt = processor(conversation("video")[:1], [frames(1)], add_generation_prompt=True)
    assert processor.decode(prompt["input_ids"]).endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert (prompt["labels"] == IGNORE_INDEX).all()
    train = processor(conversation("video"), [frames(1)])
    evaluation = processor(conversation("video"), [frames(1)], keep_trailing_newline=True)
    assert processor.decode(train["input_ids"]).endswith("<|seg|>.<|im_end|>")
    assert evaluation["input_ids"].tolist() == train["input_ids"].tolist() + tokenizer.encode("\n")
    assert evaluation["labels"][-1] == IGNORE_INDEX
    assert evaluation["labels"][:-1].tolist() == train["labels"].tolist()


def test_decode_round_trip(processor):
    out = processor(conversation("image"), [frames(1)])
    expected = processor.apply_chat_template(conversation("image")).rstrip("\n")
    assert processor.decode(out["input_ids"]) == expected.replace("<|video_pad|>", "<|video_pad|>" * 6)
    assert processor.decode(out["input_ids"], skip_special_tokens=True).startswith("system\nYou are")


# --- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "messages, videos, match",
    [
        ([], None, "empty conversation"),
        ([{"role": "robot", "content": "hi"}], None, "unknown role 'robot' in message 0"),
        (conversation("video"), None, "1 image/video part.* but 0 video"),
        (conversation("video"), [frames(1), frames(1)], "1 image/video part.* but 2 video"),
        ([{"role": "user", "content": "hi"}], [frames(1)], "0 image/video part.* but 1 video"),
        (conversation("video"), [frames(1)[0]], r"uint8 \(T, H, W, 3\).*got uint8 \(56, 84, 3\)"),
        (conversation("video"), [frames(1).astype(np.float32)], r"got float32 \(1, 56, 84, 3\)"),
        (conversation("video"), [np.zeros((0, 56, 84, 3), np.uint8)], r"T, H, W >= 1"),
        (conversation("video"), [[Image.new("RGB", (8, 8)), Image.new("RGB", (9, 8))]], "one size"),
        (conversation("video"), ["video.mp4"], "got str"),
        ([{"role": "user", "content": [{"type": "audio"}]}], None, "message 0 has part"),
        ([{"role": "user", "content": "a <|im_end|> b"}], None, r"contains <\|im_end\|>"),
        ([{"role": "user", "content": "<|video_pad|>"}], None, r"contains <\|video_pad\|>"),
    ],
)
def test_errors(processor, messages, videos, match):
    with pytest.raises(ValueError, match=match):
        processor(messages, videos)


def test_tokenizer_that_does_not_match_token_ids_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="tokenizer and TokenIds disagree"):
        UniPixelProcessor(tokenizer, TokenIds(), VisionConfig())


# --- parity with the official processor outputs recorded in the fixture ------------------------------------


@pytest.mark.skipif(not FIXTURE.is_dir(), reason="shared reference-tiny fixture not available")
def test_equals_official_processor_outputs():
    from safetensors.torch import load_file

    inputs, outputs = load_file(FIXTURE / "inputs.safetensors"), load_file(FIXTURE / "outputs.safetensors")
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    config = json.loads((FIXTURE / "checkpoint" / "config.json").read_text())
    processor = UniPixelProcessor(
        load_tokenizer(FIXTURE / "checkpoint"),
        TokenIds.after_vocabulary(380),
        VisionConfig(tokens_per_second=config["vision_config"]["tokens_per_second"]),
        min_pixels=3136,  # the budgets the fixture's messages carry
        max_pixels=12544,
        budget_frames=1,
    )
    for case, spec in manifest["cases"].items():
        is_video = case[0] in "bcd"
        video = inputs["media.video_rgb" if is_video else "media.image_rgb"]
        media = "media.video" if is_video else "media.image_as_video"
        # The e case used Qwen's image path; as a one-frame video only its pad token id differs (392 -> 393).
        messages = [_as_video_parts(message) for message in spec["messages"]]
        for mode in ("train", "eval", "gen"):
            out = processor(
                messages[:1] if mode == "gen" else messages,
                [video],
                add_generation_prompt=mode == "gen",
                keep_trailing_newline=mode == "eval",
            )
            expected = inputs[f"{case}.{mode}.input_ids"][0]
            assert torch.equal(out["input_ids"], torch.where(expected == 392, 393, expected)), (case, mode)
            if mode == "train":
                assert torch.equal(out["labels"], inputs[f"{case}.train.labels"][0]), case
            if mode == "eval":
                assert torch.equal(out["position_ids"], outputs[f"{case}.eval.position_ids"][:, 0]), case
        assert torch.equal(out["video_grid_thw"], inputs[f"{media}.video_grid_thw"]), case
        assert (out["pixel_values_videos"] - inputs[f"{media}.pixel_values_videos"]).abs().max() <= 1e-6, case


def _as_video_parts(message: dict) -> dict:
    content = message["content"]
    if isinstance(content, list):
        content = [{"type": "video"} if part["type"] != "text" else part for part in content]
    return {"role": message["role"], "content": content}
