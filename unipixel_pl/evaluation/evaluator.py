"""``BenchmarkEvaluator``: generation-based scoring of one benchmark in ``unipixel test``.

``LitUniPixel(evaluation=EvaluationConfig(...))`` hands its test steps and test epoch end to this module. Each
step answers every sample greedily (with the benchmark's pre-fill) and updates the family's metrics; the epoch end
computes them over all ranks, logs them as ``test/{label}/{metric}`` scalars (TensorBoard), and rank 0 prints a
table and writes ``results.json`` (its path printed), plus ``submission.zip`` for server-evaluated benchmarks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from unipixel_pl.datamodules.evaluation import EvalBatch
from unipixel_pl.evaluation.benchmarks import get_benchmark
from unipixel_pl.evaluation.config import EvaluationConfig
from unipixel_pl.evaluation.context import EvalContext
from unipixel_pl.evaluation.outputs import PredictionLog, finite_scores, format_table, write_results, zip_masks
from unipixel_pl.evaluation.scorers import SCORERS
from unipixel_pl.evaluation.targets import EvalItem

if TYPE_CHECKING:
    import lightning as L

    from unipixel_pl.models.lit_unipixel import LitUniPixel


class BenchmarkEvaluator(nn.Module):
    """Scores one benchmark during ``trainer.test``.

    Args:
        config: benchmark, protocol, outputs (see :class:`EvaluationConfig`).
    """

    def __init__(self, config: EvaluationConfig) -> None:
        super().__init__()
        self.config = config
        self.benchmark = get_benchmark(config.benchmark)
        self.protocol = self.benchmark.resolve_protocol(config.protocol)
        self.label = config.label or self.benchmark.name
        self.scorer = SCORERS[self.benchmark.family](self.benchmark, self.protocol)
        self._context: EvalContext | None = None

    def test_step(self, model: LitUniPixel, batch: EvalBatch) -> None:
        """Answer and score every sample of ``batch``; write each one's prediction line."""
        if not isinstance(batch, EvalBatch):
            raise TypeError(
                f"benchmark evaluation needs evaluation batches read from shards, got {type(batch).__name__}: use "
                "`--data unipixel_pl.datamodules.datamodule.UniPixelDataModule` with `--data.init_args.test`"
            )
        context = self._context or self._start(model)
        for index in range(batch.batch_size):
            item = EvalItem(batch.records[index], batch.frame_indices[index])
            entry = self.scorer.score(model, batch, index, item, context)
            if entry is not None:
                context.predictions.write({"key": item.key, **entry})

    def on_test_epoch_end(self, model: LitUniPixel) -> dict[str, float]:
        """Compute over all ranks, log the scalars, and on rank 0 print the table and write the results."""
        scores = finite_scores(self.scorer.compute())
        self.scorer.reset()
        for name, value in scores.items():
            model.log(f"test/{self.label}/{name}", value, sync_dist=False)
        context = self._context or self._start(model)
        context.predictions.close()
        self._context = None
        model.trainer.strategy.barrier()  # every rank's masks are written before rank 0 zips them
        if model.trainer.is_global_zero:
            self._report(model.trainer, context, scores)
        return scores

    def _start(self, model: LitUniPixel) -> EvalContext:
        """The run's context: the datamodule's encoder, the output folder, this rank's prediction log."""
        trainer = model.trainer
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "sample_processor"):
            raise TypeError(
                "benchmark evaluation encodes questions with the datamodule's processor: use "
                "unipixel_pl.datamodules.datamodule.UniPixelDataModule"
            )
        output_dir = self.output_dir(trainer)
        write_masks = self.config.write_masks
        self._context = EvalContext(
            benchmark=self.benchmark,
            protocol=self.protocol,
            encoder=datamodule.sample_processor(train=False).encoder,
            collator=datamodule.collator(),
            max_new_tokens=self.config.max_new_tokens or self.benchmark.max_new_tokens,
            sam_frames=self.config.sam_frames,
            output_dir=output_dir,
            write_masks=self.benchmark.submission_root is not None if write_masks is None else write_masks,
            predictions=PredictionLog(output_dir, trainer.global_rank),
        )
        return self._context

    def output_dir(self, trainer: L.Trainer) -> Path:
        """``output_dir``, else ``{log_dir}/eval/{label}``."""
        if self.config.output_dir is not None:
            return Path(self.config.output_dir)
        return Path(trainer.log_dir or trainer.default_root_dir) / "eval" / self.label

    def _report(self, trainer: L.Trainer, context: EvalContext, scores: dict[str, float]) -> None:
        results: dict[str, Any] = {
            "benchmark": self.benchmark.name,
            "label": self.label,
            "protocol": self.protocol,
            "sam_frames": self.config.sam_frames,
            "metrics": scores,
            "checkpoint": trainer.ckpt_path,
            "init_weights": getattr(trainer.lightning_module, "init_weights", None),
            "predictions": str(context.predictions.path.parent),
            "masks": str(context.output_dir / "masks") if context.write_masks else None,
            "submission": None,
        }
        if self.benchmark.submission_root is not None and context.write_masks:
            archive = context.output_dir / "submission.zip"
            results["submission"] = str(
                zip_masks(context.output_dir / "masks", archive, self.benchmark.submission_root)
            )
        path = write_results(context.output_dir / "results.json", results)
        print(format_table(self.label, self.protocol, scores))
        print(f"{self.label} results: {path}")
        if results["submission"]:
            print(f"{self.label} submission: {results['submission']}")
