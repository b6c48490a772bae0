"""The mask-less server splits (MeViS ``valid``, Ref-YouTube-VOS ``valid``) in their original layouts: records with
all-null mask tables and the meta file's frame names, read back into the submission zip layout of each server."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from unipixel_pl.evaluation.benchmarks import get_benchmark
from unipixel_pl.evaluation.context import empty_masks
from unipixel_pl.evaluation.outputs import write_expression_masks, zip_masks

from .benchmark_helpers import built, eval_items, user_text
from .converter_helpers import convert, write_jpeg

FRAMES = ["00000", "00005", "00010"]
VIDEOS = {
    "v1": {"frames": FRAMES, "expressions": {"0": {"exp": "the fish swimming left"}, "4": {"exp": "a turtle"}}},
    "v2": {"frames": FRAMES[:2], "expressions": {"1": {"exp": "a dog"}}},
}
LAYOUTS = {
    "mevis": ("valid/meta_expressions.json", "valid/JPEGImages", "mevis_valid"),
    "ref_youtube_vos": ("meta_expressions/valid/meta_expressions.json", "valid/JPEGImages", "ref_youtube_vos"),
}


def _valid_split(root: Path, meta: str, frames: str) -> Path:
    (root / meta).parent.mkdir(parents=True)
    (root / meta).write_text(json.dumps({"videos": VIDEOS}))
    for vid, video in VIDEOS.items():
        for name in video["frames"]:
            write_jpeg(root / frames / vid / f"{name}.jpg", 8, 12)
    return root


@pytest.mark.parametrize("corpus", sorted(LAYOUTS))
def test_valid_split_records_have_null_masks_and_frame_names(corpus: str, tmp_path: Path) -> None:
    meta, frames, _ = LAYOUTS[corpus]
    manifest, (first, second) = convert(corpus, _valid_split(tmp_path, meta, frames), tmp_path / "out", "valid")
    assert manifest.num_records == 2 and manifest.num_samples == 3
    assert first.masks.objects == [[None] * 3] * 2 and second.masks.objects == [[None] * 2]
    assert first.meta.eval == {"qids": ["0", "4"], "frame_names": FRAMES}
    assert first.members["f0002.jpg"] == (tmp_path / frames / "v1/00010.jpg").read_bytes()


@pytest.mark.parametrize("corpus", sorted(LAYOUTS))
def test_valid_split_records_reach_the_submission_layout(corpus: str, tmp_path: Path) -> None:
    meta, frames, benchmark = LAYOUTS[corpus]
    convert(corpus, _valid_split(tmp_path, meta, frames), tmp_path / "out", "valid")
    items = eval_items(tmp_path / "out")
    assert user_text(built(items[0])) == "Can you segment the fish swimming left in this video?"
    for item in items:
        every_frame = list(range(item.record.meta.media.num_frames))
        assert not item.target_mask(every_frame).any()
        names, masks = item.frame_names(every_frame), empty_masks(item, every_frame)
        write_expression_masks(tmp_path / "masks", item.record.meta.vid, item.expression_id(), names, masks)
    root = get_benchmark(benchmark).submission_root
    with zipfile.ZipFile(zip_masks(tmp_path / "masks", tmp_path / "submission.zip", root)) as archive:
        names = sorted(archive.namelist())
    prefix = f"{root}/" if root else ""
    expected = [f"v1/{qid}/{name}.png" for qid in ("0", "4") for name in FRAMES]
    expected += [f"v2/1/{name}.png" for name in FRAMES[:2]]
    assert names == sorted(prefix + name for name in expected)
