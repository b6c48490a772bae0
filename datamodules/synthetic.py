"""The synthetic corpus: coloured-shape scenes rendered into every UniPixel task family, generated on the fly.

Sample ``i`` is a pure function of ``(seed, i)``, so runs are reproducible and workers need no coordination.
Consecutive blocks of ``batch_size`` samples share one task family, so a sequential batch is task-homogeneous
(the reference's group sampling, single process).
"""

from __future__ import annotations

from functools import partial

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from unipixel_pl.config import UniPixelConfig, preset
from unipixel_pl.datamodules.collate import Collator
from unipixel_pl.datamodules.encode import SampleEncoder, SampleRecord
from unipixel_pl.datamodules.scenes import make_scene
from unipixel_pl.datamodules.tasks import BUILDERS, SEG_ANSWER, TASKS, segmentation
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.resumable_loader import ResumableDataLoader
from unipixel_pl.tokenizer import build_tiny_tokenizer, load_tokenizer


class SyntheticDataset(Dataset[SampleRecord]):
    """``length`` samples of ``tasks`` on scenes of ``height`` x ``width`` pixels.

    Args:
        encoder: turns a task sample into model inputs.
        length: number of samples.
        tasks: task families to cycle through (see ``TASKS``).
        block: consecutive samples sharing one task family (use the batch size).
        video_frames: frames of a video scene; every other block is a video when > 1.
        seed: base seed.
        objects: ``(fewest, most)`` objects per scene, drawn uniformly (no draw when equal, so the default keeps
            the samples of earlier versions).
        seg_answer: the answer template of the ``seg`` task (see ``tasks.segmentation``).
    """

    def __init__(
        self,
        encoder: SampleEncoder,
        length: int,
        tasks: list[str],
        block: int = 1,
        video_frames: int = 4,
        height: int = 112,
        width: int = 112,
        seed: int = 0,
        objects: tuple[int, int] = (2, 2),
        seg_answer: str = SEG_ANSWER,
    ) -> None:
        unknown = sorted(set(tasks) - set(TASKS))
        if unknown or not tasks:
            raise ValueError(f"unknown or empty synthetic tasks {unknown or tasks}; choose from {list(TASKS)}")
        self.encoder, self.length, self.tasks, self.block = encoder, length, tasks, max(1, block)
        self.video_frames, self.height, self.width, self.seed = video_frames, height, width, seed
        if not 1 <= objects[0] <= objects[1]:
            raise ValueError(f"objects must be (fewest, most) with 1 <= fewest <= most, got {objects}")
        self.objects = objects
        self.builders = {**BUILDERS, "seg": partial(segmentation, answer=seg_answer)}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> SampleRecord:
        if not 0 <= index < self.length:
            raise IndexError(f"sample {index} out of range for {self.length} synthetic samples")
        block = index // self.block
        task = self.tasks[block % len(self.tasks)]
        is_video = self.video_frames > 1 and (block // len(self.tasks)) % 2 == 1
        rng = np.random.default_rng([self.seed, index])
        fewest, most = self.objects
        count = fewest if fewest == most else int(rng.integers(fewest, most + 1))
        scene = make_scene(rng, self.height, self.width, self.video_frames if is_video else 1, num_objects=count)
        return self.encoder(scene.frames, self.builders[task](scene, rng))


class SyntheticDataModule(L.LightningDataModule):
    """Synthetic shapes for fit/validate/test/predict; the default data when the user has none yet.

    Args:
        model_config: the model's config (token ids, vision and SAM 2 sizes); the CLI links it from ``--model``.
            None uses the ``unipixel-tiny`` preset.
        tokenizer: a tokenizer directory; None builds the tiny tokenizer (only valid for the tiny vocabulary).
        tasks: task families (default: all).
        train_samples, val_samples, test_samples: dataset sizes.
        batch_size: samples per batch (each batch holds one task family).
        video_frames: frames per video scene (1 = images only).
        image_size: side of the generated square scenes in pixels.
        num_workers: DataLoader workers.
        seed: base seed; validation and test use ``seed + 1`` and ``seed + 2``.
        objects: ``(fewest, most)`` objects per scene.
        seg_answer: the answer template of the ``seg`` task.
    """

    def __init__(
        self,
        model_config: UniPixelConfig | None = None,
        tokenizer: str | None = None,
        tasks: list[str] | None = None,
        train_samples: int = 64,
        val_samples: int = 8,
        test_samples: int = 8,
        batch_size: int = 2,
        video_frames: int = 4,
        image_size: int = 112,
        num_workers: int = 0,
        seed: int = 0,
        objects: tuple[int, int] = (2, 2),
        seg_answer: str = SEG_ANSWER,
    ) -> None:
        super().__init__()
        self.model_config = model_config or preset("unipixel-tiny")
        self.tokenizer_path, self.tasks = tokenizer, list(tasks or TASKS)
        self.sizes = {"fit": train_samples, "validate": val_samples, "test": test_samples, "predict": test_samples}
        self.batch_size, self.video_frames, self.image_size = batch_size, video_frames, image_size
        self.num_workers, self.seed = num_workers, seed
        self.objects, self.seg_answer = tuple(objects), seg_answer
        self._encoder: SampleEncoder | None = None

    @property
    def encoder(self) -> SampleEncoder:
        if self._encoder is None:
            backbone = self.model_config.backbone
            tokenizer = build_tiny_tokenizer() if self.tokenizer_path is None else load_tokenizer(self.tokenizer_path)
            processor = UniPixelProcessor(tokenizer, backbone.tokens, backbone.vision, rope_index=backbone.rope_index)
            self._encoder = SampleEncoder(processor, self.model_config.mask_decoder.image_size)
        return self._encoder

    def _loader(self, stage: str, offset: int) -> DataLoader:
        """Training blocks span all ranks of a step (same task everywhere) and the loader resumes mid-epoch."""
        training = stage == "fit"
        world_size = self.trainer.world_size if training and self.trainer is not None else 1
        dataset = SyntheticDataset(
            self.encoder,
            self.sizes[stage],
            self.tasks,
            block=self.batch_size * world_size,
            video_frames=self.video_frames,
            height=self.image_size,
            width=self.image_size,
            seed=self.seed + offset,
            objects=self.objects,
            seg_answer=self.seg_answer,
        )
        sampler = None
        if world_size > 1:  # interleaved ranks: the k-th batch of every rank lies in block k
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=self.trainer.global_rank, shuffle=False)
        loader = ResumableDataLoader if training else DataLoader
        return loader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=Collator(self.model_config.backbone.tokens.endoftext),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("fit", 0)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validate", 1)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", 2)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", 2)
