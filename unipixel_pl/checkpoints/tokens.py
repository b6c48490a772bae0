"""Special token ids read from a tokenizer, and adding UniPixel's three tokens to a Qwen2.5 tokenizer."""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from unipixel_pl.config import MEM_TOKEN, REF_TOKEN, SEG_TOKEN, TokenIds
from unipixel_pl.tokenizer import TOKEN_ID_FIELDS

UNIPIXEL_TOKENS = (REF_TOKEN, SEG_TOKEN, MEM_TOKEN)


def token_ids_from_tokenizer(tokenizer: PreTrainedTokenizerFast) -> TokenIds:
    """The :class:`TokenIds` of ``tokenizer``: each special token must be exactly one token of the vocabulary.

    Raises:
        ValueError: naming every special token the tokenizer does not know as a single token.
    """
    ids, problems = {}, []
    for field, token in TOKEN_ID_FIELDS.items():
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            problems.append(f"{token} encodes to {encoded}")
        else:
            ids[field] = encoded[0]
    if problems:
        raise ValueError(
            f"the tokenizer lacks special token(s) UniPixel needs: {problems}; use the checkpoint's own tokenizer "
            "(a Qwen2.5-VL base tokenizer gets <|ref|>/<|seg|>/<|mem|> from add_unipixel_tokens)"
        )
    return TokenIds(**ids)


def add_unipixel_tokens(tokenizer: PreTrainedTokenizerFast) -> list[str]:
    """Add ``<|ref|>``, ``<|seg|>``, ``<|mem|>`` (in this order) as special tokens when missing.

    On the Qwen2.5 tokenizer (151,665 tokens) they become ids 151665-151667, as in the reference, which reuses
    Qwen's padded embedding rows without resizing (MODEL.md §8.5).

    Returns:
        The tokens that were added (empty when all three were there).
    """
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in UNIPIXEL_TOKENS if token not in vocabulary]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
    return missing
