"""Qwen2.5-VL's ChatML conversation format and UniPixel's label masking (``reference/DATA.md`` §2.2).

A conversation is a list of messages ``{"role": "system" | "user" | "assistant", "content": ...}`` where the
content is a string or a list of parts ``{"type": "text", "text": str}``, ``{"type": "video"}`` or
``{"type": "image"}``, rendered in the given order. Every media part becomes
``<|vision_start|><|video_pad|><|vision_end|>``: UniPixel feeds images as one-frame videos, which gives the model
the same vision features and positions as Qwen's image path (a single temporal patch has temporal position 0).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from unipixel_pl.config import IGNORE_INDEX

SYSTEM_PROMPT = "You are a helpful assistant."
ROLES = ("system", "user", "assistant")
MEDIA_TYPES = ("image", "video")
MEDIA_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"
ASSISTANT_HEADER = "assistant\n"
"""What follows ``<|im_start|>`` in an assistant turn; the turn's supervised content starts after it."""
CONTROL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|image_pad|>")
"""Tokens the template places itself; message text must not contain them."""

Message = dict[str, Any]


def apply_chat_template(messages: list[Message], add_generation_prompt: bool = False) -> str:
    """Render a conversation as ChatML; a default system turn comes first unless the first message is system.

    Raises:
        ValueError: empty conversation, unknown role, malformed content or control tokens inside text.
    """
    validate_messages(messages)
    turns = [] if messages[0]["role"] == "system" else [_turn("system", SYSTEM_PROMPT)]
    turns += [_turn(message["role"], _render_content(message["content"])) for message in messages]
    prompt = "<|im_start|>" + ASSISTANT_HEADER if add_generation_prompt else ""
    return "".join(turns) + prompt


def count_media(messages: list[Message]) -> int:
    """Number of image and video parts in the conversation (each needs one video)."""
    return sum(
        part["type"] in MEDIA_TYPES
        for message in messages
        if isinstance(message["content"], list)
        for part in message["content"]
    )


def validate_messages(messages: list[Message]) -> None:
    """Raise ``ValueError`` naming the first problem in ``messages``."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"empty conversation: messages must be a non-empty list of turns, got {messages!r}")
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} in message {index}; use one of {ROLES}")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ValueError(f"message {index} content must be a string or a list of parts, got {content!r}")
        for part in parts:
            _validate_part(part, index)


def _validate_part(part: Any, index: int) -> None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in MEDIA_TYPES:
        return
    if kind != "text" or not isinstance(part.get("text"), str):
        raise ValueError(
            f"message {index} has part {part!r}; parts are {{'type': 'text', 'text': str}}, "
            "{'type': 'video'} or {'type': 'image'}"
        )
    for token in CONTROL_TOKENS:
        if token in part["text"]:
            raise ValueError(f"message {index} text contains {token}; the template inserts it, remove it from text")


def _turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def _render_content(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(MEDIA_PLACEHOLDER if part["type"] in MEDIA_TYPES else part["text"] for part in content)


def chatml_labels(input_ids: Tensor, im_start_id: int, im_end_id: int, assistant_header: list[int]) -> Tensor:
    """LM targets: assistant content and its closing ``<|im_end|>``; everything else ``IGNORE_INDEX``.

    Matches UniPixel's ``preprocess_chatml``: per round, all tokens up to and including
    ``<|im_end|>\\n<|im_start|>assistant\\n`` are ignored, the answer and its ``<|im_end|>`` supervised, the newline
    after it belongs to the next round. A trailing generation prompt (no ``<|im_end|>``) supervises nothing. Turns
    are recognised by the header without its final newline token, which may merge with newlines opening the
    answer; as in the reference, that merged token is then ignored.

    Args:
        input_ids: ``(L,)`` token ids of the rendered (and media-expanded) conversation.
        im_start_id: id of ``<|im_start|>``.
        im_end_id: id of ``<|im_end|>``.
        assistant_header: token ids of ``"assistant\\n"`` tokenised on its own.

    Returns:
        ``(L,)`` labels.
    """
    supervised = torch.zeros_like(input_ids, dtype=torch.bool)
    ids = input_ids.tolist()
    ends = [index for index, token in enumerate(ids) if token == im_end_id]
    header_length = len(assistant_header)
    for start in (index for index, token in enumerate(ids) if token == im_start_id):
        content_start = start + 1 + header_length
        end = next((index for index in ends if index > start), None)
        if ids[start + 1 : content_start - 1] == assistant_header[:-1] and end is not None:
            supervised[content_start : end + 1] = True
    return torch.where(supervised, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
