# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tests for the byte-level BPE tokenizer, the vocabulary check and the per-token byte counts."""

import pytest

from trainer_genesis.tokenization import (
    EOS_TOKEN,
    PAD_TOKEN,
    check_vocab_fits,
    load_or_train_tokenizer,
    token_byte_lengths,
    train_byte_level_bpe,
)

TEXTS = ["def add(a, b):\n    return a + b\n", "class Point:\n    x: float = 0.0  # café ü\n"] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_byte_level_bpe(TEXTS, vocab_size=320)


def test_trained_tokenizer_special_tokens(tokenizer):
    assert 258 < len(tokenizer) <= 320  # a corpus this small runs out of pairs to merge
    assert tokenizer.eos_token == EOS_TOKEN
    assert tokenizer.bos_token == EOS_TOKEN
    assert tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.eos_token_id != tokenizer.pad_token_id


def test_trained_tokenizer_round_trip(tokenizer):
    text = "def unseen_名前(x):\n\treturn x ** 2\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_trained_tokenizer_saves_and_loads(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = load_or_train_tokenizer(str(tmp_path), [], 0)
    assert len(loaded) == len(tokenizer)
    assert loaded.eos_token_id == tokenizer.eos_token_id
    assert loaded("x = 1")["input_ids"] == tokenizer("x = 1")["input_ids"]


def test_vocab_size_too_small_raises():
    with pytest.raises(ValueError, match="at least 258 tokens"):
        train_byte_level_bpe(TEXTS, vocab_size=100)


def test_vocab_larger_than_config_raises(tokenizer):
    size = len(tokenizer)
    check_vocab_fits(tokenizer, size)
    with pytest.raises(
        ValueError, match=rf"has {size} tokens, more than the model's vocab_size=256.*vocab_size={size}"
    ):
        check_vocab_fits(tokenizer, 256)


def test_byte_lengths_sum_to_text_bytes(tokenizer):
    lengths = token_byte_lengths(tokenizer, 400)
    text = "class Point:\n    x: float = 0.0  # café ü 名前\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert int(lengths[ids].sum()) == len(text.encode("utf-8"))
    assert lengths[tokenizer.eos_token_id] == 0
    assert lengths[tokenizer.pad_token_id] == 0
    assert lengths[350] == 0
