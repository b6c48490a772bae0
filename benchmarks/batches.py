"""Synthetic benchmark batches at UniPixel's reference sizes, for any preset.

Samples come from the synthetic corpus (coloured shapes, ``unipixel_pl.datamodules.synthetic``) encoded with the
tiny tokenizer, whose special tokens follow ``SPECIAL_TOKENS`` from id 480 on exactly as Qwen's do from 151643 on;
the special ids are then shifted to the target preset's. Text tokens keep their tiny ids, which are valid rows of
every vocabulary: with random weights only the sequence layout matters, and that is the reference's.

Reference sizes (``reference/DATA.md`` §4.2, training budget of 8 frames): an image gets at most 2048 merged
tokens, an 8-frame clip at most 256 merged tokens per frame pair (1024 video tokens).
"""

from __future__ import annotations

import dataclasses

import torch

from unipixel_pl.config import TokenIds, UniPixelConfig
from unipixel_pl.datamodules.collate import Collator
from unipixel_pl.datamodules.encode import SampleEncoder
from unipixel_pl.datamodules.synthetic import SyntheticDataset
from unipixel_pl.processing import UniPixelProcessor
from unipixel_pl.tokenizer import TINY_VOCAB_SIZE, build_tiny_tokenizer
from unipixel_pl.types import UniPixelBatch

TRAIN_BUDGET_FRAMES = 8
INFERENCE_BUDGET_FRAMES = 16
IMAGE_SIDE = 1260
"""90 x 90 patches -> 2025 merged tokens: the largest square image within the 2048-token training budget."""
VIDEO_SIDE = 448
"""32 x 32 patches -> 256 merged tokens per frame pair; 8 frames -> 1024 video tokens."""
VIDEO_FRAMES = 8


def tiny_token_ids() -> TokenIds:
    """Special-token ids of the tiny tokenizer."""
    return TokenIds.after_vocabulary(TINY_VOCAB_SIZE)


def remap_token_ids(batch: UniPixelBatch, source: TokenIds, target: TokenIds) -> UniPixelBatch:
    """Shift special-token ids of ``input_ids`` and ``labels`` from ``source`` to ``target`` numbering.

    Both numberings must place the special tokens contiguously in ``SPECIAL_TOKENS`` order, so one offset maps
    all of them; ids below ``source.endoftext`` (regular tokens) and ``IGNORE_INDEX`` labels are kept.

    Raises:
        ValueError: ``target`` is not ``source`` shifted by one offset.
    """
    offset = target.endoftext - source.endoftext
    shifted = {name: value + offset for name, value in dataclasses.asdict(source).items()}
    if shifted != dataclasses.asdict(target):
        raise ValueError(f"token ids {dataclasses.asdict(target)} are not {dataclasses.asdict(source)} + {offset}")

    def shift(ids: torch.Tensor) -> torch.Tensor:
        return torch.where(ids >= source.endoftext, ids + offset, ids)

    labels = None if batch.labels is None else shift(batch.labels)
    return dataclasses.replace(batch, input_ids=shift(batch.input_ids), labels=labels)


def sample_encoder(config: UniPixelConfig, budget_frames: int) -> SampleEncoder:
    """Encoder with the tiny tokenizer, ``config``'s vision sizes and SAM 2 size, and the given frame budget."""
    vision = config.backbone.vision
    processor = UniPixelProcessor(
        build_tiny_tokenizer(), tiny_token_ids(), vision, config.backbone.rope_index, budget_frames=budget_frames
    )
    return SampleEncoder(processor, config.mask_decoder.image_size)


def make_batch(
    config: UniPixelConfig,
    frames: int,
    height: int,
    width: int,
    batch_size: int = 1,
    task: str = "seg",
    budget_frames: int = TRAIN_BUDGET_FRAMES,
    seed: int = 0,
) -> UniPixelBatch:
    """``batch_size`` samples of ``task`` on ``frames``-frame scenes of ``height`` x ``width`` (1 frame = image).

    Returns:
        A collated batch whose special-token ids are ``config``'s.
    """
    dataset = SyntheticDataset(
        sample_encoder(config, budget_frames),
        length=2 * batch_size,
        tasks=[task],
        block=batch_size,
        video_frames=frames,
        height=height,
        width=width,
        seed=seed,
    )
    first = batch_size if frames > 1 else 0  # the corpus alternates image and video blocks of batch_size samples
    source = tiny_token_ids()
    batch = Collator(source.endoftext)([dataset[i] for i in range(first, first + batch_size)])
    return remap_token_ids(batch, source, config.backbone.tokens)


def visual_tokens(batch: UniPixelBatch, merge_size: int = 2) -> int:
    """Merged visual tokens of the batch (what the LLM sees of its images and videos)."""
    if batch.video_grid_thw is None:
        return 0
    return int(batch.video_grid_thw.prod(dim=-1).sum()) // merge_size**2
