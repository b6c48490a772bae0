"""``UniPixelDataModule``: WebDataset shard sources for fit / validate / test / predict.

Training mixes the ``train`` sources by weight (samples x repeat), resamples them endlessly and gives every rank
the same data type at every micro-step (``pipeline.MixedTrainStream``); evaluation reads every ``val``/``test``
sample exactly once over all ranks and workers (``pipeline.ExactEvalStream``). Skipped bad training samples are
logged as ``data/skipped`` and ``data/skipped/<reason>`` metrics.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from unipixel_pl.config import UniPixelConfig, preset
from unipixel_pl.datamodules.build import BuildConfig
from unipixel_pl.datamodules.collate import Collator, ShardBatch
from unipixel_pl.datamodules.encode import SampleEncoder
from unipixel_pl.datamodules.evaluation import ExactEvalStream
from unipixel_pl.datamodules.mixing import Source, SourceShards, group_weights
from unipixel_pl.datamodules.pipeline import SampleProcessor, StreamConfig
from unipixel_pl.datamodules.training import MixedTrainStream
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import build_tiny_tokenizer, load_tokenizer

TRAIN_BUDGET_FRAMES, EVAL_BUDGET_FRAMES = 8, 16
"""``S_f`` of the per-frame pixel budget in training and evaluation (DATA.md §4.2)."""


def _unbatch(batch: ShardBatch) -> ShardBatch:
    """The DataLoader's collate function: workers already yield whole batches."""
    return batch


class UniPixelDataModule(L.LightningDataModule):
    """UniPixel data from shard sets written by ``unipixel shards``.

    Args:
        model_config: the model's config (token ids, vision and SAM 2 sizes); the CLI links it from ``--model``.
            None uses the ``unipixel-tiny`` preset.
        tokenizer: a tokenizer directory; None builds the tiny tokenizer (only valid for the tiny vocabulary).
        train: training sources (shard directory + repeat factor).
        val: validation sources; test: test (and predict) sources.
        batch_size: training samples per micro-step and rank.
        eval_batch_size: evaluation samples per batch.
        num_workers: DataLoader workers per rank (training workers are persistent).
        seed: seeds sampling, templates, prompts and the data-type schedule (identical on every rank).
        sample_frames: frames sampled per video in training (``random``/TSN sampler).
        eval_sample_frames: frames sampled per video in evaluation (``uniform`` sampler).
        max_conv_turns: expressions drawn per multi-expression record (RefCOCO family).
        max_num_tokens: longer training samples are skipped and drawn again (None: no limit).
        shuffle_buffer: records buffered per source stream.
        steps_per_epoch: training micro-steps per epoch and rank; None = one pass of the mixture's weight
            (``sum(samples x repeat) / (batch_size x world_size)``).
    """

    def __init__(
        self,
        model_config: UniPixelConfig | None = None,
        tokenizer: str | None = None,
        train: list[Source] | None = None,
        val: list[Source] | None = None,
        test: list[Source] | None = None,
        batch_size: int = 1,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
        sample_frames: int = 8,
        eval_sample_frames: int = 16,
        max_conv_turns: int = 3,
        max_num_tokens: int | None = 40960,
        shuffle_buffer: int = 64,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        self.model_config = model_config or preset("unipixel-tiny")
        self.tokenizer_path = tokenizer
        self.sources = {"fit": list(train or []), "validate": list(val or []), "test": list(test or [])}
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.seed, self.sample_frames, self.eval_sample_frames = seed, sample_frames, eval_sample_frames
        self.max_conv_turns, self.max_num_tokens, self.shuffle_buffer = max_conv_turns, max_num_tokens, shuffle_buffer
        self.steps_per_epoch = steps_per_epoch
        self._shards: dict[str, list[SourceShards]] = {}
        self._skipped: dict[int, dict[str, int]] = {}
        self._logged_total = 0

    # ------------------------------------------------------------------ setup
    def shards(self, stage: str) -> list[SourceShards]:
        """The loaded sources of ``stage`` (``fit``, ``validate``, ``test``); raises when none are configured."""
        if stage not in self._shards:
            if not self.sources[stage]:
                option = {"fit": "train", "validate": "val", "test": "test"}[stage]
                raise ValueError(f"no {option} sources: set `--data.init_args.{option}` to shard directories")
            self._shards[stage] = [SourceShards.load(source) for source in self.sources[stage]]
        return self._shards[stage]

    def setup(self, stage: str) -> None:
        """Read the manifests needed by ``stage`` so a missing shard set fails before any step runs."""
        needed = {"fit": ["fit", "validate"], "validate": ["validate"], "test": ["test"], "predict": ["test"]}
        for name in needed.get(stage, []):
            if name == "fit" or self.sources[name]:
                self.shards(name)

    def sample_processor(self, train: bool) -> SampleProcessor:
        """Record -> sample for training (random sampling, budget of 8 frames) or evaluation (first templates,
        uniform sampling, budget of 16 frames)."""
        backbone = self.model_config.backbone
        tokenizer = build_tiny_tokenizer() if self.tokenizer_path is None else load_tokenizer(self.tokenizer_path)
        budget = TRAIN_BUDGET_FRAMES if train else EVAL_BUDGET_FRAMES
        processor = UniPixelProcessor.from_config(tokenizer, backbone, budget_frames=budget)
        encoder = SampleEncoder(processor, self.model_config.mask_decoder.image_size)
        config = BuildConfig(
            sample_frames=self.sample_frames if train else self.eval_sample_frames,
            frame_sampler="random" if train else "uniform",
            max_conv_turns=self.max_conv_turns,
            sam_image_size=self.model_config.mask_decoder.image_size,
            train=train,
            seed=self.seed,
        )
        return SampleProcessor(encoder, config, self.max_num_tokens if train else None)

    def stream_config(self) -> StreamConfig:
        """Seed, this process' rank and world size (from the trainer, else a single process) and buffer size."""
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return StreamConfig(self.seed, rank, world, self.shuffle_buffer)

    def collator(self) -> Collator:
        """Samples -> ``UniPixelBatch``, padding with the model's pad token."""
        return Collator(self.model_config.backbone.tokens.endoftext)

    def train_steps(self, world_size: int) -> int:
        """Micro-steps per epoch and rank (``steps_per_epoch`` or one pass of the mixture weight)."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        weight = sum(sum(group.values()) for group in group_weights(self.shards("fit")).values())
        return max(1, math.ceil(weight / (self.batch_size * world_size)))

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        config = self.stream_config()
        stream = MixedTrainStream(
            self.shards("fit"),
            self.sample_processor(train=True),
            self.collator(),
            self.batch_size,
            config,
            self.train_steps(config.world_size),
            start_epoch=self.trainer.current_epoch if self.trainer is not None else 0,
        )
        return self._loader(stream, persistent=True)

    def _eval_loader(self, stage: str) -> DataLoader:
        stream = ExactEvalStream(
            self.shards(stage),
            self.sample_processor(train=False),
            self.collator(),
            self.eval_batch_size,
            self.stream_config(),
        )
        return self._loader(stream, persistent=False)

    def _loader(self, stream: MixedTrainStream | ExactEvalStream, persistent: bool) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            collate_fn=_unbatch,
            persistent_workers=persistent and workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("validate") if self.sources["validate"] else []

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    # ------------------------------------------------------------------ bad-data metrics
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Record the skip counts a training batch carries and log them when they grew."""
        trainer = self.trainer
        if isinstance(batch, ShardBatch) and trainer is not None and trainer.training:
            self._skipped[batch.worker] = batch.skipped
            self._log_skips(trainer)
        return batch

    def skipped(self) -> dict[str, int]:
        """Bad training samples skipped so far on this rank, per reason, over all workers."""
        totals: dict[str, int] = {}
        for counts in self._skipped.values():
            for reason, value in counts.items():
                totals[reason] = totals.get(reason, 0) + value
        return totals

    def _log_skips(self, trainer: L.Trainer) -> None:
        totals = self.skipped()
        total = sum(totals.values())
        if total == self._logged_total:
            return
        self._logged_total = total
        metrics = {"data/skipped": float(total), **{f"data/skipped/{k}": float(v) for k, v in totals.items()}}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
