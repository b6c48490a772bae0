"""Question and answer templates (``reference/DATA.md`` §7).

Training draws a template at random, evaluation always takes the first (quirk Q8). The first entry of every list
is the reference's; the reference's full lists are not reproduced (DATA.md gives first entries and counts only),
the further entries are our own paraphrases.
"""

from __future__ import annotations

import re

import numpy as np

SEG_IMAGE_QUERY = (
    "Can you segment the {} in this image?",
    "Please segment the {} in this image.",
    "What is the {} in this image? Please respond with a segmentation mask.",
    "Could you provide a segmentation mask for the {} in this image?",
)
SEG_VIDEO_QUERY = tuple(template.replace("image", "video") for template in SEG_IMAGE_QUERY)
SEG_SENTENCE = (
    "{} Please provide the segmentation mask.",
    "{} Please respond with the segmentation mask.",
    "{} Please output the segmentation mask.",
)
SEG_EXPLANATORY = (
    "{} Please provide the segmentation mask and explain why.",
    "{} Please output the segmentation mask and explain the reason.",
)
SEG_QUESTION = (
    "{} Please answer the question and provide the segmentation mask.",
    "{} Please answer and output the segmentation mask.",
)
SEG_DESCRIPTION = (
    "Please segment the object according to the description: {}",
    "Please output the segmentation mask of the object described as: {}",
)
SEG_RESPONSES = (
    "The target is <|seg|>.",
    "The segmentation result is <|seg|>.",
    "Sure, the segmentation mask is <|seg|>.",
    "Sure, it is <|seg|>.",
    "<|seg|>.",
)
SEG_MEMORY = (
    "{} Please localize the relevant objects with IDs.",
    "{} Please find the relevant objects and give their IDs.",
)
REF_SHORT_CAPTION = (
    "Give me a short description of <|ref|>.",
    "Briefly describe <|ref|>.",
    "What is <|ref|>? Answer in a few words.",
)
REGION_DESCRIPTION = (
    "Can you provide me with a detailed description of the region in the picture marked by {}?",
    "Please describe the region marked by {} in detail.",
)
MEMORY_OPTIONS = "{}\nOptions:\n({}) {}"
"""PixelQA-style training appends the original answer as one lettered option (DATA.md §7.4)."""
MCQ_SUFFIX = "Please only give the best option."
MCQ_ANSWER = "The best option is ({})."
"""Evaluation pre-fills ``The best option is (`` (EVAL.md §2.6), so training answers in this form."""

SEG_TURN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "sentence": SEG_SENTENCE,
    "explanatory": SEG_EXPLANATORY,
    "question": SEG_QUESTION,
    "description": SEG_DESCRIPTION,
}


def choose(templates: tuple[str, ...], rng: np.random.Generator | None) -> str:
    """A random template in training (``rng`` given), the first in evaluation (``rng`` None)."""
    return templates[0] if rng is None else templates[int(rng.integers(len(templates)))]


def normalize_query(query: str) -> str:
    """Strip ``.`` and spaces, lower-case the first character, drop a leading ``the``/``an``/``a``."""
    text = query.strip().strip(".").strip()
    text = text[:1].lower() + text[1:]
    return re.sub(r"^(the|an|a)\s+", "", text)


def seg_question(turn_type: str, text: str, media: str, rng: np.random.Generator | None) -> str:
    """The user text of a segmentation turn of ``turn_type`` for ``media`` ``image`` or ``video``."""
    if turn_type == "query":
        templates = SEG_IMAGE_QUERY if media == "image" else SEG_VIDEO_QUERY
        return choose(templates, rng).format(normalize_query(text))
    if turn_type not in SEG_TURN_TEMPLATES:
        raise ValueError(
            f"unknown segmentation turn type {turn_type!r}; choose one of {['query', *SEG_TURN_TEMPLATES]}"
        )
    return choose(SEG_TURN_TEMPLATES[turn_type], rng).format(text.strip())


def seg_answer(turn_type: str, answer: str, rng: np.random.Generator | None) -> str:
    """The assistant text of a segmentation turn: a ``SEG_RESPONSES`` entry, with the explanation or answer."""
    if turn_type == "question":
        return f"{answer.strip()} <|seg|>."
    response = choose(SEG_RESPONSES, rng)
    return f"{response} {answer.strip()}" if turn_type == "explanatory" and answer.strip() else response


def mcq_question(question: str, options: list[str]) -> str:
    """A multiple-choice question: the question, lettered options and the answer-format instruction."""
    lines = [f"({chr(ord('A') + index)}) {option}" for index, option in enumerate(options)]
    return "\n".join([question.strip(), "Options:", *lines, MCQ_SUFFIX])
