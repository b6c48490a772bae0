"""Tokenizers: the deterministic tiny byte-level BPE of the ``unipixel-tiny`` preset, loading real ones, id checks.

The tiny tokenizer mirrors Qwen2.5's layout: a byte-level BPE with Qwen's pre-tokenizer split pattern, exactly
``TINY_VOCAB_SIZE`` regular tokens, then ``SPECIAL_TOKENS`` in order, so its ids equal
``TokenIds.after_vocabulary(TINY_VOCAB_SIZE)``. Unlike Qwen it has no NFC normaliser, so any text round-trips.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from unipixel_pl.config import MEM_TOKEN, REF_TOKEN, SEG_TOKEN, SPECIAL_TOKENS, TokenIds

TINY_VOCAB_SIZE = 480
"""Regular (BPE) tokens of the tiny tokenizer; its special tokens start at this id."""

EOS_TOKEN, PAD_TOKEN = "<|im_end|>", "<|endoftext|>"

# Qwen2's pre-tokenizer split: contractions, letter runs with one leading non-letter, single digits, punctuation
# runs, newline runs, other whitespace.
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

TOKEN_ID_FIELDS: dict[str, str] = {
    "endoftext": "<|endoftext|>",
    "im_start": "<|im_start|>",
    "im_end": "<|im_end|>",
    "vision_start": "<|vision_start|>",
    "vision_end": "<|vision_end|>",
    "image": "<|image_pad|>",
    "video": "<|video_pad|>",
    "ref": REF_TOKEN,
    "seg": SEG_TOKEN,
    "mem": MEM_TOKEN,
}
"""``TokenIds`` field -> the token text it must be the id of."""

_COLOURS = "red green blue yellow orange purple pink brown black white gray dark light bright".split()
_SHAPES = "ball square circle disk box triangle star ring cube block rectangle object shape region".split()
_PLACES = "left right top bottom middle center corner front back near far above below behind next".split()
_THINGS = (
    "person man woman child dog cat car bus bike tree house table chair cup bottle bird horse boat road sky "
    "water grass wall door window plate phone book bag hand head face shirt hat"
).split()
_VERBS = "is are was moving standing sitting holding running walking jumping looking playing stays turns".split()
_QUESTIONS = (
    "What is the {c} {s} doing?",
    "Where is the {c} {s} in this video?",
    "Please segment the {c} {s} in this image.",
    "Can you find the {s} on the {p}?",
    "Which {t} is {v} {p} of the {c} {s}?",
    "How many {c} {s}s are there?",
)
_ANSWERS = (
    "Sure, it is <|seg|>.",
    "The target is <|seg|>.",
    "It is the {c} {s} on the {p} side.",
    "The {t} {v} to the {p}.",
    "There are {n} {c} {s}s in the frame.",
)
_GENERAL = (
    "system\nYou are a helpful assistant. Here is a video with 16 frames denoted as <1> to <16>. "
    "The highlighted regions are as follows: [0]: <1>-<2> <|mem|> What is [0] <|ref|> doing with [1] <|ref|>? "
    "Please localize the relevant objects with IDs. Describe the image in detail. "
    "Answer with the option's letter from the given choices directly. "
    "The quick brown fox jumps over the lazy dog, and then it runs away into the forest; "
    "people often say that this is a simple sentence for testing. Yes, no, maybe: (A) first, (B) second, "
    "(C) third, (D) fourth. I'm sure you'll see it's there and we've done it.\n"
)


def tiny_corpus() -> list[str]:
    """The built-in English training corpus of the tiny tokenizer (deterministic, a few thousand lines)."""
    lines = [_GENERAL]
    combos = itertools.product(_COLOURS, _SHAPES, _PLACES[:6])
    for i, (colour, shape, place) in enumerate(combos):
        fields = {"c": colour, "s": shape, "p": place, "t": _THINGS[i % len(_THINGS)]}
        fields |= {"v": _VERBS[i % len(_VERBS)], "n": i % 10}
        lines.append("user\n" + _QUESTIONS[i % len(_QUESTIONS)].format(**fields))
        lines.append("assistant\n" + _ANSWERS[i % len(_ANSWERS)].format(**fields))
    lines.append(" ".join(_THINGS + _PLACES + _VERBS))
    return lines


def _train_tiny_bpe() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tokenizer.train_from_iterator(tiny_corpus(), trainer=trainer)
    if tokenizer.get_vocab_size() != TINY_VOCAB_SIZE:
        raise RuntimeError(
            f"tiny BPE reached {tokenizer.get_vocab_size()} tokens instead of {TINY_VOCAB_SIZE}; "
            "the built-in corpus is too small: add words to tiny_corpus()"
        )
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    return tokenizer


def build_tiny_tokenizer(save_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """Train the tiny tokenizer (same vocabulary and merges on every run, well under a second).

    Args:
        save_dir: if given, the tokenizer is also written there with ``save_pretrained``.

    Returns:
        A fast tokenizer with ids 0..479 regular tokens and ``SPECIAL_TOKENS`` from 480 on; eos ``<|im_end|>``,
        pad ``<|endoftext|>``.
    """
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tiny_bpe(),
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
    )
    if save_dir is not None:
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load the ``tokenizer.json`` of a saved tokenizer directory (a Qwen2.5-VL / UniPixel checkpoint, a tiny one).

    The file is used verbatim through ``PreTrainedTokenizerFast``; ``AutoTokenizer`` would also parse the
    checkpoint's ``config.json``, whose ``pixel_qwen2_5_vl`` model type transformers does not know.

    Raises:
        FileNotFoundError: ``path`` has no ``tokenizer.json``.
    """
    if not (Path(path) / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {str(path)!r}; pass a checkpoint or tokenizer directory")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def check_token_ids(tokenizer: PreTrainedTokenizerFast, token_ids: TokenIds) -> None:
    """Check that every special token of ``token_ids`` is one token of ``tokenizer`` with that exact id.

    Raises:
        ValueError: listing every mismatching token, its configured id and what the tokenizer gives.
    """
    problems = []
    for name, token in TOKEN_ID_FIELDS.items():
        expected = getattr(token_ids, name)
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if encoded != [expected]:
            problems.append(f"{token} (TokenIds.{name}={expected}) encodes to {encoded}")
    if problems:
        configured = dataclasses.asdict(token_ids)
        raise ValueError(
            "tokenizer and TokenIds disagree: "
            + "; ".join(problems)
            + f". Configured ids: {configured}. Set backbone.tokens to the tokenizer's ids "
            "(e.g. TokenIds.after_vocabulary(first_special_id)) or load the tokenizer that matches the checkpoint."
        )
