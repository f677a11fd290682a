# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tests for the bits-per-byte `evaluate` metric shipped in the package."""

import configparser
import fnmatch
import math
from pathlib import Path

import evaluate
import pytest

import trainer_genesis
from trainer_genesis.metrics import BITS_PER_BYTE_PATH


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(BITS_PER_BYTE_PATH, keep_in_memory=True)


def test_metric_loads_by_path_offline(metric, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert type(metric).__name__ == "BitsPerByte"
    assert evaluate.load(BITS_PER_BYTE_PATH, keep_in_memory=True).compute(predictions=[1.0], references=[1])


def test_metric_values(metric):
    losses = [math.log(2.0), 3 * math.log(2.0), 2.0, 0.5]
    byte_counts = [1, 2, 0, 3]
    result = metric.compute(predictions=losses, references=byte_counts)
    assert result["num_tokens"] == 4
    assert result["num_bytes"] == 6
    assert result["cross_entropy"] == pytest.approx(sum(losses) / 4)
    assert result["perplexity"] == pytest.approx(math.exp(sum(losses) / 4))
    assert result["bits_per_byte"] == pytest.approx(sum(losses) / (math.log(2.0) * 6))


def test_metric_one_bit_per_byte(metric):
    result = metric.compute(predictions=[math.log(2.0)] * 4, references=[1, 1, 1, 1])
    assert result["bits_per_byte"] == pytest.approx(1.0)


def test_metric_accumulates_batches(metric):
    metric.add_batch(predictions=[1.0, 2.0], references=[2, 2])
    metric.add_batch(predictions=[3.0], references=[4])
    result = metric.compute()
    assert result["bits_per_byte"] == pytest.approx(6.0 / (math.log(2.0) * 8))


def test_metric_without_bytes_raises(metric):
    with pytest.raises(ValueError, match="cover at least one byte"):
        metric.compute(predictions=[1.0], references=[0])


def test_metric_file_in_package_data():
    """The metric must be installed with the package, so a non-editable install can load it by path."""
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    patterns = setup["options.package_data"]["trainer_genesis"].split()
    relative = Path(BITS_PER_BYTE_PATH).relative_to(Path(trainer_genesis.__file__).parent).as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), (relative, patterns)
