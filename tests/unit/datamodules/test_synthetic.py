"""The synthetic corpus: scenes, task conversations, encoding and collation into a ``UniPixelBatch``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unipixel_pl.config import IGNORE_INDEX, preset
from unipixel_pl.datamodules.scenes import make_scene, shape_mask
from unipixel_pl.datamodules.synthetic import SyntheticDataModule
from unipixel_pl.datamodules.tasks import BUILDERS, pair_visibility
from unipixel_pl.tokenizer import build_tiny_tokenizer


def test_shape_masks_have_expected_areas() -> None:
    circle = shape_mask("circle", (50, 50), 10, 100, 100)
    square = shape_mask("square", (50, 50), 10, 100, 100)
    assert abs(circle.sum() - np.pi * 100) / (np.pi * 100) < 0.05
    assert square.sum() == 20 * 20
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        shape_mask("hexagon", (50, 50), 10, 100, 100)


def test_scene_masks_are_disjoint_and_painted() -> None:
    scene = make_scene(np.random.default_rng(3), 64, 80, num_frames=3, num_objects=3)
    masks = scene.object_masks()
    assert masks.shape == (3, 3, 64, 80)
    assert masks.sum(axis=1).max() <= 1  # occlusion leaves one owner per pixel
    for obj in scene.objects:
        assert obj.masks.any(axis=(1, 2)).all()


def test_pair_visibility_pads_odd_frame_counts() -> None:
    masks = np.zeros((3, 1, 4, 4), dtype=bool)
    masks[2, 0, 1, 1] = True  # only in the last frame, which padding repeats into pair 1
    assert pair_visibility(masks).tolist() == [[False], [True]]


@pytest.mark.parametrize("task", sorted(BUILDERS))
def test_every_task_collates_into_a_consistent_batch(task: str) -> None:
    config = preset("unipixel-tiny")
    data = SyntheticDataModule(config, tasks=[task], batch_size=2, video_frames=3, image_size=64, train_samples=4)
    batch = next(iter(data.train_dataloader()))
    tokens = config.backbone.tokens
    assert batch.input_ids.shape == batch.labels.shape == batch.attention_mask.shape
    assert batch.position_ids.shape == (3, *batch.input_ids.shape)
    assert set(batch.task) == {task}
    for b in range(batch.batch_size):
        seg = int((batch.input_ids[b] == tokens.seg).sum())
        targets = batch.frame_masks[b]  # host media: original-size targets
        assert seg == (0 if targets is None else targets.shape[1])
        assert int((batch.input_ids[b] == tokens.ref).sum()) == len(batch.prompts[b])
        pad = batch.attention_mask[b] == 0
        assert (batch.labels[b][pad] == IGNORE_INDEX).all()
    video_tokens = int((batch.input_ids == tokens.video).sum())
    assert video_tokens == int(batch.video_grid_thw.prod(dim=-1).sum()) // 4


def test_samples_are_reproducible() -> None:
    data = SyntheticDataModule(tasks=["seg"], batch_size=1, image_size=64, train_samples=2)
    first = next(iter(data.train_dataloader()))
    second = next(iter(data.train_dataloader()))
    assert torch.equal(first.input_ids, second.input_ids)
    assert len(first.videos) == 1 and torch.equal(first.videos[0], second.videos[0])


def test_unknown_task_is_rejected() -> None:
    data = SyntheticDataModule(tasks=["detection"])
    with pytest.raises(ValueError, match="unknown or empty synthetic tasks"):
        data.train_dataloader()


def test_object_count_range_and_seg_answer_template() -> None:
    tokenizer = build_tiny_tokenizer()
    data = SyntheticDataModule(
        tasks=["seg"],
        batch_size=6,
        video_frames=1,
        image_size=64,
        train_samples=6,
        objects=(1, 3),
        seg_answer="It is the {name} {seg}.",
    )
    batch = next(iter(data.train_dataloader()))
    counts = []
    for b in range(batch.batch_size):
        rng = np.random.default_rng([0, b])  # the documented draw order: object count, then the scene
        counts.append(int(rng.integers(1, 4)))
        scene = make_scene(rng, 64, 64, 1, num_objects=counts[-1])
        assert np.array_equal(batch.frames[b].numpy(), scene.frames)
        answer = tokenizer.decode(batch.input_ids[b][1:][batch.labels[b][1:] != IGNORE_INDEX])
        names = [obj.name for obj in scene.objects]
        assert any(answer.startswith(f"It is the {name} <|seg|>.") for name in names), answer
    assert len(set(counts)) > 1  # the range is really drawn from


def test_object_count_draw_keeps_the_default_samples() -> None:
    default = next(iter(SyntheticDataModule(tasks=["seg"], batch_size=2, image_size=64).train_dataloader()))
    explicit = next(
        iter(SyntheticDataModule(tasks=["seg"], batch_size=2, image_size=64, objects=(2, 2)).train_dataloader())
    )
    assert torch.equal(default.input_ids, explicit.input_ids)
    with pytest.raises(ValueError, match="fewest, most"):
        SyntheticDataModule(tasks=["seg"], objects=(3, 1)).train_dataloader()
