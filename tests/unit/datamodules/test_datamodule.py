"""``UniPixelDataModule``: one data type per step on every rank, worker round-robin, epochs, reproducibility,
exact evaluation over ranks and workers, and the skip metrics."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from unipixel_pl.datamodules.collate import ShardBatch
from unipixel_pl.datamodules.datamodule import UniPixelDataModule
from unipixel_pl.datamodules.evaluation import ExactEvalStream
from unipixel_pl.datamodules.manifest import load_manifest
from unipixel_pl.datamodules.mixing import Source
from unipixel_pl.datamodules.pipeline import StreamConfig
from unipixel_pl.datamodules.training import MixedTrainStream

STEPS = 6


def _module(corpus: Path, **kwargs: object) -> UniPixelDataModule:
    defaults = {"batch_size": 2, "steps_per_epoch": STEPS, "shuffle_buffer": 2, "sample_frames": 2}
    defaults.update(kwargs)
    return UniPixelDataModule(train=[Source(str(corpus / "train"))], val=[Source(str(corpus / "val"))], **defaults)  # type: ignore[arg-type]


def _train_stream(module: UniPixelDataModule, rank: int, world: int) -> MixedTrainStream:
    config = StreamConfig(module.seed, rank, world, module.shuffle_buffer)
    processor = module.sample_processor(train=True)
    return MixedTrainStream(module.shards("fit"), processor, module.collator(), module.batch_size, config, STEPS)


def test_every_rank_runs_the_same_data_type_at_every_step(corpus: Path) -> None:
    module = _module(corpus)
    ranks = [list(_train_stream(module, rank, 2)) for rank in range(2)]
    for first, second in zip(*ranks, strict=True):
        assert len(set(first.task)) == 1 and first.task == second.task
    assert [b.keys for b in ranks[0]] != [b.keys for b in ranks[1]]  # each rank resamples its own data
    manifest, _ = load_manifest(corpus / "train")
    assert {s for b in ranks[0] for s in b.sources} == {f"{manifest.source}/train"}
    assert all(len(b.sources) == b.batch_size for b in ranks[0])
    assert len({batch.task[0] for batch in ranks[0]}) > 1


def test_workers_take_steps_round_robin_and_epochs_continue_the_schedule(corpus: Path) -> None:
    single, workers = _module(corpus), _module(corpus, num_workers=2)
    for module in (single, workers):
        module.setup("fit")
    loader = workers.train_dataloader()
    assert loader.persistent_workers and len(loader) == STEPS
    epochs = [list(loader), list(loader)]
    schedule = single.train_dataloader().dataset.schedule
    assert [b.task[0] for e in epochs for b in e] == [schedule.type_at(k) for k in range(2 * STEPS)]
    assert [b.worker for b in epochs[1]] == [k % 2 for k in range(STEPS)]
    assert all(isinstance(b, ShardBatch) and b.batch_size == 2 for b in epochs[0])


def test_training_is_reproducible_by_seed(corpus: Path) -> None:
    def run(seed: int) -> list[ShardBatch]:
        module = _module(corpus, seed=seed)
        module.setup("fit")
        return list(module.train_dataloader())

    first, again, other = run(0), run(0), run(1)
    assert [b.keys for b in first] == [b.keys for b in again]
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.input_ids, b.input_ids) and len(a.videos) == len(b.videos)
        assert all(torch.equal(x, y) for x, y in zip(a.videos, b.videos, strict=True))
    assert [b.keys for b in first] != [b.keys for b in other]


def test_evaluation_reads_every_sample_exactly_once(corpus: Path) -> None:
    module = _module(corpus, num_workers=2, eval_batch_size=2)
    manifest, _ = load_manifest(corpus / "val")
    keys = []
    for rank in range(2):
        stream = ExactEvalStream(
            module.shards("validate"), module.sample_processor(False), module.collator(), 2, StreamConfig(0, rank, 2)
        )
        loader = module._loader(stream, persistent=False)
        for batch in loader:
            assert len(set(batch.task)) == 1
            assert batch.sources == [f"{manifest.source}/val"] * batch.batch_size
            keys += batch.keys
    assert len(keys) == len(set(keys)) == manifest.num_samples


def test_default_epoch_is_one_pass_of_the_mixture(corpus: Path) -> None:
    module = _module(corpus, steps_per_epoch=None, batch_size=4)
    manifest, _ = load_manifest(corpus / "train")
    assert module.train_steps(world_size=2) == -(-manifest.num_samples // 8)


def test_skip_counts_are_logged_as_metrics(corpus: Path) -> None:
    logged: list[tuple[dict, int]] = []
    logger = SimpleNamespace(log_metrics=lambda metrics, step: logged.append((metrics, step)))
    module = _module(corpus)
    module.trainer = SimpleNamespace(training=True, loggers=[logger], global_step=5)  # type: ignore[assignment]
    batch = next(iter(_train_stream(module, 0, 1)))
    for worker, skipped in ((0, {"corrupt_image": 2}), (1, {"corrupt_image": 1, "invalid_rle": 1}), (1, {})):
        batch.worker, batch.skipped = worker, skipped
        assert module.on_before_batch_transfer(batch, 0) is batch
    assert logged[0] == ({"data/skipped": 2.0, "data/skipped/corrupt_image": 2.0}, 5)
    assert logged[1][0] == {"data/skipped": 4.0, "data/skipped/corrupt_image": 3.0, "data/skipped/invalid_rle": 1.0}
    assert module.skipped() == {"corrupt_image": 2}


def test_missing_sources_fail_with_the_option_to_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--data.init_args.train"):
        UniPixelDataModule().setup("fit")
    with pytest.raises(FileNotFoundError, match="no shard manifest"):
        UniPixelDataModule(train=[Source(str(tmp_path))]).setup("fit")
