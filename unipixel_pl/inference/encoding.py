"""One checked request -> the LLM inputs of one sample (MODEL.md §7.1, DATA.md §3, §4.2, §6).

The LLM sees ``llm_frames`` (16) uniformly sampled frames, with every prompted frame forced in (it replaces the
nearest sampled frame, as the PixelQA evaluation does), under the per-frame budget ``max_pixels * ⌊16 / T⌋``
of the processor. Points and boxes are mapped to SAM 2 pixels on their LLM frame; mask prompts are pooled to the
LLM token grid and announced by the highlighted-region prefix. SAM 2 frames are not built here: the predictor
streams all frames of the media to SAM 2 after generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unipixel_pl.chat_format import Message
from unipixel_pl.datamodules.encode import SampleRecord, grid_masks
from unipixel_pl.datamodules.frames import uniform_indices
from unipixel_pl.datamodules.tasks import memory_prefix
from unipixel_pl.inference.media import Media
from unipixel_pl.inference.requests import Request, RequestError, check_request
from unipixel_pl.processing import UniPixelProcessor

TEXT_FIELDS = ("input_ids", "attention_mask", "labels", "mm_token_type_ids", "position_ids")


@dataclass
class EncodedRequest:
    """A request ready for collation.

    Attributes:
        record: the sample's tensors (no SAM 2 frames, no targets).
        llm_frames: the media frame indices the LLM sees, ascending.
        input_tokens: length of the input sequence (text and visual tokens).
    """

    record: SampleRecord
    llm_frames: list[int]
    input_tokens: int


def llm_frame_indices(num_frames: int, count: int, keep: list[int]) -> list[int]:
    """``count`` uniform frame indices of ``num_frames`` (all when fewer) that include every frame of ``keep``.

    Raises:
        RequestError: more distinct prompted frames than LLM frames.
    """
    indices = uniform_indices(num_frames, count)
    kept = sorted(set(keep))
    if len(kept) > len(indices):
        raise RequestError(
            f"visual prompts sit on {len(kept)} different frames but the LLM sees {len(indices)}; prompt fewer "
            "frames or raise the LLM frame count (--llm-frames)"
        )
    for frame in (f for f in kept if f not in indices):
        free = [i for i, value in enumerate(indices) if value not in kept]
        indices[min(free, key=lambda i: abs(indices[i] - frame))] = frame
    return sorted(indices)


def encode_request(
    processor: UniPixelProcessor,
    sam_image_size: int,
    media: Media,
    request: Request,
    llm_frames: int = 16,
    max_input_tokens: int = 16384,
) -> EncodedRequest:
    """Check ``request`` against ``media`` and build its LLM inputs.

    Raises:
        RequestError: see :func:`check_request`; also too many prompted frames, text the chat template refuses,
            frames the Qwen resize refuses, or an input longer than ``max_input_tokens``.
        MediaError: a frame cannot be decoded.
    """
    check_request(request, media)
    keep = [region.frame for region in request.regions] + [mask.frame for mask in request.masks]
    indices = llm_frame_indices(media.num_frames, llm_frames, keep)
    position = {frame: i for i, frame in enumerate(indices)}
    frames = media.read(indices)
    refer_masks = _refer_masks(request, position, frames.shape)
    text = request.prompt if refer_masks is None else _prefix(refer_masks) + request.prompt
    try:
        encoded = processor(
            _messages(text, len(indices)), videos=[frames], add_generation_prompt=True, return_pixel_values=False
        )
    except ValueError as error:  # control tokens in the text, an extreme aspect ratio
        raise RequestError(f"cannot encode the request: {error}") from error
    length = int(encoded["input_ids"].shape[0])
    _check_length(length, int((encoded["input_ids"] == processor.token_ids.video).sum()), max_input_tokens)
    grid = encoded["video_grid_thw"]
    record = SampleRecord(
        text={name: encoded[name] for name in TEXT_FIELDS},
        video=encoded["videos"][0],
        video_grid_thw=grid,
        frames=None,
        frame_size=media.frame_size,
        prompts=[r.to_visual_prompt(media.frame_size, sam_image_size, position[r.frame]) for r in request.regions],
        refer_mask=None if refer_masks is None else grid_masks(torch.from_numpy(refer_masks), grid[0]),
        frame_masks=None,
        task="inference",
        key=media.source,
    )
    return EncodedRequest(record, indices, length)


def _refer_masks(request: Request, position: dict[int, int], shape: tuple[int, ...]) -> np.ndarray | None:
    """bool ``(T_llm, O, H, W)``: each mask prompt on its LLM frame, empty elsewhere; None without masks."""
    if not request.masks:
        return None
    masks = np.zeros((shape[0], len(request.masks), *shape[1:3]), dtype=bool)
    for index, mask in enumerate(request.masks):
        masks[position[mask.frame], index] = mask.mask
    return masks


def _prefix(refer_masks: np.ndarray) -> str:
    return memory_prefix(refer_masks.shape[0], refer_masks, list(range(refer_masks.shape[1])))


def _messages(text: str, num_frames: int) -> list[Message]:
    media = "image" if num_frames == 1 else "video"
    return [{"role": "user", "content": [{"type": media}, {"type": "text", "text": text}]}]


def _check_length(length: int, visual: int, limit: int) -> None:
    if length > limit:
        raise RequestError(
            f"the input is {length} tokens ({length - visual} text, {visual} visual), more than the limit of {limit}; "
            "shorten the prompt or raise the limit (--max-input-tokens)"
        )
