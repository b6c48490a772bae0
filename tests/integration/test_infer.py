"""``unipixel infer`` end to end on a tiny checkpoint: an image, an mp4 and a frame folder; bad input."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.inference.helpers import moving_square, write_frame_folder, write_mp4, write_tiny_checkpoint
from unipixel_pl.cli import main
from unipixel_pl.inference.cli import infer_main
from unipixel_pl.inference.predictor import InferenceSettings, Predictor


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("infer")
    frames = moving_square(12)
    Image.fromarray(frames[0]).save(root / "photo.JPG", quality=95)
    return {
        "ckpt": write_tiny_checkpoint(root / "ckpt"),
        "image": root / "photo.JPG",
        "mp4": write_mp4(root / "clip.mp4", frames),
        "folder": write_frame_folder(root / "frames", frames[:5]),
    }


def _mask_files(root: Path, obj: int = 0) -> list[Path]:
    return sorted((root / "request-0" / "masks" / f"object-{obj}").iterdir())


def test_image(media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    prompt = "Please segment the red square in this image. <|seg|>"
    code = infer_main(
        [str(media["image"]), prompt, "--ckpt", str(media["ckpt"]), "--out", str(out), "--max-new-tokens", "4"]
    )
    assert code == 0 and capsys.readouterr().out.endswith(f"wrote {out / 'summary.json'}\n")
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["kind"], summary["num_frames"], summary["frame_size"]) == ("image", 1, [48, 64])
    (request,) = summary["requests"]
    assert request["generated_tokens"] == 4 and len(request["objects"]) == 1
    (mask_file,) = _mask_files(out)
    predictor = Predictor.from_pretrained(media["ckpt"], "cpu", settings=InferenceSettings(max_new_tokens=4))
    expected = predictor.predict(media["image"], prompt)
    assert mask_file.name == "photo.png" and request["answer"] == expected.text
    assert np.array_equal(np.asarray(Image.open(mask_file)) > 0, expected.masks[0, 0].numpy())
    assert Image.open(out / "request-0" / "overlay.png").size == (64, 48)


def test_mp4_with_point_box_and_mask_and_two_prompts(media: dict[str, Path], tmp_path: Path) -> None:
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[12:28, 0:16] = 255
    Image.fromarray(mask).save(tmp_path / "square.png")
    out = tmp_path / "out"
    args = [
        str(media["mp4"]),
        "Where do [0] <|ref|> and <|ref|> go? <|seg|>",
        "Is [1] <|ref|> like <|ref|>? <|seg|> <|seg|>",
    ]
    args += ["--ckpt", str(media["ckpt"]), "--out", str(out), "--max-new-tokens", "3"]
    args += [
        "--point",
        "8,20@2",
        "--box",
        "0,12,16,28",
        "--mask",
        f"{tmp_path / 'square.png'}@0",
        "--overlay-size",
        "32",
    ]
    assert infer_main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "video" and summary["num_frames"] == 12 and summary["fps"] == 10.0
    first, second = summary["requests"]
    assert [p["type"] for p in first["visual_prompts"]] == ["point", "box", "mask"]
    assert len(first["objects"]) == 1 and len(second["objects"]) == 2
    assert [f.name for f in _mask_files(out)] == [f"{t:05d}.png" for t in range(12)]
    assert len(list((out / "request-1" / "masks" / "object-1").iterdir())) == 12
    with Image.open(out / "request-1" / "overlay.gif") as gif:
        assert gif.n_frames == 12 and max(gif.size) == 32


def test_frame_folder_through_the_unipixel_command(
    media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    argv = ["unipixel", "infer", str(media["folder"]), "Track it. <|seg|>", "--ckpt", str(media["ckpt"])]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out), "--max-new-tokens", "2", "--animation", "apng"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "frames" and summary["num_frames"] == 5
    assert [f.name for f in _mask_files(out)] == [f"frame_{i}.png" for i in range(1, 6)]
    with Image.open(out / "request-0" / "overlay.png") as apng:
        assert apng.n_frames == 5


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("unsupported", [], "unsupported extension '.txt'"),
        ("unreadable", [], "cannot read video"),
        ("not_ckpt", [], "is not a UniPixel checkpoint"),
        ("image", ["--point", "70,10"], "point 70,10 lies outside the 64x48"),
        ("image", ["--box", "0,0,10,50"], "box 0,0,10,50 lies outside"),
        ("mp4", ["--point", "5,5@12"], "on frame 12, past the end of .*clip.mp4 \\(12 frame"),
        ("image", ["--max-input-tokens", "20"], "more than the limit of 20"),
        ("existing_out", [], "exists and is not empty"),
    ],
)
def test_bad_input_exits_with_a_message(
    media: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    extra: list[str],
    message: str,
) -> None:
    path, ckpt, out = media.get(case, media["image"]), media["ckpt"], tmp_path / "out"
    if case in ("unsupported", "unreadable"):
        path = tmp_path / ("notes.txt" if case == "unsupported" else "clip.MOV")
        path.write_text("not media")
    if case == "not_ckpt":
        ckpt = tmp_path
    if case == "existing_out":
        out.mkdir()
        (out / "old.txt").write_text("keep me")
    prompt = "Describe <|ref|>." if extra[:1] in (["--point"], ["--box"]) else "Describe this."
    code = infer_main([str(path), prompt, "--ckpt", str(ckpt), "--out", str(out), *extra])
    error = capsys.readouterr().err
    assert code == 1 and error.startswith("unipixel infer: error: ")
    assert re.search(message, error), error


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--point", "1;2"], "argument --point: cannot parse '1;2': expected X,Y[@FRAME]"),
        (["--box", "1,2,3"], "argument --box: cannot parse '1,2,3': expected X1,Y1,X2,Y2[@FRAME]"),
        (["--llm-frames", "0"], "argument --llm-frames: expected a positive integer, got '0'"),
    ],
)
def test_malformed_option_is_a_usage_error(
    media: dict[str, Path], capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        infer_main([str(media["image"]), "Describe <|ref|>.", "--ckpt", str(media["ckpt"]), *option])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
