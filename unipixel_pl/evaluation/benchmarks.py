"""The benchmark registry: for each benchmark its metric family, protocols, answer pre-fill and outputs
(``reference/EVAL.md`` §3).

Families: ``image_seg`` (cIoU, gIoU, BBox accuracy), ``video_seg`` (J, F, J&F per expression), ``choice``
(multiple-choice accuracy) and ``pixelqa`` (the two-pass protocol of EVAL.md §4: mask J/F and accuracy). The first
protocol of each benchmark is UniPixel's and the default; the others are the official toolkits' averaging.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES: tuple[str, ...] = ("image_seg", "video_seg", "choice", "pixelqa")

IMAGE_PROTOCOLS = ("unipixel", "lisa")
"""``lisa``: gIoU with ``inter / (union + 1e-5)``; on ReasonSeg only the first text query of each image."""
VIDEO_PROTOCOLS = ("unipixel", "davis")
"""``davis``: DAVIS-2017 toolkit frame averaging (first and last frame of each expression excluded); for PixelQA,
the DAVIS per-frame J and boundary F averaged per object instead of UniPixel's volume J and pixel F1."""

VIDEOREFER_Q_TYPES: tuple[str, ...] = (
    "Basic Questions",
    "Sequential Questions",
    "Relationship Questions",
    "Reasoning Questions",
    "Future Predictions",
)
"""VideoRefer-Bench-Q question types (``type``), the per-task breakdown of VideoRefer-Q and PixelQA."""
MVBENCH_TASKS: tuple[str, ...] = (
    "action_sequence",
    "action_prediction",
    "action_antonym",
    "fine_grained_action",
    "unexpected_action",
    "object_existence",
    "object_interaction",
    "object_shuffle",
    "moving_direction",
    "action_localization",
    "scene_transition",
    "action_count",
    "moving_count",
    "moving_attribute",
    "state_change",
    "fine_grained_pose",
    "character_order",
    "egocentric_navigation",
    "episodic_reasoning",
    "counterfactual_inference",
)
"""MVBench's 20 tasks (``data/mvbench/json/{task}.json``)."""

BEST_OPTION_PREFILL = "The best option is ("
MVBENCH_PREFILL = "Best Option: ("


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark is evaluated.

    Attributes:
        name: registry key, used in the eval configs.
        family: metric family (``FAMILIES``).
        protocols: accepted protocol names; the first (UniPixel's) is the default.
        prefill: text the assistant turn starts with before greedy decoding ("" for none).
        max_new_tokens: the generation limit of the reference (512; MVBench 256).
        tasks: task names samples may carry (``meta.task``) for the per-task accuracy breakdown.
        revos_groups: J&F over referring and reasoning expressions (``meta.eval["type_ids"]``), overall = their mean.
        lisa_first_query: the ``lisa`` protocol scores only the first text query of each image (ReasonSeg).
        scored: the split has public ground truth; False for server-evaluated splits (predictions only).
        submission_root: folder the submission zip puts the ``{video}/{expression}/{frame}.png`` tree under
            ("" at the top); None when the benchmark has no mask submission.
    """

    name: str
    family: str
    protocols: tuple[str, ...] = ("unipixel",)
    prefill: str = ""
    max_new_tokens: int = 512
    tasks: tuple[str, ...] = ()
    revos_groups: bool = False
    lisa_first_query: bool = False
    scored: bool = True
    submission_root: str | None = None

    def resolve_protocol(self, protocol: str | None) -> str:
        """``protocol`` checked against this benchmark's, or its default when None."""
        if protocol is None:
            return self.protocols[0]
        if protocol not in self.protocols:
            raise ValueError(
                f"benchmark {self.name!r} has no protocol {protocol!r}; choose one of {list(self.protocols)}"
            )
        return protocol


def _image(name: str, **kwargs: object) -> Benchmark:
    return Benchmark(name, "image_seg", IMAGE_PROTOCOLS, **kwargs)  # type: ignore[arg-type]


def _video(name: str, **kwargs: object) -> Benchmark:
    return Benchmark(name, "video_seg", VIDEO_PROTOCOLS, **kwargs)  # type: ignore[arg-type]


BENCHMARKS: dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (
        _image("refcoco"),
        _image("refcoco+"),
        _image("refcocog"),
        _image("reason_seg", lisa_first_query=True),
        _video("mevis"),
        _video("mevis_valid", scored=False, submission_root=""),
        _video("revos", revos_groups=True),
        _video("ref_davis17"),
        _video("ref_sav"),
        _video("ref_youtube_vos", scored=False, submission_root="Annotations"),
        Benchmark("videorefer_q", "choice", prefill=BEST_OPTION_PREFILL, tasks=VIDEOREFER_Q_TYPES),
        Benchmark("mvbench", "choice", prefill=MVBENCH_PREFILL, max_new_tokens=256, tasks=MVBENCH_TASKS),
        Benchmark("pixelqa", "pixelqa", VIDEO_PROTOCOLS, prefill=BEST_OPTION_PREFILL, tasks=VIDEOREFER_Q_TYPES),
    )
}
"""Every benchmark by name. MeViS ``valid`` and Ref-YouTube-VOS ``valid`` have no public masks: their runs write the
server's submission zip instead of scores."""


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark ``name``; raises naming the known ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]
