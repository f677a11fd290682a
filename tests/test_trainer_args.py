# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
import dataclasses

import pytest
from conftest import make_training_args

from trainer_genesis import GenesisTrainingArguments


def test_defaults(tmp_path):
    args = make_training_args(str(tmp_path))
    assert args.max_grad_norm == 0.5
    assert args.layerwise_lr_decay == 0.85
    assert (args.grokfast_alpha, args.grokfast_lambda) == (0.98, 2.0)
    assert args.plateau_lr_factor == 2.0
    switches = [
        "use_muon",
        "use_grokfast",
        "use_batch_metabolism",
        "skip_nonfinite_steps",
        "use_plateau_burst",
    ]
    for name in switches:
        assert getattr(args, name), name
    # Token triage hurt held-out loss in the ablation, so it defaults off.
    assert not args.use_token_triage


def test_every_genesis_field_has_help():
    inherited = {field.name for field in dataclasses.fields(GenesisTrainingArguments.__mro__[1])}
    for field in dataclasses.fields(GenesisTrainingArguments):
        if field.name not in inherited or field.name == "max_grad_norm":
            assert "Default" in field.metadata.get("help", ""), field.name


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("muon_learning_rate", 0.0),
        ("muon_momentum", 1.0),
        ("muon_adjust_lr_fn", "spectral"),
        ("muon_weight_decay", -0.1),
        ("layerwise_lr_decay", 0.0),
        ("layerwise_lr_decay", 1.5),
        ("grokfast_alpha", 1.0),
        ("grokfast_lambda", -1.0),
        ("token_triage_min_weight", 0.0),
        ("token_triage_max_weight", 0.5),
        ("batch_metabolism_min_weight", 2.0),
        ("loss_statistics_decay", 1.0),
        ("max_consecutive_skipped_steps", 0),
        ("plateau_patience", 0),
        ("plateau_threshold", 1.0),
        ("plateau_lr_factor", 3.0),
        ("plateau_lr_factor", 1.0),
        ("plateau_burst_steps", 0),
        ("plateau_cooldown_steps", -1),
        ("plateau_loss_smoothing", 1.0),
    ],
)
def test_invalid_value_names_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        make_training_args(str(tmp_path), **{field: value})


def test_unsupported_optim_rejected(tmp_path):
    with pytest.raises(ValueError, match="optim"):
        make_training_args(str(tmp_path), optim="sgd")


def test_label_smoothing_rejected(tmp_path):
    with pytest.raises(ValueError, match="label_smoothing_factor"):
        make_training_args(str(tmp_path), label_smoothing_factor=0.1)


def test_fp16_with_step_skipping_rejected(tmp_path):
    with pytest.raises(ValueError, match="bf16"):
        make_training_args(str(tmp_path), fp16=True)
