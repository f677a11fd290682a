# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Cross-entropy, perplexity and bits per byte of a language model from per-token losses."""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Language-model quality from per-token cross-entropy. Each prediction is the cross-entropy in nats of one
target token, and each reference is the number of UTF-8 bytes of the text that token covers (0 for special
tokens such as EOS, whose loss still counts). The metric returns
- `cross_entropy`: mean loss per token in nats,
- `perplexity`: exp(cross_entropy),
- `bits_per_byte`: sum of losses / (ln 2 x sum of bytes), which compares models with different tokenizers.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[float]`): cross-entropy in nats of each target token.
    references (`list[int]`): UTF-8 bytes covered by each target token.
Returns:
    `cross_entropy`, `perplexity`, `bits_per_byte`, and `num_tokens` and `num_bytes`, the counts they rest on.
Examples:
    >>> metric = evaluate.load("trainer_genesis/metrics/bits_per_byte.py")
    >>> metric.compute(predictions=[math.log(2.0)] * 4, references=[1, 1, 1, 1])["bits_per_byte"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BitsPerByte(evaluate.Metric):
    """Bits per byte, cross-entropy and perplexity over target tokens."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions: list[float], references: list[int]) -> dict[str, float]:
        losses = np.asarray(predictions, dtype=np.float64)
        num_bytes = int(np.asarray(references, dtype=np.int64).sum())
        if losses.size == 0:
            raise ValueError("bits_per_byte needs at least one target token, got none.")
        if num_bytes <= 0:
            raise ValueError(
                f"bits_per_byte needs the target tokens to cover at least one byte, got {num_bytes}."
            )
        total = float(losses.sum())
        cross_entropy = total / losses.size
        return {
            "cross_entropy": cross_entropy,
            "perplexity": math.exp(min(cross_entropy, 700.0)),
            "bits_per_byte": total / (math.log(2.0) * num_bytes),
            "num_tokens": int(losses.size),
            "num_bytes": num_bytes,
        }
