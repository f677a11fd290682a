# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
import io
import re

import pytest
import torch
from conftest import make_tiny_model, make_training_args

from trainer_genesis import GenesisOptimizer, GenesisTrainer, check_exact_cover, layerwise_lr_factor
from trainer_genesis.optimizer import ADAMW, MUON, build_param_groups

DECAY = 0.85


def make_groups(model, use_muon=True, decay=DECAY):
    return build_param_groups(
        model,
        num_layers=model.config.num_hidden_layers,
        learning_rate=1e-3,
        muon_learning_rate=0.02 if use_muon else None,
        layerwise_lr_decay=decay,
        decay_parameter_names=[name for name, _ in model.named_parameters() if "norm" not in name],
        weight_decay=0.1,
        muon_weight_decay=0.05,
    )


def expected_factor(name: str, num_layers: int) -> float:
    block = re.match(r"model\.layers\.(\d+)\.", name)
    if block:
        return DECAY ** (num_layers - 1 - int(block.group(1)))
    if name.startswith("model.embed_tokens."):
        return DECAY ** (num_layers - 1)
    return 1.0


def test_groups_cover_every_parameter_once():
    model = make_tiny_model()
    groups = make_groups(model)
    grouped = [id(p) for group in groups for p in group["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == set(trainable)
    mtp_names = [name for group in groups for name in group["param_names"] if name.startswith("mtp_heads.")]
    assert len(mtp_names) == sum(1 for name, _ in model.named_parameters() if name.startswith("mtp_heads."))


def test_muon_holds_only_block_matrices():
    model = make_tiny_model()
    groups = make_groups(model)
    muon_names = {name for group in groups if group["optimizer"] == MUON for name in group["param_names"]}
    expected = {
        name
        for name, p in model.named_parameters()
        if p.ndim == 2 and (name.startswith("model.layers.") or name.startswith("mtp_heads."))
    }
    assert muon_names == expected
    assert "model.embed_tokens.weight" not in muon_names
    assert "lm_head.weight" not in muon_names


def test_group_lr_factors_follow_layerwise_decay():
    model = make_tiny_model(num_hidden_layers=3)
    for group in make_groups(model):
        base = 0.02 if group["optimizer"] == MUON else 1e-3
        for name in group["param_names"]:
            assert group["lr_factor"] == pytest.approx(expected_factor(name, 3)), name
        assert group["lr"] == pytest.approx(base * group["lr_factor"])


def test_layerwise_factor_values():
    assert layerwise_lr_factor("model.layers.2.mlp.up_proj.weight", 3, 0.5) == 1.0
    assert layerwise_lr_factor("model.layers.0.mlp.up_proj.weight", 3, 0.5) == 0.25
    assert layerwise_lr_factor("model.embed_tokens.weight", 3, 0.5) == 0.25
    assert layerwise_lr_factor("mtp_heads.1.mlp.up_proj.weight", 3, 0.5) == 1.0
    assert layerwise_lr_factor("lm_head.weight", 3, 0.5) == 1.0
    assert layerwise_lr_factor("model.norm.weight", 3, 0.5) == 1.0


def test_muon_off_puts_everything_in_adamw():
    model = make_tiny_model()
    groups = make_groups(model, use_muon=False)
    assert {group["optimizer"] for group in groups} == {ADAMW}


def test_weight_decay_skips_norms():
    model = make_tiny_model()
    for group in make_groups(model):
        if group["optimizer"] == ADAMW and any("norm" in name for name in group["param_names"]):
            assert group["weight_decay"] == 0.0
        if group["optimizer"] == MUON:
            assert group["weight_decay"] == 0.05


def test_tied_embedding_grouped_once():
    model = make_tiny_model(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    groups = make_groups(model)
    tied = [group for group in groups if any(p is model.lm_head.weight for p in group["params"])]
    assert len(tied) == 1
    assert tied[0]["lr_factor"] == 1.0


def test_exact_cover_reports_missing_parameter():
    model = make_tiny_model()
    groups = make_groups(model)
    groups[0]["params"] = groups[0]["params"][1:]
    missing_name = groups[0]["param_names"][0]
    with pytest.raises(ValueError, match=re.escape(missing_name)):
        check_exact_cover(model, groups)


def test_exact_cover_reports_duplicate_parameter():
    model = make_tiny_model()
    groups = make_groups(model)
    groups[1]["params"].append(groups[0]["params"][0])
    with pytest.raises(ValueError, match=re.escape(groups[0]["param_names"][0])):
        check_exact_cover(model, groups)


def test_exact_cover_rejects_1d_muon_parameter():
    model = make_tiny_model()
    groups = make_groups(model)
    muon = next(group for group in groups if group["optimizer"] == MUON)
    muon["params"].append(model.model.norm.weight)
    with pytest.raises(ValueError, match="2-D"):
        check_exact_cover(model, groups)


def build_trainer_optimizer(tmp_path) -> tuple[GenesisTrainer, GenesisOptimizer]:
    trainer = GenesisTrainer(model=make_tiny_model(), args=make_training_args(str(tmp_path)))
    return trainer, trainer.create_optimizer()


def take_step(model, optimizer):
    model.zero_grad()
    input_ids = torch.randint(0, 99, (2, 16), generator=torch.Generator().manual_seed(0))
    model(input_ids, labels=input_ids).loss.backward()
    optimizer.step()


def test_optimizer_groups_are_inner_group_dicts(tmp_path):
    _, optimizer = build_trainer_optimizer(tmp_path)
    inner_groups = [group for inner in optimizer.optimizers.values() for group in inner.param_groups]
    assert len(optimizer.param_groups) == len(inner_groups)
    for outer, inner in zip(optimizer.param_groups, inner_groups, strict=True):
        assert outer is inner
    assert set(optimizer.optimizers) == {MUON, ADAMW}


def test_scheduler_lr_reaches_inner_optimizers_after_load(tmp_path):
    trainer, optimizer = build_trainer_optimizer(tmp_path)
    take_step(trainer.model, optimizer)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    optimizer.load_state_dict(torch.load(buffer, weights_only=True))

    inner_groups = [group for inner in optimizer.optimizers.values() for group in inner.param_groups]
    for outer, inner in zip(optimizer.param_groups, inner_groups, strict=True):
        assert outer is inner
    for inner in optimizer.optimizers.values():
        assert inner.state is optimizer.state
    optimizer.param_groups[-1]["lr"] = 0.123
    assert optimizer.optimizers[MUON].param_groups[-1]["lr"] == 0.123


def test_state_dict_round_trip_keeps_momentum(tmp_path):
    trainer, optimizer = build_trainer_optimizer(tmp_path)
    take_step(trainer.model, optimizer)
    saved = optimizer.state_dict()
    assert "extra_state" in saved
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)

    fresh_trainer, fresh = build_trainer_optimizer(tmp_path)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    muon_parameter = fresh.optimizers[MUON].param_groups[0]["params"][0]
    original_parameter = optimizer.optimizers[MUON].param_groups[0]["params"][0]
    torch.testing.assert_close(
        fresh.state[muon_parameter]["momentum_buffer"], optimizer.state[original_parameter]["momentum_buffer"]
    )
    adamw_parameter = fresh.optimizers[ADAMW].param_groups[0]["params"][0]
    assert "exp_avg" in fresh.state[adamw_parameter]


def test_skip_next_step_changes_nothing(tmp_path):
    trainer, optimizer = build_trainer_optimizer(tmp_path)
    take_step(trainer.model, optimizer)
    parameters = [p.detach().clone() for p in trainer.model.parameters()]
    state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}

    optimizer.skip_next_step()
    take_step(trainer.model, optimizer)

    for before, after in zip(parameters, trainer.model.parameters(), strict=True):
        torch.testing.assert_close(before, after, rtol=0, atol=0)
    for p, s in optimizer.state.items():
        for key, value in s.items():
            torch.testing.assert_close(value, state[id(p)][key], rtol=0, atol=0)

    take_step(trainer.model, optimizer)
    changed = any(not torch.equal(b, a) for b, a in zip(parameters, trainer.model.parameters(), strict=True))
    assert changed
