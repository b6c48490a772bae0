"""The tiny byte-level BPE tokenizer, loading saved tokenizers and the special-token id check."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from unipixel_pl.config import SPECIAL_TOKENS, TokenIds
from unipixel_pl.tokenizer import TINY_VOCAB_SIZE, build_tiny_tokenizer, check_token_ids, load_tokenizer

FIXTURE_CHECKPOINT = Path(__file__).parents[2] / ".." / "shared" / "fixtures" / "reference-tiny" / "checkpoint"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def test_regular_vocabulary_then_special_tokens_in_order(tokenizer):
    vocab = tokenizer.get_vocab()
    assert len(vocab) == TINY_VOCAB_SIZE + len(SPECIAL_TOKENS) == 505
    regular = {token: index for token, index in vocab.items() if token not in SPECIAL_TOKENS}
    assert sorted(regular.values()) == list(range(TINY_VOCAB_SIZE))
    assert [vocab[token] for token in SPECIAL_TOKENS] == list(range(480, 505))
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == 482
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id == 480


def test_special_token_ids_equal_after_vocabulary(tokenizer):
    check_token_ids(tokenizer, TokenIds.after_vocabulary(480))


def test_wrong_token_ids_raise_naming_each_mismatch(tokenizer):
    wrong = dataclasses.replace(TokenIds.after_vocabulary(480), ref=123, video=7)
    with pytest.raises(ValueError, match=r"<\|ref\|> \(TokenIds.ref=123\) encodes to \[502\]") as error:
        check_token_ids(tokenizer, wrong)
    assert "<|video_pad|> (TokenIds.video=7) encodes to [493]" in str(error.value)
    assert "<|seg|>" not in str(error.value).split(". Configured")[0]
    with pytest.raises(ValueError, match="TokenIds.ref=151665"):
        check_token_ids(tokenizer, TokenIds())


def test_two_builds_are_identical():
    first, second = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    assert first.get_vocab() == second.get_vocab()


def test_build_is_fast():
    start = time.perf_counter()
    build_tiny_tokenizer()
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "text",
    [
        "Please segment the red ball in this image.",
        "  leading and trailing spaces  \n\n\ttabs\r\n",
        "unicode: wörld, naïve café, 日本語, emoji 🚀🎉, decomposed e\u0301",
        "specials <|seg|> inside <|ref|><|mem|> text<|im_end|>",
        "",
    ],
)
def test_round_trip(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_special_tokens_are_single_tokens_inside_text(tokenizer):
    ids = tokenizer.encode("it is<|seg|>.", add_special_tokens=False)
    assert ids.count(503) == 1 and tokenizer.decode(ids[ids.index(503) :]) == "<|seg|>."


def test_common_words_are_single_tokens(tokenizer):
    assert tokenizer.tokenize("assistant") == ["assistant"]
    assert len(tokenizer.tokenize("Please segment the red ball")) == 5


def test_save_and_load(tokenizer, tmp_path):
    build_tiny_tokenizer(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    text = "What is the blue square doing? <|seg|>\n"
    assert loaded.encode(text) == tokenizer.encode(text)
    assert (loaded.eos_token, loaded.pad_token) == ("<|im_end|>", "<|endoftext|>")
    check_token_ids(loaded, TokenIds.after_vocabulary(480))


def test_load_without_tokenizer_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


@pytest.mark.skipif(not FIXTURE_CHECKPOINT.is_dir(), reason="shared reference-tiny fixture not available")
def test_fixture_checkpoint_tokenizer_matches_its_config():
    config = json.loads((FIXTURE_CHECKPOINT / "config.json").read_text())
    token_ids = TokenIds(
        endoftext=config["bos_token_id"],
        im_start=config["bos_token_id"] + 1,  # not in config.json; Qwen puts it right after <|endoftext|>
        im_end=config["eos_token_id"],
        vision_start=config["vision_start_token_id"],
        vision_end=config["vision_end_token_id"],
        image=config["image_token_id"],
        video=config["video_token_id"],
        ref=config["ref_token_id"],
        seg=config["seg_token_id"],
        mem=config["mem_token_id"],
    )
    tokenizer = load_tokenizer(FIXTURE_CHECKPOINT)
    check_token_ids(tokenizer, token_ids)
    assert token_ids == TokenIds.after_vocabulary(380)
    with pytest.raises(ValueError, match="TokenIds.ref"):
        check_token_ids(tokenizer, dataclasses.replace(token_ids, ref=403))
