"""3-D (temporal, height, width) mRoPE position ids of Qwen2.5-VL under the two rules of ``TRANSFORMERS5.md`` §2.

Text tokens get the same 1-D position on all three axes. A vision block of ``(g_t, g_h, g_w)`` patches becomes
``g_t * g_h/m * g_w/m`` tokens (``m`` = spatial merge size) whose positions are ``start + (t * interval, row, col)``.
The rules differ in four places (``reference`` = transformers 4.53, what the published weights saw; ``transformers``
= 5.x):

- video temporal interval: ``int(second_per_grid_t) * tokens_per_second`` vs
  ``tokens_per_second * second_per_grid_t`` (fraction kept);
- image temporal index: always 0 vs ``t`` (equal in practice: images have ``g_t = 1``);
- text after a vision block: largest position of the block + 1 vs ``start + max(g_h, g_w) / m`` (time ignored);
- padding positions: 1 vs 0.

``rope_deltas`` follow the 5.x convention under both rules: ``max position + 1 - number of attended tokens``, so
``cumsum(attention_mask) - 1 + rope_deltas`` continues a row while decoding (4.53 subtracted the padded length and
added cache positions instead; both give the same next positions).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch import Tensor

from unipixel_pl.config import RopeIndexRule

TEXT, IMAGE, VIDEO = 0, 1, 2
"""Values of ``mm_token_type_ids``."""

_PAD_POSITION = {"reference": 1, "transformers": 0}


def get_rope_index(
    input_ids: Tensor,
    mm_token_type_ids: Tensor,
    image_grid_thw: Tensor | None = None,
    video_grid_thw: Tensor | None = None,
    second_per_grid_ts: Tensor | None = None,
    attention_mask: Tensor | None = None,
    *,
    spatial_merge_size: int,
    tokens_per_second: int,
    rule: RopeIndexRule,
) -> tuple[Tensor, Tensor]:
    """Compute mRoPE position ids for a batch.

    Args:
        input_ids: ``(B, L)`` token ids (only their shape, dtype and device are used).
        mm_token_type_ids: ``(B, L)`` 0 text, 1 image pad, 2 video pad.
        image_grid_thw: ``(num_images, 3)`` ViT patch grids of the images in batch order, or None.
        video_grid_thw: ``(num_videos, 3)`` ViT patch grids of the videos in batch order, or None.
        second_per_grid_ts: ``(num_videos,)`` seconds per temporal patch; None means 1 for every video.
        attention_mask: ``(B, L)`` 1 for real tokens; padded tokens get a constant position and are skipped.
        spatial_merge_size: side of the patch merger (2 for Qwen2.5-VL).
        tokens_per_second: temporal positions per second of video (``vision_config.tokens_per_second``).
        rule: ``reference`` (transformers 4.53) or ``transformers`` (5.x), see the module docstring.

    Returns:
        ``position_ids`` ``(3, B, L)`` and ``rope_deltas`` ``(B, 1)``, both with the dtype of ``input_ids``.

    Raises:
        ValueError: mismatching shapes, a vision run whose length differs from its grid, or grids left unused.
    """
    mask = _attention_mask(input_ids, mm_token_type_ids, attention_mask)
    grids = {IMAGE: _rows(image_grid_thw), VIDEO: _rows(video_grid_thw)}
    seconds = iter(second_per_grid_ts) if second_per_grid_ts is not None else itertools.repeat(1)
    position_ids = torch.full((3, *input_ids.shape), _PAD_POSITION[rule], dtype=input_ids.dtype)
    position_ids = position_ids.to(input_ids.device)
    deltas = []
    for row in range(input_ids.shape[0]):
        types = mm_token_type_ids[row][mask[row]].tolist()
        positions = _row_positions(types, grids, seconds, spatial_merge_size, tokens_per_second, rule)
        position_ids[:, row, mask[row]] = positions.to(position_ids)
        deltas.append(int(positions.max()) + 1 - len(types))
    _check_all_used(grids)
    return position_ids, torch.tensor(deltas, dtype=input_ids.dtype, device=input_ids.device).unsqueeze(1)


def next_position_ids(rope_deltas: Tensor, attention_mask: Tensor, num_new: int = 1) -> Tensor:
    """Positions of the last ``num_new`` (text) tokens while decoding after a prompt.

    Args:
        rope_deltas: ``(B, 1)`` from ``get_rope_index`` on the prompt.
        attention_mask: ``(B, L)`` mask of the prompt plus the new tokens (left padding allowed).
        num_new: number of tokens at the end of ``attention_mask`` to place.

    Returns:
        ``(3, B, num_new)`` position ids, equal on the three axes.
    """
    positions = attention_mask.long().cumsum(-1)[:, -num_new:] - 1 + rope_deltas.to(attention_mask.device)
    return positions.unsqueeze(0).expand(3, -1, -1)


def _attention_mask(input_ids: Tensor, mm_token_type_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
    if input_ids.dim() != 2 or mm_token_type_ids.shape != input_ids.shape:
        raise ValueError(
            f"input_ids must be (B, L) and mm_token_type_ids the same shape, got {tuple(input_ids.shape)} and "
            f"{tuple(mm_token_type_ids.shape)}"
        )
    if attention_mask is None:
        return torch.ones_like(input_ids, dtype=torch.bool)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {tuple(input_ids.shape)}")
    mask = attention_mask.bool()
    if not mask.any(dim=1).all():
        raise ValueError("attention_mask has a row without any attended token; drop empty samples from the batch")
    return mask


def _rows(grid_thw: Tensor | None) -> Iterator[Tensor]:
    return iter(grid_thw if grid_thw is not None else [])


def _row_positions(
    types: list[int],
    grids: dict[int, Iterator[Tensor]],
    seconds: Iterator[Tensor | float],
    merge: int,
    tokens_per_second: int,
    rule: RopeIndexRule,
) -> Tensor:
    """``(3, len(types))`` positions of one unpadded row."""
    blocks, start = [], 0
    for modality, run in itertools.groupby(types):
        length = len(list(run))
        if modality == TEXT:
            blocks.append(torch.arange(length).expand(3, -1) + start)
            start += length
            continue
        grid = _next_grid(grids, modality)
        interval = _temporal_interval(modality, seconds, tokens_per_second, rule)
        block = _vision_positions(start, grid, merge, interval)
        if block.shape[1] != length:
            raise ValueError(
                f"a run of {length} {'image' if modality == IMAGE else 'video'} tokens does not match its grid "
                f"{grid.tolist()} ({block.shape[1]} tokens at merge size {merge}); expand each pad token to "
                "t*h*w/merge**2 tokens and keep grids in sequence order"
            )
        blocks.append(block)
        start = int(block.max()) + 1 if rule == "reference" else start + int(max(grid[1], grid[2])) // merge
    return torch.cat(blocks, dim=1)


def _next_grid(grids: dict[int, Iterator[Tensor]], modality: int) -> Tensor:
    if modality not in grids:
        raise ValueError(f"mm_token_type_ids holds {modality}; only 0 (text), 1 (image) and 2 (video) are valid")
    grid = next(grids[modality], None)
    if grid is None:
        name = "image_grid_thw" if modality == IMAGE else "video_grid_thw"
        raise ValueError(f"more {name.split('_')[0]} runs in mm_token_type_ids than rows in {name}")
    return grid


def _temporal_interval(
    modality: int, seconds: Iterator[Tensor | float], tokens_per_second: int, rule: RopeIndexRule
) -> Tensor | float:
    """Temporal position step between consecutive temporal patches (same arithmetic as each transformers)."""
    if modality == IMAGE:
        return 0 if rule == "reference" else 1
    second = next(seconds, None)
    if second is None:
        raise ValueError("second_per_grid_ts has fewer entries than there are videos")
    if rule == "reference":
        return torch.as_tensor(second).long() * tokens_per_second
    return tokens_per_second * second


def _vision_positions(start: int, grid: Tensor, merge: int, interval: Tensor | float) -> Tensor:
    """``(3, g_t * g_h/m * g_w/m)`` positions of one vision block beginning at ``start``."""
    frames, rows, cols = int(grid[0]), int(grid[1]) // merge, int(grid[2]) // merge
    temporal = (torch.arange(frames) * interval).long()
    t, h, w = torch.meshgrid(temporal, torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack([t, h, w]).reshape(3, -1) + start


def _check_all_used(grids: dict[int, Iterator[Tensor]]) -> None:
    for modality, rows in grids.items():
        if next(rows, None) is not None:
            name = "image_grid_thw" if modality == IMAGE else "video_grid_thw"
            raise ValueError(f"{name} has more rows than there are {name.split('_')[0]} runs in mm_token_type_ids")
