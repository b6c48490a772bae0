"""Video-corpus converters on tiny files written in the original formats: Ref-YouTube-VOS, Ref-DAVIS17, MeViS,
ReVOS, Ref-SAV, VideoRefer (region, point/box and memory tasks) and Inst-IT (region and memory tasks)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from unipixel_pl.config import REF_TOKEN, SEG_TOKEN
from unipixel_pl.datamodules.build import BuildConfig, build_sample
from unipixel_pl.datamodules.health import BadSampleError
from unipixel_pl.datamodules.reader import expand
from unipixel_pl.datamodules.rle import decode_rle
from unipixel_pl.datamodules.schema import stable_hash

from .converter_helpers import box_mask, build_every_unit, convert, rle, write_jpeg

H, W = 16, 24
A, B = rle(box_mask(H, W, 1, 6, 1, 8)), rle(box_mask(H, W, 8, 14, 10, 20))


def _frames(directory: Path, names: list[str]) -> None:
    for name in names:
        write_jpeg(directory / name, H, W)


def _decoded(table_row: list) -> list:
    return [None if cell is None else decode_rle(cell) for cell in table_row]


def test_ref_youtube_vos_uses_the_running_expression_counter(tmp_path: Path) -> None:
    videos = {
        "v1": {"frames": ["00000", "00005", "00010"], "expressions": {"0": {"exp": "a cat."}, "1": {"exp": "the dog"}}},
        "v2": {"frames": ["00000", "00005"], "expressions": {"0": {"exp": "a bird"}}},
    }
    (tmp_path / "meta_expressions/train").mkdir(parents=True)
    (tmp_path / "meta_expressions/train/meta_expressions.json").write_text(json.dumps({"videos": videos}))
    masks = {"0": [A, None, A], "1": [B, B, None], "2": [None, B]}
    (tmp_path / "mask_dict.pkl").write_bytes(pickle.dumps(masks))
    for vid, video in videos.items():
        _frames(tmp_path / "train/JPEGImages" / vid, [f"{n}.jpg" for n in video["frames"]])
    manifest, records = convert("ref_youtube_vos", tmp_path, tmp_path / "out")
    assert manifest.num_records == 2 and manifest.num_samples == 3 and manifest.data_types == {"seg_video": 3}
    first, second = records
    assert [t.text for t in first.meta.turns] == ["a cat.", "the dog"] and first.meta.expand
    assert first.masks.objects[1] == [B, B, None] and second.masks.objects[0] == [None, B]
    assert first.members["f0001.jpg"] == (tmp_path / "train/JPEGImages/v1/00005.jpg").read_bytes()
    built = build_every_unit(records)
    assert built[3].task.messages[0]["content"][1]["text"] == "Can you segment the cat in this video?"
    assert {b.key for b in built} == {"ref_youtube_vos__v1__t0", "ref_youtube_vos__v1__t1", "ref_youtube_vos__v2__t0"}


def test_ref_davis17_validation_has_masks(tmp_path: Path) -> None:
    videos = {"bear": {"frames": ["00000", "00001"], "expressions": {"0": {"exp": "a bear"}}}}
    (tmp_path / "meta_expressions/valid").mkdir(parents=True)
    (tmp_path / "meta_expressions/valid/meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (tmp_path / "valid").mkdir()
    (tmp_path / "valid/mask_dict.pkl").write_bytes(pickle.dumps({"0": [A, A]}))
    _frames(tmp_path / "DAVIS/JPEGImages/480p/bear", ["00000.jpg", "00001.jpg"])
    _, [record] = convert("ref_davis17", tmp_path, tmp_path / "out", split="valid")
    assert record.key == "ref_davis17__bear" and record.masks.objects == [[A, A]]


def test_mevis_unions_anno_ids_and_skips_empty_expressions(tmp_path: Path) -> None:
    videos = {
        "m1": {
            "frames": ["a", "b"],
            "expressions": {
                "0": {"exp": "two animals moving", "obj_id": [0, 1], "anno_id": [5, 6]},
                "1": {"exp": "nothing", "obj_id": [], "anno_id": []},
            },
        }
    }
    (tmp_path / "train").mkdir()
    (tmp_path / "train/meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (tmp_path / "train/mask_dict.json").write_text(json.dumps({"5": [A, None], "6": [B, B]}))
    _frames(tmp_path / "train/JPEGImages/m1", ["a.jpg", "b.jpg"])
    manifest, [record] = convert("mevis", tmp_path, tmp_path / "out")
    assert manifest.filtered == {"no_object": 1} and len(record.meta.turns) == 1
    union, second = _decoded(record.masks.objects[0])
    np.testing.assert_array_equal(union, decode_rle(A) | decode_rle(B))
    np.testing.assert_array_equal(second, decode_rle(B))


def test_revos_crops_tao_videos_and_types_questions(tmp_path: Path) -> None:
    videos = {
        "TAO/t1": {
            "frames": ["0", "1", "2", "3", "4"],
            "expressions": {
                "0": {"exp": "Which animal can fly?", "obj_id": [3], "anno_id": [9]},
                "1": {"exp": "the bird", "obj_id": [3], "anno_id": [9]},
            },
        },
        "LVVIS/l1": {"frames": ["0", "1"], "expressions": {"0": {"exp": "a cup", "obj_id": [1], "anno_id": [7]}}},
    }
    (tmp_path / "meta_expressions_train_.json").write_text(json.dumps({"videos": videos}))
    (tmp_path / "mask_dict.json").write_text(json.dumps({"9": [None, A, None, A, None], "7": [B, B]}))
    _frames(tmp_path / "TAO/t1", [f"{i}.jpg" for i in range(5)])
    _frames(tmp_path / "LVVIS/l1", ["0.jpg", "1.jpg"])
    manifest, (tao, other) = convert("revos", tmp_path, tmp_path / "out")
    assert tao.key == "revos__TAO_t1__obj3" and tao.meta.media.orig_frame_indices == [1, 2, 3]
    assert tao.masks.objects[0] == [A, None, A] and other.key == "revos__LVVIS_l1"
    assert [t.type for t in tao.meta.turns] == ["sentence", "query"]
    built = build_every_unit([tao])[2]
    assert built.task.messages[0]["content"][1]["text"] == "Which animal can fly? Please provide the segmentation mask."


def test_ref_sav_keeps_the_mp4_and_every_fourth_frame(tmp_path: Path) -> None:
    meta = {
        "sav_1": {
            "video_path": "sav/sav_train/sav_000/sav_1.mp4",
            "anno_path": "sav/sav_train/sav_000/sav_1_manual.json",
            "objects": {"1": {"video_id": "sav_1", "obj_id": 1, "formated": "A person in red walks away."}},
        }
    }
    (tmp_path / "ref_sav").mkdir()
    (tmp_path / "ref_sav/Ref-SAV-Min-Ratio-0.3.json").write_text(json.dumps(meta))
    video_dir = tmp_path / "sav/sav_train/sav_000"
    video_dir.mkdir(parents=True)
    (video_dir / "sav_1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    masklet = [[A, B], [A, A], [B, None]]
    (video_dir / "sav_1_manual.json").write_text(json.dumps({"masklet": masklet, "video_height": H, "video_width": W}))
    manifest, [record] = convert("ref_sav", tmp_path, tmp_path / "out")
    media = record.meta.media
    assert (media.kind, media.stride, media.orig_frame_indices) == ("mp4", 4, [0, 4, 8])
    assert record.members["video.mp4"] == (video_dir / "sav_1.mp4").read_bytes()
    assert record.masks.objects == [[B, A, None]] and record.meta.turns[0].type == "description"
    with pytest.raises(BadSampleError, match="unreadable_video"):
        build_sample(expand(record)[0], BuildConfig(), np.random.default_rng(0))


def test_ref_sav_validation_reads_the_expression_layout(tmp_path: Path) -> None:
    videos = {"sav_9": {"frames": ["0", "1"], "expressions": {"0": {"exp": "A dog.", "obj_id": [0], "anno_id": [1]}}}}
    root = tmp_path / "ref_sav/valid"
    root.mkdir(parents=True)
    (root / "meta_expressions_valid.json").write_text(json.dumps({"videos": videos}))
    (root / "mask_dict.json").write_text(json.dumps({"1": [A, None]}))
    _frames(root / "videos/sav_9", ["0.jpg", "1.jpg"])
    _, [record] = convert("ref_sav", tmp_path, tmp_path / "out", split="valid")
    assert record.meta.turns[0].type == "description" and record.masks.objects == [[A, None]]


@pytest.fixture
def videorefer_root(tmp_path: Path) -> Path:
    root = tmp_path / "videorefer"
    base = root / "VideoRefer-700K"
    _frames(base / "videos/vidA", [f"{i}.jpg" for i in range(6)])
    (base / "videos").mkdir(parents=True, exist_ok=True)
    (base / "videos/vidB.mp4").write_bytes(b"fake mp4")
    conversation = lambda q, a: [{"from": "human", "value": f"<video>\n{q}"}, {"from": "gpt", "value": a}]  # noqa: E731
    qa = [
        {
            "id": "q1",
            "video": "vidA",
            "conversations": conversation(
                "There are 2 objects: <object0><region>, <object1><region>.\nWhat is <object0> doing to <object1>?",
                "<object0> chases <object1>.",
            ),
            "annotation": [{"1": {}, "3": {}}, {"3": {}, "4": {}}],
            "ratio": 0.5,
        },
        {
            "id": "q2",
            "video": "vidA",
            "conversations": conversation("What is <region> doing?", "Running."),
            "annotation": [{"2": {}}],
            "ratio": 0.9,
        },
        {
            "id": "q3",
            "video": "vidA",
            "conversations": conversation("<region>?", "x"),
            "annotation": [{"2": {}}],
            "ratio": 0.1,
        },
        {
            "id": "q4",
            "video": "vidA",
            "conversations": conversation("<region>?", "x"),
            "annotation": [{"2": {}}] * 6,
            "ratio": 1,
        },
    ]
    (base / "videorefer-qa-75k-wo-masks.json").write_text(json.dumps(qa))
    (base / "masks_qa").mkdir()
    (base / "masks_qa/0.json").write_text(json.dumps([[[A], [A], [None]], [[None], [B], [B]]]))
    (base / "masks_qa/1.json").write_text(json.dumps([[[B]]]))
    short = [
        {
            "id": "s1",
            "video": "vidA",
            "conversations": conversation("Describe <region> briefly.", "A box."),
            "annotation": [{"4": {}}],
            "ratio": 1,
        },
        {
            "id": "s2",
            "video": "vidB.mp4",
            "conversations": conversation("Describe <region>.", "A dog."),
            "annotation": [{"2": {}}],
            "ratio": 1,
        },
    ]
    (base / "videorefer-short-caption-500k-wo-masks.json").write_text(json.dumps(short))
    (base / "masks_short_caption").mkdir()
    for index in range(2):
        (base / f"masks_short_caption/{index}.json").write_text(json.dumps([[[A]]]))
    return root


def test_videorefer_region_qa(videorefer_root: Path, tmp_path: Path) -> None:
    manifest, (multi, single) = convert("videorefer", videorefer_root, tmp_path / "qa", task="qa")
    assert manifest.filtered == {"objects_0_or_over_5": 1, "ratio_below_0.3": 1}
    assert [o.oid for o in multi.meta.objects] == [0, 1] and multi.meta.media.orig_frame_indices == [1, 3, 4]
    assert (multi.meta.turns[0].text, multi.meta.turns[0].answer) == ("What is [0] doing to [1]?", "[0] chases [1].")
    assert multi.masks.objects == [[A, A, None], [None, B, B]]
    region_id = stable_hash("videorefer_qa__q2") % 16
    assert single.meta.turns[0].text == f"What is [{region_id}] doing?"
    assert single.meta.media.single_frame_mode and single.meta.media.prompt_frame == 2
    assert single.masks.objects == [[None, None, B, None, None, None]]
    question = build_every_unit([multi])[1].task.messages[0]["content"][1]["text"]
    assert (
        question.startswith("Here is a video with 3 frames")
        and "[0]: <1>-<2> <|mem|>\n[1]: <1>-<2> <|mem|> <3>-<4> <|mem|>\n" in question
    )


def test_videorefer_memory_and_referring_tasks(videorefer_root: Path, tmp_path: Path) -> None:
    manifest, [memory] = convert("videorefer", videorefer_root, tmp_path / "mem", task="qa_mem")
    assert manifest.filtered["single_annotated_frame"] == 1
    assert memory.meta.turns[0].text.startswith(f"There are 2 objects: [0] {REF_TOKEN}, [1] {REF_TOKEN}.")
    built = build_every_unit([memory])[0]
    assert built.task.messages[1]["content"] == f"[0] {SEG_TOKEN} [1] {SEG_TOKEN}" and len(built.task.prompts) == 2
    manifest, [caption] = convert("videorefer", videorefer_root, tmp_path / "ref", task="short_caption_ref")
    assert manifest.filtered == {"mp4_single_frame_mode_needs_decord": 1}
    assert (
        caption.meta.data_type_template == "ref_{}" and caption.meta.turns[0].text == f"Describe {REF_TOKEN} briefly."
    )
    built = build_every_unit([caption])[1]  # evaluation: the annotated frame 4 replaces its nearest sample
    prompt = built.task.prompts[0]
    x, y = prompt.coords.mean(axis=0).astype(int)
    assert built.frame_indices == [0, 2, 4, 5] and prompt.frame == 2 and decode_rle(A)[y, x]


def test_inst_it_region_and_memory_tasks(tmp_path: Path) -> None:
    base = tmp_path / "Inst-IT-Dataset"
    _frames(base / "videos_raw/v9", ["1.jpg", "2.jpg"])
    item = {
        "video_id": "v9",
        "video_path": "videos_raw/v9",
        "segmentations": {"1.jpg": {"1": {"mask": A}, "2": {"mask": B}}, "2.jpg": {"1": {"mask": A}}},
        "question_answer_pairs": [
            {"question": "What is [01] doing at <0>?", "answer": "[1] holds [2]."},
            {"question": "Is it sunny?", "answer": "Yes."},
        ],
    }
    base.mkdir(exist_ok=True)
    (base / "inst_it_dataset_video_21k_w_mask.json").write_text(json.dumps([item]))
    manifest, [region] = convert("inst_it", tmp_path, tmp_path / "qa")
    assert manifest.filtered == {"objects_0_or_over_5": 1}
    assert region.meta.turns[0].text == "What is [1] doing at <1>?" and [o.oid for o in region.meta.objects] == [1, 2]
    assert region.masks.objects == [[A, A], [B, None]]
    _, [memory] = convert("inst_it", tmp_path, tmp_path / "mem", task="video_qa_mem")
    assert memory.meta.turns[0].text == f"What is [1] {REF_TOKEN} doing at <1>?" and len(memory.meta.objects) == 1
    assert memory.meta.data_type_template == "mem_{}_video" and len(build_every_unit([memory])) == 2


def test_lvvis_class_names_lose_underscores(tmp_path: Path) -> None:
    videos = {"00001": {"frames": ["0"], "expressions": {"0": {"exp": "traffic_light", "obj_id": [2], "anno_id": [4]}}}}
    (tmp_path / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (tmp_path / "mask_dict.json").write_text(json.dumps({"4": [B]}))
    _frames(tmp_path / "train/JPEGImages/00001", ["0.jpg"])
    manifest, [record] = convert("lvvis", tmp_path, tmp_path / "out")
    assert record.meta.turns[0].text == "traffic light" and manifest.data_types == {"seg_image": 1}
    assert record.meta.media.kind == "image"
