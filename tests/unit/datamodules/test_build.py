"""Online construction of every family from synthetic shard records, then encoding into model inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unipixel_pl.config import MEM_TOKEN, REF_TOKEN, SEG_TOKEN, preset
from unipixel_pl.datamodules.build import BuildConfig, build_sample
from unipixel_pl.datamodules.encode import SampleEncoder
from unipixel_pl.datamodules.manifest import load_manifest
from unipixel_pl.datamodules.reader import Record, decode_record, expand, iter_tar
from unipixel_pl.datamodules.rle import decode_rle
from unipixel_pl.datamodules.tasks import pair_visibility

TOKENS = preset("unipixel-tiny").backbone.tokens


@pytest.fixture(scope="module")
def records(corpus: Path) -> list[Record]:
    manifest, directory = load_manifest(corpus / "train")
    raws = [raw for shard in manifest.shards for raw in iter_tar(directory / shard.name)]
    return [unit for raw in raws for unit in expand(decode_record(raw))]


def _first(records: list[Record], family: str, media: str = "image", turn_type: str | None = None) -> Record:
    return next(
        r
        for r in records
        if r.meta.family == family
        and (r.meta.media.kind == "image") == (media == "image")
        and (turn_type is None or r.meta.turns[r.turn or 0].type == turn_type)
    )


def _text(messages: list[dict], role: str) -> str:
    parts = [m["content"] if isinstance(m["content"], str) else m["content"][-1]["text"] for m in messages]
    return "".join(p for m, p in zip(messages, parts, strict=True) if m["role"] == role)


def _object_masks(record: Record, obj: int, frames: list[int]) -> np.ndarray:
    row = record.meta.objects[obj].mask_index
    return np.stack([decode_rle(record.masks.objects[row][t]) for t in frames])


def test_segmentation_targets_follow_the_drawn_turns(records: list[Record]) -> None:
    record = _first(records, "seg", "image", "query")
    built = build_sample(record, BuildConfig(max_conv_turns=2), np.random.default_rng(0))
    masks = built.task.seg_masks
    assert built.data_type == "seg_image" and masks.shape[:2] == (1, 2)
    questions = [m["content"][-1]["text"] for m in built.task.messages if m["role"] == "user"]
    for k, question in enumerate(questions):
        turn = next(t for t in record.meta.turns if t.text.removeprefix("the ") in question)
        np.testing.assert_array_equal(masks[:, k], _object_masks(record, turn.objects[0], [0]))
    assert _text(built.task.messages, "assistant").count(SEG_TOKEN) == 2


def test_evaluation_uses_first_templates_and_deterministic_prompts(records: list[Record]) -> None:
    record = _first(records, "seg", "video")
    config = BuildConfig(sample_frames=16, frame_sampler="uniform", train=False)
    built = build_sample(record, config, np.random.default_rng(0))
    turn = record.meta.turns[record.turn]
    assert built.task.messages[0]["content"][1]["text"] == f"Can you segment the {turn.text[4:]} in this video?"
    assert built.task.messages[1]["content"] == "The target is <|seg|>."
    assert built.frames.shape[0] == record.meta.media.num_frames
    mem = _first(records, "mem", "video")
    first, second = (build_sample(mem, config, np.random.default_rng(s)) for s in (0, 1))
    assert [p.coords.tolist() for p in first.task.prompts] == [p.coords.tolist() for p in second.task.prompts]


@pytest.mark.parametrize("media", ["image", "video"])
def test_point_and_box_prompts_sit_on_their_objects(records: list[Record], media: str) -> None:
    for family in ("ref", "mem"):
        record = _first(records, family, media)
        built = build_sample(record, BuildConfig(sample_frames=2), np.random.default_rng(3))
        kind = built.data_type.split("_")[1]
        assert kind in ("point", "box")
        assert _text(built.task.messages, "user").count(REF_TOKEN) == len(built.task.prompts) == 1
        prompt = built.task.prompts[0]
        frame = built.frame_indices[prompt.frame]
        union = np.logical_or.reduce([_object_masks(record, o, [frame])[0] for o in range(len(record.meta.objects))])
        x, y = prompt.coords.mean(axis=0).round().astype(int)
        assert prompt.labels.tolist() == ([1] if kind == "point" else [2, 3]) and union[y, x]
        if family == "mem":
            oids = [f"[{o.oid}] {SEG_TOKEN}" for o in record.meta.objects]
            assert _text(built.task.messages, "assistant") in oids
            assert "Options:\n(" in _text(built.task.messages, "user")
            assert built.task.seg_masks.shape[1] == 1


def test_region_prefix_matches_the_mask_prompts(records: list[Record]) -> None:
    record = _first(records, "region", "video")
    built = build_sample(record, BuildConfig(sample_frames=3), np.random.default_rng(0))
    refer = built.task.refer_masks
    user = _text(built.task.messages, "user")
    assert user.startswith("Here is a video with 3 frames")
    assert user.count(MEM_TOKEN) == int(pair_visibility(refer).sum())


def test_multiple_choice_answers_with_the_letter(records: list[Record]) -> None:
    record = _first(records, "mcq")
    built = build_sample(record, BuildConfig(), np.random.default_rng(0))
    user = built.task.messages[0]["content"][1]["text"]
    assert user.endswith("Please only give the best option.") and "(D) " in user
    assert built.task.messages[1]["content"] == f"The best option is ({record.meta.ans})."
    assert built.data_type == "multimodal" and built.task.seg_masks is None


def test_every_family_encodes_with_matching_special_tokens(records: list[Record], encoder: SampleEncoder) -> None:
    rng = np.random.default_rng(0)
    for record in records[:12]:
        built = build_sample(record, BuildConfig(sam_image_size=encoder.sam_image_size), rng)
        sample = encoder(built.frames, built.task, built.key)
        ids = sample.text["input_ids"]
        assert sample.key == record.unit_key and sample.task == built.data_type
        assert int((ids == TOKENS.seg).sum()) == (0 if sample.frame_masks is None else sample.frame_masks.shape[1])
        assert int((ids == TOKENS.ref).sum()) == len(sample.prompts)
        expected_mem = 0 if sample.refer_mask is None else int(sample.refer_mask.flatten(2).any(-1).sum())
        assert int((ids == TOKENS.mem).sum()) == expected_mem
