"""Print the demo's results table (held-out metrics against the targets), its validation curves and where the
TensorBoard logs, checkpoint, overlays and metrics JSON are.

    python scripts/demo_report.py runs/demo/tensorboard/version_1/held_out_metrics.json \\
        --checkpoint runs/demo/tensorboard/version_0/checkpoints/last.ckpt --tensorboard runs/demo/tensorboard
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="held_out_metrics.json written by the HeldOutReport callback")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--tensorboard", type=Path, help="the TensorBoard root of the run")
    args = parser.parse_args(argv)
    report = json.loads(args.metrics.read_text())
    print("\nHeld-out results\n" + results_table(report))
    if args.checkpoint is not None:
        print(f"\nValidation curves\n{validation_curves(args.checkpoint.parent.parent)}")
        print(f"\ncheckpoint:   {args.checkpoint}")
    if args.tensorboard is not None:
        print(f"TensorBoard:  tensorboard --logdir {args.tensorboard}")
        print("overlays:     TensorBoard IMAGES tab, val_overlays/* (prediction vs ground truth, every validation)")
    print(f"metrics JSON: {args.metrics}")


if __name__ == "__main__":
    main()
