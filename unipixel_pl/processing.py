"""UniPixel's Qwen2.5-VL processor: conversation + frames -> model inputs of one sample.

transformers' Qwen2.5-VL processor needs torchvision, so this re-implements what UniPixel runs
(``reference/DATA.md`` §1-§4): ChatML template, per-frame smart resize with the frame-count pixel budget,
patchify, ``<|video_pad|>`` expansion, ``preprocess_chatml`` labels and mRoPE position ids. Images are one-frame
videos (see ``unipixel_pl.chat_format``), so every sample uses ``pixel_values_videos`` / ``video_grid_thw`` only.

The data pipeline asks for the resized uint8 frames only (``return_pixel_values=False``) and the model turns them
into ``pixel_values_videos`` on its device (``unipixel_pl.models.pixel_pipeline``); standalone use gets the float
patch rows computed here by the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from unipixel_pl.chat_format import ASSISTANT_HEADER, Message, apply_chat_template, chatml_labels, count_media
from unipixel_pl.config import BackboneConfig, RopeIndexRule, TokenIds, VisionConfig
from unipixel_pl.rope_index import VIDEO, get_rope_index
from unipixel_pl.tokenizer import check_token_ids
from unipixel_pl.vision_patchify import (
    BUDGET_FRAMES,
    MAX_PIXELS,
    MIN_PIXELS,
    FrameInput,
    frame_pixel_budget,
    pixel_values,
    resize_video,
    to_frames,
    video_grid,
)


class UniPixelProcessor:
    """Turns a conversation and its videos/images into the tensors of one sample.

    Args:
        tokenizer: tokenizer whose special tokens have the ids of ``token_ids`` (checked here).
        token_ids: special token ids of the model.
        vision: patch, temporal patch and merge sizes and ``tokens_per_second``.
        rope_index: mRoPE rule, ``reference`` (transformers 4.53, published weights) or ``transformers`` (5.x).
        min_pixels: lower pixel budget per frame.
        max_pixels: upper pixel budget per frame of a ``budget_frames``-frame video.
        budget_frames: a video of ``n`` frames gets ``max_pixels * max(1, budget_frames // n)`` per frame
            (16 for evaluation and inference, 8 for training, 1 for a fixed budget).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerFast,
        token_ids: TokenIds,
        vision: VisionConfig,
        rope_index: RopeIndexRule = "reference",
        *,
        min_pixels: int = MIN_PIXELS,
        max_pixels: int = MAX_PIXELS,
        budget_frames: int = BUDGET_FRAMES,
    ) -> None:
        check_token_ids(tokenizer, token_ids)
        self.tokenizer = tokenizer
        self.token_ids = token_ids
        self.vision = vision
        self.rope_index = rope_index
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.budget_frames = budget_frames
        self._assistant_header = tokenizer.encode(ASSISTANT_HEADER, add_special_tokens=False)

    @classmethod
    def from_config(
        cls, tokenizer: PreTrainedTokenizerFast, backbone: BackboneConfig, **budgets: int
    ) -> UniPixelProcessor:
        """Build from a backbone config (token ids, vision sizes, rope rule); ``budgets`` as in ``__init__``."""
        return cls(tokenizer, backbone.tokens, backbone.vision, backbone.rope_index, **budgets)

    def apply_chat_template(self, messages: list[Message], add_generation_prompt: bool = False) -> str:
        """ChatML text of ``messages``, one ``<|video_pad|>`` per media part (before expansion)."""
        return apply_chat_template(messages, add_generation_prompt)

    def frame_max_pixels(self, num_frames: int) -> int:
        """Per-frame upper pixel budget for a video of ``num_frames`` frames."""
        return frame_pixel_budget(num_frames, self.max_pixels, self.budget_frames)

    def __call__(
        self,
        messages: list[Message],
        videos: Sequence[FrameInput] | None = None,
        *,
        add_generation_prompt: bool = False,
        second_per_grid_ts: float = 1.0,
        keep_trailing_newline: bool = False,
        return_pixel_values: bool = True,
    ) -> dict[str, Tensor | list[Tensor] | None]:
        """Process one sample.

        Args:
            messages: the conversation (see ``unipixel_pl.chat_format``).
            videos: one video per media part, in order: uint8 ``(T, H, W, 3)`` arrays/tensors or lists of PIL
                images; an image is one frame.
            add_generation_prompt: append ``<|im_start|>assistant\\n`` (inference).
            second_per_grid_ts: seconds per temporal patch of every video (1.0 for frame lists at 2 fps).
            keep_trailing_newline: keep the newline after the last ``<|im_end|>``; training strips it
                (``hybrid.py``), the evaluation scripts keep it. Ignored with a generation prompt.
            return_pixel_values: also compute ``pixel_values_videos`` here (float32, on the host); False leaves it
                None and the model builds it from ``videos``.

        Returns:
            ``input_ids``, ``attention_mask``, ``labels``, ``mm_token_type_ids`` ``(L,)``; ``position_ids``
            ``(3, L)``; ``videos``: per video uint8 ``(T, H', W', 3)`` frames at the smart-resize size (empty list
            without media); ``pixel_values_videos`` ``(sum g_t*g_h*g_w, 3*2*14*14)``, ``video_grid_thw``
            ``(num_videos, 3)`` and ``second_per_grid_ts`` ``(num_videos,)``, all three None without media.

        Raises:
            ValueError: bad conversation, a video count that differs from the media parts, bad frames.
        """
        text = self.apply_chat_template(messages, add_generation_prompt)
        if not (add_generation_prompt or keep_trailing_newline):
            text = text.rstrip("\n")
        resized = self._resize_videos(messages, videos)
        grids = [video_grid(v.shape[0], v.shape[1], v.shape[2], self.vision) for v in resized]
        pixels = [pixel_values(v, self.vision) for v in resized] if return_pixel_values and resized else None
        input_ids = self._expand_video_pads(self.tokenizer.encode(text, add_special_tokens=False), grids)
        ids = self.token_ids
        mm_token_type_ids = torch.where(input_ids == ids.video, VIDEO, 0)
        seconds = torch.full((len(grids),), float(second_per_grid_ts)) if grids else None
        video_grid_thw = torch.stack(grids) if grids else None
        position_ids, _ = get_rope_index(
            input_ids[None],
            mm_token_type_ids[None],
            video_grid_thw=video_grid_thw,
            second_per_grid_ts=seconds,
            spatial_merge_size=self.vision.spatial_merge_size,
            tokens_per_second=self.vision.tokens_per_second,
            rule=self.rope_index,
        )
        return {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "labels": chatml_labels(input_ids, ids.im_start, ids.im_end, self._assistant_header),
            "mm_token_type_ids": mm_token_type_ids,
            "position_ids": position_ids[:, 0],
            "videos": resized,
            "pixel_values_videos": None if pixels is None else torch.cat(pixels),
            "video_grid_thw": video_grid_thw,
            "second_per_grid_ts": seconds,
        }

    def decode(self, ids: Tensor | Sequence[int], skip_special_tokens: bool = False) -> str:
        """Text of token ids (``IGNORE_INDEX`` entries are dropped, so labels can be decoded too)."""
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return self.tokenizer.decode([i for i in values if i >= 0], skip_special_tokens=skip_special_tokens)

    def _resize_videos(self, messages: list[Message], videos: Sequence[FrameInput] | None) -> list[Tensor]:
        """Per media part its uint8 ``(T, H', W', 3)`` frames at the smart-resize size."""
        videos = list(videos) if videos is not None else []
        expected = count_media(messages)
        if len(videos) != expected:
            raise ValueError(
                f"the conversation has {expected} image/video part(s) but {len(videos)} video(s) were given; "
                "pass one frame array per media part, in order"
            )
        return [self._resize_video(video) for video in videos]

    def _resize_video(self, video: FrameInput) -> Tensor:
        frames = to_frames(video)
        budget = self.frame_max_pixels(len(frames))
        return torch.from_numpy(resize_video(frames, self.vision, self.min_pixels, budget))

    def _expand_video_pads(self, ids: list[int], grids: list[Tensor]) -> Tensor:
        """Repeat the k-th ``<|video_pad|>`` ``g_t*g_h*g_w / merge**2`` times for the k-th grid."""
        input_ids = torch.tensor(ids, dtype=torch.long)
        pads = (input_ids == self.token_ids.video).nonzero().flatten()
        if len(pads) != len(grids):
            raise ValueError(f"text has {len(pads)} <|video_pad|> tokens for {len(grids)} videos")
        repeats = torch.ones_like(input_ids)
        merge_area = self.vision.spatial_merge_size**2
        for pad, grid in zip(pads.tolist(), grids, strict=True):
            repeats[pad] = int(grid.prod()) // merge_area
        return input_ids.repeat_interleave(repeats)
