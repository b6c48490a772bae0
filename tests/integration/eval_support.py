"""Helpers of the benchmark-evaluation tests: tiny shard sets of chosen synthetic records and a callback that makes
the random tiny model answer with a chosen token (so generation yields masks and letters to score)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
from torch.utils.hooks import RemovableHandle

from tests.conftest import REPO_ROOT
from unipixel_pl.datamodules.synthetic_shards import synthetic_sample
from unipixel_pl.datamodules.writer import ShardSample, write_shards

IMAGE_SIZE, VIDEO_FRAMES = 48, 3


class ForceToken(L.Callback):
    """Adds a large logit to ``token_id`` during ``test``: greedy decoding then emits it at every step. SAM 2's
    mask logits also get a left-to-right ramp and a positive object score, so every mask covers about the left
    ``cover`` of each frame: predictions that overlap the targets partly, to score.

    Args:
        token_id: the token to favour (e.g. ``<|seg|>``, or an option letter).
        cover: fraction of the width the forced masks cover.
    """

    def __init__(self, token_id: int, cover: float = 0.5) -> None:
        self.token_id, self.cover = token_id, cover
        self._handles: list[RemovableHandle] = []

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def favour(_module: torch.nn.Module, _args: tuple, logits: torch.Tensor) -> torch.Tensor:
            bias = torch.zeros(logits.shape[-1], dtype=logits.dtype, device=logits.device)
            bias[self.token_id] = 1e4
            return logits + bias

        def ramp(_module: torch.nn.Module, _args: tuple, outputs: tuple) -> tuple:
            masks, ious, tokens, object_scores = outputs
            columns = torch.linspace(0, 1, masks.shape[-1], device=masks.device, dtype=masks.dtype)
            return masks * 0 + 50 * (self.cover - columns), ious, tokens, object_scores.abs() + 10

        self._handles = [
            pl_module.backbone.hf_model.lm_head.register_forward_hook(favour),
            pl_module.mask_decoder.sam2.sam_mask_decoder.register_forward_hook(ramp),
        ]

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for handle in self._handles:
            handle.remove()


def synthetic_records(indices: list[int]) -> list[ShardSample]:
    """Records ``indices`` of the synthetic test split at the test size (see ``synthetic_shards.KINDS``)."""
    return [synthetic_sample(index, "test", IMAGE_SIZE, VIDEO_FRAMES) for index in indices]


def with_meta(sample: ShardSample, **changes: object) -> ShardSample:
    """``sample`` with ``meta.json`` fields replaced."""
    return replace(sample, meta=replace(sample.meta, **changes))


def write_set(samples: list[ShardSample], directory: Path) -> Path:
    write_shards(samples, directory, "synthetic", "test", samples_per_shard=2)
    return directory


def eval_args(config: str, shards: Path, out: Path, *extra: str) -> list[str]:
    """``unipixel test`` arguments: the tiny model, ``configs/eval/{config}.yaml``, CPU, the given shards."""
    return [
        "test",
        *("--config", str(REPO_ROOT / "configs/model/unipixel-tiny.yaml")),
        *("--config", str(REPO_ROOT / f"configs/eval/{config}.yaml")),
        f"--data.init_args.test=[{{path: {shards}}}]",
        "--data.init_args.num_workers=0",
        "--data.init_args.eval_sample_frames=2",
        "--trainer.accelerator=cpu",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={out}",
        "--model.evaluation.max_new_tokens=3",
        *extra,
    ]


def force_token(token_id: int) -> list[str]:
    """CLI arguments adding the :class:`ForceToken` callback."""
    return [
        "--trainer.callbacks+=tests.integration.eval_support.ForceToken",
        f"--trainer.callbacks.token_id={token_id}",
    ]


def read_results(out: Path) -> tuple[dict, list[dict]]:
    """The run's ``results.json`` and its prediction lines (rank 0)."""
    (path,) = out.rglob("results.json")
    results = json.loads(path.read_text())
    lines = Path(results["predictions"], "rank0.jsonl").read_text().splitlines()
    return results, [json.loads(line) for line in lines]


def scalars(out: Path) -> dict[str, float]:
    """The last value of every TensorBoard scalar the run wrote."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (event_file,) = out.rglob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}
