"""PixelQA pass 2 (EVAL.md §4): the question asked again with the pass-1 masks as ``<|mem|>`` region prompts.

The masks of pass 1 become the mask prompts (an object empty on every frame becomes all ones), the question loses
its ``<|ref|>`` point/box prompts (``[0] <|ref|>`` -> ``[0]``), gets its options and the answer instruction, and
is encoded by the data side's encoder on the same frames, with an empty assistant turn to cut at.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from torch import Tensor

from unipixel_pl.config import REF_TOKEN
from unipixel_pl.datamodules.frames import decode_frames
from unipixel_pl.datamodules.tasks import TaskSample, memory_prefix
from unipixel_pl.datamodules.templates import MCQ_SUFFIX, mcq_question
from unipixel_pl.evaluation.targets import EvalItem, object_ids, pad_masks
from unipixel_pl.types import UniPixelBatch

if TYPE_CHECKING:
    from unipixel_pl.evaluation.context import EvalContext


def answer_question(item: EvalItem) -> str:
    """The pass-2 question: the turn's text without ``<|ref|>``, with lettered options (unless the text already
    lists them after ``Options:``) and the answer instruction."""
    text = re.sub(r"\s*" + re.escape(REF_TOKEN), "", item.turn.text).strip()
    if "\nOptions:" in text:
        return f"{text}\n{MCQ_SUFFIX}"
    return mcq_question(text, item.record.meta.options)


def answer_sample(item: EvalItem, masks: Tensor, context: EvalContext) -> UniPixelBatch:
    """The encoded pass-2 sample (a batch of one, on the CPU).

    Args:
        item: the PixelQA sample.
        masks: ``(O, T, H, W)`` bool pass-1 masks of the turn's objects on the sampled frames.
        context: the run (its encoder and collator).
    """
    refer = pad_masks(masks.transpose(0, 1).cpu().numpy())
    prefix = memory_prefix(len(item.frame_indices), refer, object_ids(item))
    media = "image" if item.record.meta.media.kind == "image" else "video"
    user = {"role": "user", "content": [{"type": media}, {"type": "text", "text": prefix + answer_question(item)}]}
    messages = [user, {"role": "assistant", "content": ""}]
    frames = decode_frames(item.record, item.frame_indices)
    task = TaskSample(item.record.meta.data_type_template, messages, refer_masks=refer)
    return context.collator([context.encoder(frames, task, item.key)])
