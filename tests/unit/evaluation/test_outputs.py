"""Mask PNGs in the submission layout read back, the submission zip, the table and the prediction lines."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unipixel_pl.evaluation.outputs import (
    PredictionLog,
    finite_scores,
    format_table,
    write_expression_masks,
    zip_masks,
)


def _masks() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, 5, 7, generator=generator) > 0.5


def test_masks_round_trip_as_8_bit_0_255_pngs(tmp_path: Path) -> None:
    masks = _masks()
    folder = write_expression_masks(tmp_path, "vid_a", "3", ["00000", "00005", "00010"], masks)
    assert folder == tmp_path / "vid_a" / "3"
    for index, name in enumerate(["00000", "00005", "00010"]):
        image = Image.open(folder / f"{name}.png")
        assert image.mode == "L"
        pixels = np.asarray(image)
        assert set(np.unique(pixels)) <= {0, 255}
        assert torch.equal(torch.from_numpy(pixels == 255), masks[index])
    with pytest.raises(ValueError, match="2 frame names for 3 masks of vid_a/3"):
        write_expression_masks(tmp_path, "vid_a", "3", ["a", "b"], masks)


@pytest.mark.parametrize(("top", "prefix"), [("", ""), ("Annotations", "Annotations/")])
def test_zip_puts_the_video_folders_under_the_top_folder(tmp_path: Path, top: str, prefix: str) -> None:
    write_expression_masks(tmp_path / "masks", "v1", "0", ["00000", "00001"], _masks()[:2])
    write_expression_masks(tmp_path / "masks", "v2", "1", ["00000"], _masks()[:1])
    archive = zip_masks(tmp_path / "masks", tmp_path / "out" / "submission.zip", top)
    names = zipfile.ZipFile(archive).namelist()
    assert sorted(names) == [f"{prefix}v1/0/00000.png", f"{prefix}v1/0/00001.png", f"{prefix}v2/1/00000.png"]


def test_table_shows_fractions_percentages_and_counts() -> None:
    scores = finite_scores({"J": torch.tensor(0.5), "F": torch.tensor(float("nan")), "samples": torch.tensor(7)})
    assert scores == {"J": 0.5, "samples": 7}
    table = format_table("mevis-valid_u", "unipixel", scores).splitlines()
    assert table[0] == "mevis-valid_u (protocol: unipixel)"
    assert table[2].split() == ["J", "0.500000", "50.00"] and table[3].split() == ["samples", "7"]


def test_prediction_log_writes_one_json_object_per_line(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, rank=1)
    log.write({"key": "a", "iou": 0.5})
    log.write({"key": "b", "iou": 1.0})
    log.close()
    lines = (tmp_path / "predictions" / "rank1.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "b"]
    with pytest.raises(RuntimeError, match="closed"):
        log.write({"key": "c"})
