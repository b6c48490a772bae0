"""Files a benchmark run writes: per-rank prediction lines, per-frame mask PNGs (the submission layout of MeViS
and Ref-YouTube-VOS, EVAL.md §1), the submission zip, the results table and the results JSON."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image
from torch import Tensor


class PredictionLog:
    """One JSON object per scored sample, appended to ``predictions/rank{rank}.jsonl`` (strings cannot be synced
    across ranks, so each rank keeps its own file)."""

    def __init__(self, output_dir: Path, rank: int) -> None:
        self.path = output_dir / "predictions" / f"rank{rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: IO[str] | None = self.path.open("w")

    def write(self, entry: dict[str, Any]) -> None:
        if self._stream is None:
            raise RuntimeError(f"{self.path} is closed: create a new PredictionLog for a new run")
        self._stream.write(json.dumps(entry, sort_keys=True) + "\n")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def write_expression_masks(
    root: Path, video_id: str, expression_id: str, frame_names: list[str], masks: Tensor
) -> Path:
    """Write one 8-bit PNG per frame, 0 background and 255 foreground, at ``{root}/{video}/{expression}/{frame}.png``.

    Args:
        root: the masks folder.
        video_id: the benchmark's video id.
        expression_id: the benchmark's expression id.
        frame_names: one name per frame (without extension).
        masks: ``(T, H, W)`` bool.

    Returns:
        The expression's folder.
    """
    if len(frame_names) != masks.shape[0]:
        raise ValueError(f"{len(frame_names)} frame names for {masks.shape[0]} masks of {video_id}/{expression_id}")
    folder = root / video_id / expression_id
    folder.mkdir(parents=True, exist_ok=True)
    pixels = masks.cpu().numpy().astype(np.uint8) * 255
    for name, frame in zip(frame_names, pixels, strict=True):
        Image.fromarray(frame, mode="L").save(folder / f"{name}.png")
    return folder


def zip_masks(masks_root: Path, zip_path: Path, top_folder: str = "") -> Path:
    """Zip ``masks_root``'s ``{video}/{expression}/{frame}.png`` tree, under ``top_folder`` inside the archive
    ("" puts the video folders at the top, as MeViS expects; Ref-YouTube-VOS expects ``Annotations``)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    prefix = Path(top_folder) if top_folder else Path()
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(masks_root.rglob("*.png")):
            archive.write(path, (prefix / path.relative_to(masks_root)).as_posix())
    return zip_path


def format_table(label: str, protocol: str, scores: dict[str, float]) -> str:
    """A fixed-width results table: each metric as a fraction and ×100 (counts as integers)."""
    rows = [(name, value) for name, value in sorted(scores.items())]
    width = max([len(name) for name, _ in rows] + [len("metric")])
    lines = [f"{label} (protocol: {protocol})", f"{'metric':<{width}}  {'value':>10}  {'x100':>8}"]
    for name, value in rows:
        if name in COUNT_KEYS:
            lines.append(f"{name:<{width}}  {int(value):>10d}  {'':>8}")
        else:
            lines.append(f"{name:<{width}}  {value:>10.6f}  {100 * value:>8.2f}")
    return "\n".join(lines)


COUNT_KEYS = ("samples", "failed_generations")
"""Score keys that are counts, not fractions."""


def finite_scores(scores: dict[str, Tensor]) -> dict[str, float]:
    """Scores as floats (counts as ints), without the NaN ones (groups or tasks no sample had)."""
    values = {name: int(value) if name in COUNT_KEYS else float(value) for name, value in scores.items()}
    return {name: value for name, value in values.items() if not math.isnan(value)}


def write_results(path: Path, results: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return path
