"""One scorer per metric family: answer a sample, update the family's metrics, return the sample's record.

Scorers hold torchmetrics metrics with sum-reduced states, so ``compute`` gives the whole test set's value on
every rank. A generation without a ``<|seg|>`` is scored as an all-zero mask and counted in
``failed_generations`` (EVAL.md §1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from unipixel_pl.evaluation.benchmarks import Benchmark
from unipixel_pl.evaluation.context import (
    EvalContext,
    Generation,
    empty_masks,
    first_mask,
    generate_answer,
    scored_frames,
)
from unipixel_pl.evaluation.outputs import write_expression_masks
from unipixel_pl.evaluation.pixelqa import answer_sample
from unipixel_pl.evaluation.segment import segment_sampled
from unipixel_pl.evaluation.targets import EvalItem, object_ids
from unipixel_pl.metrics import BoxAccuracy, CIoU, GIoU, MultipleChoiceAccuracy, ReVOSJF, VideoJF, VolumeJF
from unipixel_pl.metrics.functional import (
    boundary_f_per_frame,
    box_hit,
    intersection_and_union,
    parse_choice,
    query_iou,
    region_j_per_frame,
    volume_jf,
)
from unipixel_pl.models.generation import single_sample
from unipixel_pl.types import UniPixelBatch

if TYPE_CHECKING:
    from unipixel_pl.models.lit_unipixel import LitUniPixel

LISA_UNION_EPS = 1e-5


class GenerationCounts(Metric):
    """Scored samples and failed generations (no mask where one was asked for), summed over ranks."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("samples", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("failed", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, failed: bool) -> None:
        self.samples += 1
        self.failed += int(failed)

    def compute(self) -> dict[str, Tensor]:
        return {"samples": self.samples, "failed_generations": self.failed}


class Scorer(nn.Module):
    """Base of the family scorers.

    Args:
        benchmark: the benchmark.
        protocol: its resolved protocol.
    """

    def __init__(self, benchmark: Benchmark, protocol: str) -> None:
        super().__init__()
        self.benchmark, self.protocol = benchmark, protocol
        self.counts = GenerationCounts()

    def score(
        self, model: LitUniPixel, batch: UniPixelBatch, index: int, item: EvalItem, context: EvalContext
    ) -> dict[str, Any] | None:
        """Answer sample ``index`` and update the metrics; returns its prediction record (None: not scored)."""
        raise NotImplementedError

    def metrics(self) -> dict[str, Metric]:
        """The family's metrics by result prefix ("" for none)."""
        raise NotImplementedError

    def compute(self) -> dict[str, Tensor]:
        """Every result, ``{prefix}{name}`` (all ranks must call this: it syncs)."""
        scores = dict(self.counts.compute())
        for prefix, metric in self.metrics().items():
            value = metric.compute()
            scores |= {f"{prefix}{k}": v for k, v in value.items()} if isinstance(value, dict) else {prefix: value}
        return scores

    def reset(self) -> None:
        for metric in [self.counts, *self.metrics().values()]:
            metric.reset()


def _segmentation(model: LitUniPixel, generation: Generation, item: EvalItem, frames: list[int]) -> tuple[Tensor, bool]:
    """``(T, H, W)`` mask of the first ``<|seg|>`` on ``frames``, or all zeros and True when generation failed."""
    mask = first_mask(model, generation, item, frames)
    return (empty_masks(item, frames), True) if mask is None else (mask, False)


def _seg_entry(generation: Generation, failed: bool, item: EvalItem) -> dict[str, Any]:
    """The prediction line fields every segmentation scorer writes."""
    return {
        "response": generation.response,
        "failed": failed,
        "video": item.record.meta.vid,
        "expression": item.expression_id(),
    }


def _save_masks(context: EvalContext, item: EvalItem, folder: str, frames: list[int], masks: Tensor) -> None:
    """Write ``masks: (T, H, W)`` on ``frames`` as PNGs under ``masks/{video}/{folder}/`` when the run asks."""
    if context.write_masks:
        root = context.output_dir / "masks"
        write_expression_masks(root, item.record.meta.vid, folder, item.frame_names(frames), masks)


def _mean_jf(pred: Tensor, gt: Tensor, bound_th: float) -> dict[str, float]:
    """DAVIS J and boundary F of ``(T, H, W)`` masks, averaged over frames."""
    region = region_j_per_frame(pred, gt).mean().item()
    return {"J": region, "F": boundary_f_per_frame(pred, gt, bound_th).mean().item()}


class ImageSegScorer(Scorer):
    """cIoU, gIoU and BBox accuracy of the first generated mask (RefCOCO family, ReasonSeg)."""

    def __init__(self, benchmark: Benchmark, protocol: str) -> None:
        super().__init__(benchmark, protocol)
        self.ciou, self.box_acc = CIoU(), BoxAccuracy()
        self.giou = GIoU(union_eps=LISA_UNION_EPS if protocol == "lisa" else 0.0)

    def metrics(self) -> dict[str, Metric]:
        return {"cIoU": self.ciou, "gIoU": self.giou, "box_acc": self.box_acc}

    def score(
        self, model: LitUniPixel, batch: UniPixelBatch, index: int, item: EvalItem, context: EvalContext
    ) -> dict[str, Any] | None:
        if self.protocol == "lisa" and self.benchmark.lisa_first_query and item.turn_index != 0:
            return None
        generation = generate_answer(model, batch, index, context)
        pred, failed = _segmentation(model, generation, item, item.frame_indices)
        pred, gt, ignore = pred[0], item.target_mask(item.frame_indices)[0], item.ignore_mask()
        box = item.gt_box(gt)
        self.ciou.update(pred, gt, ignore)
        self.giou.update(pred, gt, ignore)
        self.box_acc.update(pred, torch.tensor(box))
        self.counts.update(failed)
        entry = _seg_entry(generation, failed, item)
        _save_masks(context, item, entry["expression"], item.frame_indices, pred[None])
        inter, union = intersection_and_union(pred, gt, ignore)
        iou = query_iou(inter, union, self.giou.union_eps)
        return entry | {"inter": int(inter), "union": int(union), "iou": float(iou), "hit": box_hit(pred, box)}


class VideoSegScorer(Scorer):
    """J, F and J&F per expression (ReVOS: referring/reasoning groups), and the per-frame PNGs when asked."""

    def __init__(self, benchmark: Benchmark, protocol: str) -> None:
        super().__init__(benchmark, protocol)
        self.jf = ReVOSJF() if benchmark.revos_groups else VideoJF()

    def metrics(self) -> dict[str, Metric]:
        return {"": self.jf} if self.benchmark.scored else {}

    def score(
        self, model: LitUniPixel, batch: UniPixelBatch, index: int, item: EvalItem, context: EvalContext
    ) -> dict[str, Any] | None:
        frames = scored_frames(item, context)
        generation = generate_answer(model, batch, index, context)
        pred, failed = _segmentation(model, generation, item, frames)
        self.counts.update(failed)
        entry = _seg_entry(generation, failed, item)
        _save_masks(context, item, entry["expression"], frames, pred)
        if self.benchmark.scored:
            pred, gt = self._frames_scored(pred), self._frames_scored(item.target_mask(frames))
            group = item.revos_type() if self.benchmark.revos_groups else 0
            self.jf.update(pred, gt, group)
            entry |= {"group": group, **_mean_jf(pred, gt, self.jf.bound_th)}
        return entry

    def _frames_scored(self, masks: Tensor) -> Tensor:
        """The DAVIS toolkit leaves out each sequence's first and last frame; UniPixel scores every frame."""
        return masks[1:-1] if self.protocol == "davis" and masks.shape[0] > 2 else masks


class ChoiceScorer(Scorer):
    """Multiple-choice accuracy of the greedy answer after the pre-fill (VideoRefer-Bench-Q, MVBench)."""

    def __init__(self, benchmark: Benchmark, protocol: str) -> None:
        super().__init__(benchmark, protocol)
        self.accuracy = MultipleChoiceAccuracy(benchmark.tasks)

    def metrics(self) -> dict[str, Metric]:
        return {"": self.accuracy}

    def score(
        self, model: LitUniPixel, batch: UniPixelBatch, index: int, item: EvalItem, context: EvalContext
    ) -> dict[str, Any] | None:
        return self.answer(generate_answer(model, batch, index, context), item)

    def answer(self, generation: Generation, item: EvalItem) -> dict[str, Any]:
        """Score a generated answer; returns its record."""
        answer, options = item.answer_index(), item.num_options()
        self.accuracy.update([generation.response], [answer], [options], [item.task()])
        self.counts.update(False)
        return {"response": generation.response, "choice": parse_choice(generation.response, options), "answer": answer}


class PixelQAScorer(ChoiceScorer):
    """PixelQA's two passes (EVAL.md §4): teacher-forced ``<|seg|>`` masks scored by volume J and pixel F1
    (``davis``: per-frame DAVIS J and boundary F per object), then the question answered with those masks as
    ``<|mem|>`` prompts, scored by multiple-choice accuracy."""

    def __init__(self, benchmark: Benchmark, protocol: str) -> None:
        super().__init__(benchmark, protocol)
        self.masks = VideoJF() if protocol == "davis" else VolumeJF()

    def metrics(self) -> dict[str, Metric]:
        return {"mask_": self.masks, "": self.accuracy}

    def score(
        self, model: LitUniPixel, batch: UniPixelBatch, index: int, item: EvalItem, context: EvalContext
    ) -> dict[str, Any] | None:
        sample = single_sample(batch, index)
        out = model.run_backbone(sample)
        tokens = model.seg_prompts(out.hidden_states, sample.input_ids)[0]
        pred = segment_sampled(model, sample, tokens).cpu()  # (O, T, H, W)
        gt = item.object_masks(item.frame_indices).transpose(0, 1)
        if pred.shape != gt.shape:
            raise ValueError(f"sample {item.key!r}: {pred.shape[0]} <|seg|> masks for {gt.shape[0]} objects")
        entry = {"video": item.record.meta.vid, "expression": item.expression_id(), **self._update_masks(pred, gt)}
        for oid, masks in zip(object_ids(item), pred, strict=True):
            _save_masks(context, item, f"{entry['expression']}/{oid}", item.frame_indices, masks)
        if not item.num_options():
            self.counts.update(False)
            return entry
        question = answer_sample(item, pred, context).to(model.device)
        return entry | self.answer(generate_answer(model, question, 0, context), item)

    def _update_masks(self, pred: Tensor, gt: Tensor) -> dict[str, list[float]]:
        """Add every object; returns the per-object J and F of the protocol."""
        if isinstance(self.masks, VolumeJF):
            self.masks.update(pred, gt)
            region, boundary = volume_jf(pred, gt)
            return {"J": region.tolist(), "F": boundary.tolist()}
        objects = []
        for obj_pred, obj_gt in zip(pred, gt, strict=True):
            self.masks.update(obj_pred, obj_gt)
            objects.append(_mean_jf(obj_pred, obj_gt, self.masks.bound_th))
        return {"J": [o["J"] for o in objects], "F": [o["F"] for o in objects]}


SCORERS: dict[str, type[Scorer]] = {
    "image_seg": ImageSegScorer,
    "video_seg": VideoSegScorer,
    "choice": ChoiceScorer,
    "pixelqa": PixelQAScorer,
}
"""The scorer of each metric family."""
