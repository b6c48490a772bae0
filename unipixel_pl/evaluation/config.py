"""``EvaluationConfig``: the one model argument that turns ``unipixel test`` into a benchmark run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class EvaluationConfig:
    """Generation-based benchmark evaluation (``LitUniPixel(evaluation=...)``; see ``docs/EVAL.md``).

    Attributes:
        benchmark: a name of ``unipixel_pl.evaluation.benchmarks.BENCHMARKS`` (``refcoco``, ``mevis``, ...).
        protocol: the averaging protocol; None is the benchmark's default, UniPixel's (``unipixel``); ``lisa``
            for image segmentation, ``davis`` for video segmentation and PixelQA masks.
        label: the run's name in scalar tags (``test/{label}/cIoU``), the table and the JSON, e.g.
            ``refcoco-testA``; None uses the benchmark name.
        output_dir: where the results JSON, per-sample predictions and masks go; None is
            ``{trainer.log_dir}/eval/{label}``.
        max_new_tokens: the generation limit; None is the benchmark's (512, MVBench 256).
        sam_frames: video segmentation: ``all`` runs SAM 2 on every frame of the clip and scores every frame (the
            reference protocol), ``sampled`` only on the frames given to the LLM (cheaper).
        write_masks: write one 0/255 PNG per frame and expression under ``{output_dir}/masks``; None writes them
            for the server-evaluated benchmarks (and zips them into ``submission.zip``).
    """

    benchmark: str
    protocol: str | None = None
    label: str | None = None
    output_dir: str | None = None
    max_new_tokens: int | None = None
    sam_frames: Literal["all", "sampled"] = "all"
    write_masks: bool | None = None
