"""Print the demo's results table (held-out metrics against the targets), its validation curves, the answers and
masks of `unipixel infer` on held-out media, and where the TensorBoard logs, checkpoint, overlays and metrics JSON are.

    python scripts/demo_report.py runs/demo/tensorboard/version_1/held_out_metrics.json \\
        --checkpoint runs/demo/tensorboard/version_0/checkpoints/last.ckpt --tensorboard runs/demo/tensorboard \\
        --infer runs/demo/tensorboard/version_0/infer --requests runs/demo/data/held_out_media/requests.tsv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

# Headline key, what it measures, target (issue 5).
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("ciou", "cIoU, image referring segmentation", 0.75),
    ("video_jf", "J&F, moving-shape videos", 0.60),
    ("mc_accuracy", "accuracy, multiple-choice shape questions", 0.90),
    ("region_accuracy", "accuracy, point/box/mask region answers", 0.90),
)
CURVES = ("val/ciou/seg_image", "val/video_jf", "val/answer_acc/multimodal", "val/answer_acc/region_image")


def results_table(report: dict) -> str:
    """A fixed-width table: metric, held-out value, target, whether it is met."""
    lines = [f"{'metric':<46} {'held-out':>8} {'target':>7}  met", "-" * 68]
    for key, label, target in TARGETS:
        value = report.get(key)
        shown = "n/a" if value is None else f"{value:.3f}"
        met = "-" if value is None else ("yes" if value >= target else "no")
        lines.append(f"{label:<46} {shown:>8} {target:>7.2f}  {met}")
    return "\n".join(lines)


def validation_curves(run: Path) -> str:
    """Validation scalars of a fit run's event files, one row per logged step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tags = [tag for tag in CURVES if tag in events.Tags()["scalars"]]
    rows: dict[int, dict[str, float]] = {}
    for tag in tags:
        for event in events.Scalars(tag):
            rows.setdefault(event.step, {})[tag] = event.value
    lines = ["step    " + " ".join(f"{tag.removeprefix('val/'):>22}" for tag in tags)]
    for step in sorted(rows):
        lines.append(f"{step:<7} " + " ".join(f"{rows[step].get(tag, float('nan')):>22.3f}" for tag in tags))
    return "\n".join(lines)


def read_requests(path: Path) -> list[dict[str, str]]:
    """The rows of ``requests.tsv`` (``scripts/demo_media.py``): name, media, point, prompt, reference, target."""
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def _read_masks(directory: Path) -> np.ndarray:
    """``(T, H, W)`` bool masks of a folder of 8-bit PNGs, in file-name order."""
    return np.stack([np.asarray(Image.open(path)) > 0 for path in sorted(directory.glob("*.png"))])


def mask_iou(predicted: Path, target: Path) -> float:
    """IoU over all frames (cumulative intersection over cumulative union) of two folders of mask PNGs."""
    pred, true = _read_masks(predicted), _read_masks(target)
    if pred.shape != true.shape:
        raise ValueError(f"masks in {predicted} are {pred.shape}, the targets in {target} are {true.shape}")
    return float((pred & true).sum() / max(int((pred | true).sum()), 1))


def inference_report(infer: Path, requests: list[dict[str, str]]) -> str:
    """Per request: prompt, answer beside the reference answer, mask IoU against the target, and the output paths."""
    return "\n".join(line for request in requests for line in _request_lines(infer / request["name"], request))


def _request_lines(root: Path, request: dict[str, str]) -> list[str]:
    (entry,) = json.loads((root / "summary.json").read_text())["requests"]
    point = f" (point {request['point']})" if request["point"] else ""
    lines = [f"{request['name']}: {entry['prompt']}{point}", f"  answer:    {entry['answer']!r}"]
    lines.append(f"  reference: {request['reference']!r}")
    masks = root / entry["objects"][0]["masks"] if entry["objects"] else None
    if request["target"]:
        iou = "none, no <|seg|> in the answer" if masks is None else f"{mask_iou(masks, Path(request['target'])):.3f}"
        lines.append(f"  mask IoU:  {iou} (target {request['target']})")
    if masks is not None:
        lines.append(f"  masks:     {masks}")
    if entry["overlay"]:
        lines.append(f"  overlay:   {root / entry['overlay']}")
    return [*lines, f"  summary:   {root / 'summary.json'}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="held_out_metrics.json written by the HeldOutReport callback")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--tensorboard", type=Path, help="the TensorBoard root of the run")
    parser.add_argument("--infer", type=Path, help="the folder of `unipixel infer` outputs, one folder per request")
    parser.add_argument("--requests", type=Path, help="requests.tsv of scripts/demo_media.py (with --infer)")
    args = parser.parse_args(argv)
    print("\nHeld-out results\n" + results_table(json.loads(args.metrics.read_text())))
    if args.checkpoint is not None:
        print(f"\nValidation curves\n{validation_curves(args.checkpoint.parent.parent)}")
    if args.infer is not None and args.requests is not None:
        print(f"\nunipixel infer on held-out media\n{inference_report(args.infer, read_requests(args.requests))}")
    print("\n" + "\n".join(locations(args)))


def locations(args: argparse.Namespace) -> list[str]:
    """Where the checkpoint, TensorBoard logs, overlays, infer outputs and metrics JSON are."""
    lines = [] if args.checkpoint is None else [f"checkpoint:   {args.checkpoint}"]
    if args.tensorboard is not None:
        lines.append(f"TensorBoard:  tensorboard --logdir {args.tensorboard}")
        lines.append(
            "overlays:     TensorBoard IMAGES tab, val_overlays/* (prediction vs ground truth, every validation)"
        )
    if args.infer is not None:
        lines.append(f"infer:        {args.infer}/<request>/ (masks, overlay, summary.json; listed above)")
    return [*lines, f"metrics JSON: {args.metrics}"]


if __name__ == "__main__":
    main()
