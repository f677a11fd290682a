# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Model size presets and `--config_overrides` parsing for `GenesisConfig`."""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from modeling_genesis import GenesisConfig

# Each preset lists only the fields that differ from `GenesisConfig`'s defaults. `tiny` is the default of
# `scripts/pretrain.py`, sized so a run on the embedded corpus finishes in minutes on 2 CPU cores.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 256,
        "intermediate_size": 704,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "max_position_embeddings": 1024,
        # Each MTP head adds a decoder block and another 8192-way `lm_head` projection. On 2 CPU cores two
        # heads doubled the time per step, while the main-head training loss after 40 steps was the same
        # (6.786 with, 6.785 without), so the time-limited tiny preset trains without them.
        "mtp_num_heads": 0,
    },
    "small": {
        "hidden_size": 512,
        "intermediate_size": 1408,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "max_position_embeddings": 2048,
    },
    "base": {
        "hidden_size": 768,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 2048,
    },
}
DEFAULT_PRESET = "tiny"

# Fields set from the tokenizer or nested dictionaries, which a `key=value` string cannot express.
_NOT_OVERRIDABLE = frozenset({"pad_token_id", "bos_token_id", "eos_token_id", "rope_parameters"})
_NONE_STRINGS = frozenset({"none", "null"})
_BOOL_STRINGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass
class ModelArguments:
    """Model preset, config overrides and tokenizer of a pretraining run."""

    model_size: str = field(
        default=DEFAULT_PRESET,
        metadata={"help": f"Model size preset, one of {', '.join(MODEL_PRESETS)}."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated GenesisConfig fields applied over the preset, for example "
            "'num_hidden_layers=6,mtp_num_heads=0,weight_ste=identity'. 'none' sets an optional field to None."
        },
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or local path of a tokenizer. Default: train a byte-level BPE of the config's vocab_size."
        },
    )


def overridable_fields() -> dict[str, Any]:
    """Return the `GenesisConfig` fields that `--config_overrides` may set, mapped to their type annotations."""
    own_fields = GenesisConfig.__annotations__
    return {
        item.name: item.type
        for item in dataclasses.fields(GenesisConfig)
        if item.name in own_fields and item.name not in _NOT_OVERRIDABLE
    }


def _parse_value(key: str, text: str, annotation: Any) -> Any:
    """Convert `text` to the first type of `annotation` (a type or a union) that accepts it."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    lowered = text.strip().lower()
    if type(None) in options and lowered in _NONE_STRINGS:
        return None
    if bool in options:
        if lowered in _BOOL_STRINGS:
            return _BOOL_STRINGS[lowered]
        raise ValueError(f"Invalid value {text!r} for boolean config field {key!r}; use true or false.")
    for option in (int, float):
        if option in options:
            try:
                return option(text)
            except ValueError:
                continue
    if str in options:
        return text.strip()
    names = [getattr(option, "__name__", str(option)) for option in options]
    raise ValueError(f"Invalid value {text!r} for config field {key!r}; expected {' or '.join(names)}.")


def parse_config_overrides(overrides: str | None) -> dict[str, Any]:
    """Parse `key=value,key=value` into typed `GenesisConfig` keyword arguments.

    Raises:
        ValueError: an item is not `key=value`, a key is not an overridable field (the message lists the
            valid ones) or a value does not convert to the field's type.
    """
    if not overrides:
        return {}
    valid = overridable_fields()
    parsed = {}
    for item in overrides.split(","):
        if not item.strip():
            continue
        key, separator, value = item.partition("=")
        key = key.strip()
        if not separator:
            raise ValueError(f"Invalid config override {item!r}; expected key=value.")
        if key not in valid:
            raise ValueError(f"Unknown config override key {key!r}. Valid keys: {', '.join(sorted(valid))}.")
        parsed[key] = _parse_value(key, value, valid[key])
    return parsed


def build_config(
    model_size: str, config_overrides: str | None = None, **token_ids: int | None
) -> GenesisConfig:
    """Build the `GenesisConfig` of a preset with overrides applied.

    Args:
        model_size: name of a preset in `MODEL_PRESETS`.
        config_overrides: `key=value,...` string applied over the preset.
        **token_ids: `bos_token_id`, `eos_token_id` and `pad_token_id` from the tokenizer.

    Raises:
        ValueError: unknown preset or override key, or an invalid config value.
    """
    if model_size not in MODEL_PRESETS:
        raise ValueError(
            f"Unknown model size preset {model_size!r}. Valid presets: {', '.join(MODEL_PRESETS)}."
        )
    kwargs = {**MODEL_PRESETS[model_size], **parse_config_overrides(config_overrides), **token_ids}
    return GenesisConfig(**kwargs)
