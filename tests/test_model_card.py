# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tests for the model card template and the loss curve."""

import re

import pytest

from trainer_genesis.model_card import (
    MODEL_CARD_TEMPLATE,
    describe_hardware,
    format_value,
    plot_loss_curve,
    render_model_card,
    write_model_card,
)


def template_placeholders() -> set[str]:
    return set(re.findall(r"\$(\w+)", MODEL_CARD_TEMPLATE.read_text()))


def test_template_exists_with_placeholders():
    assert MODEL_CARD_TEMPLATE.is_file()
    assert {
        "eval_bits_per_byte",
        "eval_perplexity",
        "eval_cross_entropy",
        "train_runtime",
        "tokens_seen",
    } <= (template_placeholders())


def test_card_renders_every_placeholder(tmp_path):
    values = {name: f"value-of-{name}" for name in template_placeholders()}
    values["eval_bits_per_byte"] = 1.23456
    path = write_model_card(tmp_path, values)
    card = path.read_text()
    assert path.name == "README.md"
    assert card.startswith("---\nlibrary_name: transformers")
    assert "$" not in card.replace("$ ", "")
    assert "| bits per byte | 1.235 |" in card


def test_card_missing_value_raises():
    with pytest.raises(KeyError):
        render_model_card({"model_name": "x"})


def test_format_value():
    assert format_value(1234567) == "1,234,567"
    assert format_value(0.000123456) == "0.0001235"
    assert format_value(None) == "None"
    assert format_value(float("nan")) == "nan"


def test_loss_curve_png(tmp_path):
    history = [{"loss": 9.0 - step / 10, "step": step} for step in range(1, 20)]
    history.append({"eval_cross_entropy": 7.0, "step": 19})
    path = tmp_path / "curve.png"
    assert plot_loss_curve(history, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plot_loss_curve([{"train_runtime": 1.0}], tmp_path / "none.png")


def test_hardware_names_cores():
    assert "cores" in describe_hardware()
