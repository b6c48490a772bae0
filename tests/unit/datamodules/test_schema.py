"""The sample schema: keys, meta.json round trip and validation, seeded point/box split."""

from __future__ import annotations

import json

import pytest

from unipixel_pl.datamodules.schema import (
    SCHEMA_VERSION,
    Media,
    ObjectInfo,
    SampleMeta,
    SchemaError,
    Turn,
    prompt_kind,
    resolve_data_type,
    sample_key,
    template_types,
)


def _meta(**changes: object) -> SampleMeta:
    fields = {
        "source": "mevis",
        "split": "train",
        "family": "seg",
        "data_type_template": "seg_video",
        "vid": "abc.mp4",
        "qid": "3",
        "media": Media("frames", 2, 10, 12, ["f0000.jpg", "f0001.jpg"], [0, 5]),
        "turns": [Turn("query", "the dog", "", [0])],
        "objects": [ObjectInfo(1, "dog", 0)],
    }
    fields.update(changes)
    return SampleMeta(**fields)  # type: ignore[arg-type]


def test_keys_have_no_dots_or_slashes() -> None:
    assert sample_key("ref/sav", "a.b/c", 7) == "ref_sav__a_b_c__7"
    assert _meta().key == "mevis__abc_mp4__3"


def test_meta_json_round_trip() -> None:
    meta = _meta()
    assert SampleMeta.from_json(meta.to_json()) == meta
    assert json.loads(meta.to_json())["schema"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": 99}, "schema 99"),
        ({"colour": "red"}, "unknown field"),
        ({"family": "detection"}, "unknown family"),
        ({"turns": []}, "at least one turn"),
        ({"turns": [{"type": "query", "text": "x", "answer": "", "objects": [4]}]}, "names objects"),
        (
            {"media": {"kind": "frames", "num_frames": 3, "height": 1, "width": 1, "frame_names": ["f0000.jpg"]}},
            "frame names",
        ),
    ],
)
def test_invalid_meta_is_rejected_with_the_reason(change: dict, message: str) -> None:
    document = json.loads(_meta().to_json())
    document.update(change)
    with pytest.raises(SchemaError, match=message):
        SampleMeta.from_json(json.dumps(document).encode())
    with pytest.raises(SchemaError, match="not valid UTF-8 JSON"):
        SampleMeta.from_json(b"{")


def test_prompt_kind_is_seeded_and_balanced() -> None:
    keys = [f"k{i}" for i in range(2000)]
    kinds = [prompt_kind(key, 0) for key in keys]
    assert kinds == [prompt_kind(key, 0) for key in keys]
    assert 0.45 < kinds.count("point") / len(kinds) < 0.55
    assert kinds != [prompt_kind(key, 1) for key in keys]
    assert resolve_data_type("mem_{}_video", "k0", 0) == f"mem_{kinds[0]}_video"
    assert template_types("ref_{}") == {"ref_point": 0.5, "ref_box": 0.5}
    assert template_types("seg_image") == {"seg_image": 1.0}
