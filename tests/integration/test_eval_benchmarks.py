"""``unipixel test --config configs/eval/<benchmark>.yaml`` end to end, one run per metric family, on tiny synthetic
shards. The random tiny model is steered (``eval_support.ForceToken``) to answer with ``<|seg|>`` or a letter and to
cover the left half of each frame, then every reported number is recomputed from the saved predictions (PNG masks,
prediction lines) and the ground truth read back from the shards."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.integration.eval_support import (
    IMAGE_SIZE,
    eval_args,
    force_token,
    read_results,
    scalars,
    synthetic_records,
    with_meta,
    write_set,
)
from unipixel_pl.cli import run_cli
from unipixel_pl.config import preset
from unipixel_pl.datamodules.frames import uniform_indices
from unipixel_pl.datamodules.reader import Record, decode_record, expand, iter_tar
from unipixel_pl.metrics.functional import (
    boundary_f_per_frame,
    box_hit,
    intersection_and_union,
    mask_box,
    parse_choice,
    query_iou,
    region_j_per_frame,
    volume_jf,
)
from unipixel_pl.tokenizer import build_tiny_tokenizer

SEG = preset("unipixel-tiny").backbone.tokens.seg


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["unipixel"])


def letter_id(letter: str) -> int:
    (token,) = build_tiny_tokenizer().encode(letter, add_special_tokens=False)
    return token


def records(shards: Path) -> dict[str, Record]:
    """Every (expanded) record of a shard set by unit key."""
    out = {}
    for path in sorted(shards.glob("*.tar")):
        for raw in iter_tar(path):
            out |= {record.unit_key: record for record in expand(decode_record(raw))}
    return out


def target(record: Record, frames: list[int]) -> torch.Tensor:
    """``(T, H, W)`` union of the scored turn's objects."""
    turn = record.meta.turns[record.turn or 0]
    return torch.from_numpy(record.masks.decode(turn.objects, frames)).any(dim=1)


def read_masks(folder: Path) -> torch.Tensor:
    """``(T, H, W)`` bool from a folder of 0/255 PNGs, in frame-name order."""
    frames = []
    for path in sorted(folder.glob("*.png")):
        pixels = np.asarray(Image.open(path))
        assert pixels.dtype == np.uint8 and set(np.unique(pixels)) <= {0, 255}
        frames.append(torch.from_numpy(pixels == 255))
    return torch.stack(frames)


def check_logged(out: Path, label: str, metrics: dict[str, float]) -> None:
    """Every JSON metric is a TensorBoard scalar ``test/{label}/{name}`` of the same value."""
    logged = scalars(out)
    for name, value in metrics.items():
        assert logged[f"test/{label}/{name}"] == pytest.approx(value, abs=1e-6), name


def test_image_segmentation_ciou_giou_box_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first, second = synthetic_records([0, 1])  # an image with 3 expressions; one expanded into 3 samples
    half = [[0, 0, IMAGE_SIZE / 2, IMAGE_SIZE]] * len(first.meta.objects)  # gt.json boxes the forced masks hit
    first.gt = {"boxes": half}
    shards = write_set([first, second], tmp_path / "shards")
    run_cli(
        eval_args("refcoco-val", shards, tmp_path / "out", "--model.evaluation.write_masks=true", *force_token(SEG))
    )
    results, lines = read_results(tmp_path / "out")
    assert "refcoco-val results: " + str(next((tmp_path / "out").rglob("results.json"))) in capsys.readouterr().out

    truth = records(shards)
    inter, union, hits = [], [], []
    for line in lines:
        record = truth[line["key"]]
        pred = read_masks(Path(results["masks"]) / line["video"] / line["expression"])[0]
        gt = target(record, [0])[0]
        counts = intersection_and_union(pred, gt)
        assert (int(counts[0]), int(counts[1])) == (line["inter"], line["union"])
        inter.append(counts[0])
        union.append(counts[1])
        box = half[0] if "gt.json" in record.members else mask_box(gt)
        assert box_hit(pred, box) == line["hit"]
        hits.append(line["hit"])
    metrics = results["metrics"]
    assert metrics["samples"] == 4 and metrics["failed_generations"] == 0
    assert metrics["cIoU"] == pytest.approx(float(sum(inter) / sum(union)))
    assert metrics["gIoU"] == pytest.approx(float(query_iou(torch.stack(inter), torch.stack(union)).mean()))
    assert metrics["box_acc"] == pytest.approx(sum(hits) / 4)
    assert 0 < metrics["cIoU"] < 1 and lines[0]["hit"]  # partial overlap; the gt.json box is hit
    check_logged(tmp_path / "out", "refcoco-val", metrics)


def test_video_segmentation_jf_on_every_frame(tmp_path: Path) -> None:
    shards = write_set(synthetic_records([6, 7]), tmp_path / "shards")  # two 3-frame videos, 3 expressions each
    args = eval_args("mevis-valid_u", shards, tmp_path / "out", "--model.evaluation.write_masks=true")
    run_cli([*args, *force_token(SEG)])  # the LLM sees 2 frames, SAM 2 and the scores cover all 3
    results, lines = read_results(tmp_path / "out")

    truth = records(shards)
    region, boundary = [], []
    for line in lines:
        record = truth[line["key"]]
        pred = read_masks(Path(results["masks"]) / line["video"] / line["expression"])
        gt = target(record, [0, 1, 2])
        assert pred.shape == gt.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
        region.append(region_j_per_frame(pred, gt).mean().item())
        boundary.append(boundary_f_per_frame(pred, gt).mean().item())
    metrics = results["metrics"]
    assert metrics["samples"] == 6 and results["sam_frames"] == "all"
    assert metrics["J"] == pytest.approx(np.mean(region)) and metrics["F"] == pytest.approx(np.mean(boundary))
    assert metrics["JF"] == pytest.approx((np.mean(region) + np.mean(boundary)) / 2)
    assert 0 < metrics["J"] < 1
    check_logged(tmp_path / "out", "mevis-valid_u", metrics)


def test_server_benchmark_writes_the_submission_zip(tmp_path: Path) -> None:
    shards = write_set(synthetic_records([6]), tmp_path / "shards")
    run_cli([*eval_args("ref_youtube_vos-valid", shards, tmp_path / "out"), *force_token(SEG)])
    results, lines = read_results(tmp_path / "out")
    assert set(results["metrics"]) == {"samples", "failed_generations"}  # no public masks: nothing scored
    with zipfile.ZipFile(results["submission"]) as archive:
        names = sorted(archive.namelist())
        expected = [f"Annotations/0000006/{q}/{f:05d}.png" for q in range(3) for f in range(3)]
        assert names == expected
        first = np.asarray(Image.open(archive.open(names[0])))
    assert first.shape == (IMAGE_SIZE, IMAGE_SIZE) and first[:, 0].min() == 255 and first[:, -1].max() == 0


def test_multiple_choice_accuracy(tmp_path: Path) -> None:
    image_b, video_a, image_c = synthetic_records([5, 11, 29])  # answers B, A, C
    samples = [with_meta(image_b, task="action_count"), video_a, with_meta(image_c, task="action_count")]
    shards = write_set(samples, tmp_path / "shards")
    run_cli([*eval_args("mvbench", shards, tmp_path / "out"), *force_token(letter_id("B"))])
    results, lines = read_results(tmp_path / "out")

    truth = records(shards)
    correct = []
    for line in lines:
        meta = truth[line["key"]].meta
        choice = parse_choice(line["response"], len(meta.options))
        correct.append(choice == ord(meta.ans) - ord("A"))
    metrics = results["metrics"]
    assert correct == [True, False, False] and metrics["accuracy"] == pytest.approx(1 / 3)
    assert metrics["accuracy/action_count"] == pytest.approx(1 / 2) and metrics["failed"] == 0
    assert "accuracy/object_shuffle" not in metrics  # tasks without samples are left out
    check_logged(tmp_path / "out", "mvbench", metrics)


def test_pixelqa_masks_and_answers(tmp_path: Path) -> None:
    samples = []
    for sample in synthetic_records([4, 10]):  # an image and a 3-frame video, one point-prompted object each
        samples.append(with_meta(sample, options=["a purple hexagon", sample.meta.turns[0].answer], ans="B"))
    shards = write_set(samples, tmp_path / "shards")
    args = eval_args("pixelqa-point", shards, tmp_path / "out", "--model.evaluation.write_masks=true")
    run_cli([*args, *force_token(letter_id("A"))])
    results, lines = read_results(tmp_path / "out")

    truth = records(shards)
    region, f1 = [], []
    for line in lines:
        record = truth[line["key"]]
        frames = uniform_indices(record.meta.media.num_frames, 2)  # the frames the model saw
        (oid,) = [record.meta.objects[o].oid for o in record.meta.turns[0].objects]
        pred = read_masks(Path(results["masks"]) / line["video"] / line["expression"] / str(oid))
        j, f = volume_jf(pred[None], target(record, frames)[None])
        region.append(j.item())
        f1.append(f.item())
        assert parse_choice(line["response"], 2) == 0 != line["answer"]
    metrics = results["metrics"]
    assert metrics["mask_J"] == pytest.approx(np.mean(region)) and metrics["mask_F"] == pytest.approx(np.mean(f1))
    assert metrics["accuracy"] == 0.0 and metrics["samples"] == 2
    check_logged(tmp_path / "out", "pixelqa-point", metrics)
