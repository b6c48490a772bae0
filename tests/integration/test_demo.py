"""The demo shortened: shards, `unipixel fit/test --config configs/demo.yaml`, the metrics JSON, `unipixel convert
ckpt-to-ours` and `unipixel infer` on held-out media, and the report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from unipixel_pl.cli import run_cli
from unipixel_pl.convert_cli import convert_main
from unipixel_pl.datamodules.synthetic_shards import synthetic_sample
from unipixel_pl.inference.cli import infer_main

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["unipixel"])


def _demo_args(data: Path, out: Path) -> list[str]:
    return [
        "--config",
        str(ROOT / "configs/demo.yaml"),
        f"--data.init_args.train=[{{path: {data / 'train'}}}]",
        f"--data.init_args.val=[{{path: {data / 'val'}}}]",
        f"--data.init_args.test=[{{path: {data / 'test'}}}]",
        "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0",
        "--trainer.max_steps=2",
        "--trainer.val_check_interval=2",
        "--trainer.log_every_n_steps=1",
        f"--trainer.default_root_dir={out}",
        f"--trainer.logger.init_args.save_dir={out}",
    ]


def test_demo_fits_tests_and_reports(tmp_path: Path) -> None:
    shards = _script("demo_shards")
    for split, count in (("train", 6), ("val", 6), ("test", 12)):  # 12 test records cover all six record kinds
        shards.write_split(tmp_path / "data", split, count, image_size=112, video_frames=4)
    args = _demo_args(tmp_path / "data", tmp_path / "runs")
    run_cli(["fit", *args])
    (checkpoint,) = (tmp_path / "runs").rglob("last.ckpt")
    run_cli(["test", *args, f"--ckpt_path={checkpoint}"])

    (metrics_file,) = (tmp_path / "runs").rglob("held_out_metrics.json")
    report = json.loads(metrics_file.read_text())
    for key in ("ciou", "video_jf", "mc_accuracy", "region_accuracy"):
        assert report[key] is not None and 0.0 <= report[key] <= 1.0, key
    assert report["ciou"] == report["metrics"]["test/ciou/seg_image"]
    assert report["mc_accuracy"] == report["metrics"]["test/answer_acc/multimodal"]

    events = EventAccumulator(str(metrics_file.parent), size_guidance={"scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"test/video_jf", "test/ciou/seg_image", "test/answer_acc/multimodal", "final/mc_accuracy"} <= scalars
    assert {"test/ciou/source/synthetic/test", "test/answer_acc/source/synthetic/test"} <= scalars
    assert events.PluginTagToContent("hparams")  # hyper-parameters with the final metrics

    requests_file = _script("demo_media").write_held_out_media(tmp_path / "media", image_size=112, video_frames=4)
    infer = tmp_path / "infer"
    requests = _run_infer(checkpoint, requests_file, tmp_path / "ours", infer)
    report = [str(ROOT / "scripts/demo_report.py"), str(metrics_file), f"--checkpoint={checkpoint}"]
    report += [f"--infer={infer}", f"--requests={requests_file}"]
    printed = subprocess.run([sys.executable, *report], capture_output=True, text=True, check=True).stdout
    assert "cIoU, image referring segmentation" in printed and str(checkpoint) in printed
    assert "ciou/seg_image" in printed  # the validation curve of the fit run
    for request in requests:
        assert f"{request['name']}: {request['prompt']}" in printed and str(infer / request["name"]) in printed


def _run_infer(checkpoint: Path, requests_file: Path, export: Path, infer: Path) -> list[dict[str, str]]:
    """Export the checkpoint, run every demo request through `unipixel infer`, check the outputs; the requests."""
    assert convert_main(["ckpt-to-ours", str(checkpoint), str(export), "--tokenizer", "tiny"]) == 0
    requests = _script("demo_report").read_requests(requests_file)
    assert [request["name"] for request in requests] == ["image-seg", "image-point", "video-seg"]
    for request in requests:
        point = ["--point", request["point"]] if request["point"] else []
        args = [
            request["media"],
            request["prompt"],
            *point,
            "--ckpt",
            str(export),
            "--out",
            str(infer / request["name"]),
        ]
        assert infer_main([*args, "--max-new-tokens", "4"]) == 0, request["name"]
        _check_infer_outputs(infer / request["name"], request)
    return requests


def _check_infer_outputs(root: Path, request: dict[str, str]) -> None:
    """The summary names the request; every mask and overlay it lists is a readable image of the media's size."""
    summary = json.loads((root / "summary.json").read_text())
    (entry,) = summary["requests"]
    assert summary["frame_size"] == [112, 112] and entry["prompt"] == request["prompt"]
    assert isinstance(entry["answer"], str) and 1 <= entry["generated_tokens"] <= 4
    for obj in entry["objects"]:
        masks = sorted((root / obj["masks"]).glob("*.png"))
        assert len(masks) == summary["num_frames"] and np.asarray(Image.open(masks[0])).shape == (112, 112)
    if entry["overlay"] is not None:
        assert Image.open(root / entry["overlay"]).size == (112, 112)
    if request["point"]:
        x, y = (int(v) for v in request["point"].split(","))
        assert entry["visual_prompts"] == [{"type": "point", "coords": [x, y], "frame": 0}]


def test_held_out_media_come_from_the_test_split(tmp_path: Path) -> None:
    media, report = _script("demo_media"), _script("demo_report")
    image_seg, image_point, video_seg = report.read_requests(media.write_held_out_media(tmp_path / "media", 112, 4))
    record = media.held_out_record(media.is_point_question_on_image, 112, 4)
    index = int(record.meta.vid)
    assert index >= 192 and Path(image_seg["media"]).read_bytes() == synthetic_sample(index, "test", 112, 4).frames[0]
    name = record.meta.objects[record.meta.turns[0].objects[0]].category
    assert image_seg["prompt"] == f"Can you segment the {name} in this image?"
    assert image_point["prompt"] == "What colour is <|ref|>?" and image_point["reference"].startswith("It is ")
    target = np.asarray(Image.open(Path(image_seg["target"]) / "00000.png")) > 0
    x, y = (int(v) for v in image_point["point"].split(","))
    assert target[y, x]  # the point prompt lies on the object the question is about
    assert len(list(Path(video_seg["media"]).glob("*.jpg"))) == 4 == len(list(Path(video_seg["target"]).iterdir()))
    (tmp_path / "full").mkdir()
    Image.fromarray(np.full((112, 112), 255, dtype=np.uint8)).save(tmp_path / "full" / "image.png")
    assert report.mask_iou(tmp_path / "full", Path(image_seg["target"])) == pytest.approx(target.mean())
