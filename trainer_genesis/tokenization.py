# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tokenizers for pretraining: a Hub or local tokenizer, or a byte-level BPE trained on the training texts.

The trained tokenizer is GPT-2 style byte-level BPE (every byte is a token, so any UTF-8 text encodes
without unknown tokens) with one special token, `<|endoftext|>`, used as EOS and BOS, and a `<|pad|>`
token for batched generation.
"""

from collections.abc import Iterable

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from transformers.utils import logging

logger = logging.get_logger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def train_byte_level_bpe(
    texts: Iterable[str], vocab_size: int, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with `tokenizers` and wrap it for transformers.

    Args:
        texts: training texts; iterated once.
        vocab_size: size of the vocabulary, special tokens and the 256 byte tokens included.
        min_frequency: minimum count of a pair before it is merged.

    Returns:
        A `PreTrainedTokenizerFast` with `<|endoftext|>` as EOS and BOS and `<|pad|>` as padding token.
    """
    special_tokens = [EOS_TOKEN, PAD_TOKEN]
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(
            f"A byte-level BPE needs a vocabulary of at least {256 + len(special_tokens)} tokens "
            f"(256 bytes and {len(special_tokens)} special tokens), got vocab_size={vocab_size}."
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    logger.info("Trained a byte-level BPE tokenizer with %d tokens.", tokenizer.get_vocab_size())
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=int(1e30),
    )


def load_or_train_tokenizer(
    tokenizer_name: str | None, texts: Iterable[str], vocab_size: int
) -> PreTrainedTokenizerBase:
    """Load `tokenizer_name` (Hub id or local folder), or train a byte-level BPE on `texts` when it is `None`.

    A loaded tokenizer without a padding token gets its EOS token as padding token, and one without an EOS
    token is rejected, because training texts are joined with EOS.

    Args:
        tokenizer_name: Hub id or local path of a tokenizer, or `None` to train one.
        texts: training texts for the BPE; not read when `tokenizer_name` is given.
        vocab_size: vocabulary size of the trained BPE.

    Raises:
        ValueError: the loaded tokenizer has no EOS token.
    """
    if tokenizer_name is None:
        return train_byte_level_bpe(texts, vocab_size)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"Tokenizer {tokenizer_name!r} has no EOS token, but training texts are joined with EOS; "
            "choose a tokenizer that defines `eos_token`."
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_vocab_fits(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> None:
    """Raise `ValueError` when the tokenizer has token ids that the model's embedding cannot hold.

    Args:
        tokenizer: the tokenizer the model will be trained with.
        vocab_size: the model config's `vocab_size`.
    """
    if len(tokenizer) > vocab_size:
        raise ValueError(
            f"The tokenizer {tokenizer.name_or_path!r} has {len(tokenizer)} tokens, more than the model's "
            f"vocab_size={vocab_size}. Pass --config_overrides vocab_size={len(tokenizer)} or use a tokenizer "
            f"with at most {vocab_size} tokens."
        )


def _is_byte_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and isinstance(backend.decoder, decoders.ByteLevel)


def token_byte_lengths(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> np.ndarray:
    """Return the number of UTF-8 bytes that each token id stands for, as an int64 array of `vocab_size`.

    Special tokens and ids past the tokenizer's vocabulary count 0 bytes, because they cover no text.
    In a byte-level BPE each character of a token string stands for one byte, so the counts are exact.

    Args:
        tokenizer: the tokenizer whose ids are counted.
        vocab_size: length of the returned array (the model's `vocab_size`).
    """
    lengths = np.zeros(vocab_size, dtype=np.int64)
    special_ids = set(tokenizer.all_special_ids)
    byte_level = _is_byte_level(tokenizer)
    for token, token_id in tokenizer.get_vocab().items():
        if token_id >= vocab_size or token_id in special_ids:
            continue
        if byte_level:
            lengths[token_id] = len(token)
        else:
            # NOTE: for tokenizers that are not byte-level (SentencePiece, WordPiece) the length of the decoded
            # token is an approximation, because decoding one token may drop a leading space marker.
            lengths[token_id] = len(tokenizer.convert_tokens_to_string([token]).encode("utf-8"))
    return lengths
