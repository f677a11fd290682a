# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
import pytest
import torch
from conftest import make_tiny_model

from modeling_genesis.modeling_genesis import shifted_cross_entropy
from trainer_genesis import LossStatistics, TokenWeightingConfig
from trainer_genesis.step_statistics import StepStatistics
from trainer_genesis.weighting import (
    compute_token_weights,
    normalise_weights,
    shifted_target_mask,
    weighted_causal_lm_loss,
)

TRIAGE_ONLY = TokenWeightingConfig(use_token_triage=True, use_batch_metabolism=False)
METABOLISM_ONLY = TokenWeightingConfig(use_token_triage=False, use_batch_metabolism=True)


def test_target_mask_shifts_and_masks():
    labels = torch.tensor([[5, 6, -100, 7]])
    assert shifted_target_mask(labels, 1).tolist() == [[True, False, True, False]]
    assert shifted_target_mask(labels, 2).tolist() == [[False, True, False, False]]


def test_token_triage_weight_is_clipped_loss_ratio():
    loss = torch.tensor([[0.1, 2.0, 4.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    weights = compute_token_weights(loss, mask, reference_loss=2.0, config=TRIAGE_ONLY)
    # 0.1 / 2 clips up to 0.25; 100 / 2 is not a target, so it keeps the factor 1.
    torch.testing.assert_close(weights, torch.tensor([[0.25, 1.0, 2.0, 1.0]]))


def test_batch_metabolism_weight_per_sequence():
    loss = torch.tensor([[1.0, 3.0], [8.0, 8.0], [5.0, 0.0]])
    mask = torch.tensor([[True, True], [True, True], [False, False]])
    weights = compute_token_weights(loss, mask, reference_loss=2.0, config=METABOLISM_ONLY)
    # Sequence means 2 and 8 give 1.0 and 4 -> clipped to 2.0; a sequence without targets gets 1.
    torch.testing.assert_close(weights, torch.tensor([[1.0, 1.0], [2.0, 2.0], [1.0, 1.0]]))


def test_fused_weight_is_product():
    loss = torch.tensor([[1.0, 3.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    weights = compute_token_weights(loss, mask, reference_loss=1.0, config=TokenWeightingConfig())
    # Token factors 1 and 3, sequence factor mean(1, 3) / 1 = 2.
    torch.testing.assert_close(weights, torch.tensor([[2.0, 6.0]]))


def test_weights_uniform_before_statistics_and_none_when_off():
    loss = torch.rand(2, 4)
    mask = torch.ones(2, 4, dtype=torch.bool)
    torch.testing.assert_close(
        compute_token_weights(loss, mask, None, TokenWeightingConfig()), torch.ones(2, 4)
    )
    off = TokenWeightingConfig(use_token_triage=False, use_batch_metabolism=False)
    assert compute_token_weights(loss, mask, 1.0, off) is None


def test_weights_are_detached():
    loss = torch.rand(2, 4, requires_grad=True)
    weights = compute_token_weights(loss, torch.ones(2, 4, dtype=torch.bool), 0.5, TokenWeightingConfig())
    assert not weights.requires_grad


def test_normalised_weights_have_mean_one_over_targets():
    weights = torch.tensor([[1.0, 3.0, 50.0]])
    mask = torch.tensor([[True, True, False]])
    normalised = normalise_weights(weights, mask)
    assert normalised[mask].mean().item() == pytest.approx(1.0)


@pytest.mark.parametrize("num_items", [None, 37])
def test_unweighted_loss_equals_model_loss(num_items):
    model = make_tiny_model()
    input_ids = torch.randint(0, 99, (3, 16), generator=torch.Generator().manual_seed(0))
    labels = input_ids.clone()
    labels[0, -4:] = -100
    outputs = model(input_ids, labels=labels, num_items_in_batch=num_items)
    head_logits = [outputs.logits, *outputs.mtp_logits]
    losses = [
        shifted_cross_entropy(lg, labels, s, reduction="none") for s, lg in enumerate(head_logits, start=1)
    ]
    masks = [shifted_target_mask(labels, s) for s in range(1, len(head_logits) + 1)]
    loss = weighted_causal_lm_loss(losses, masks, None, model.config.mtp_loss_weight, num_items)
    torch.testing.assert_close(loss, outputs.loss, rtol=0, atol=0)


def test_loss_statistics_bias_corrected_mean():
    statistics = LossStatistics(decay=0.9)
    assert statistics.mean is None
    statistics.update(4.0)
    assert statistics.mean == pytest.approx(4.0)
    statistics.update(2.0)
    # (0.9 * 0.1 * 4 + 0.1 * 2) / (1 - 0.9**2)
    assert statistics.mean == pytest.approx((0.36 + 0.2) / 0.19)
    restored = LossStatistics(decay=0.9)
    restored.load_state_dict(statistics.state_dict())
    assert restored.mean == statistics.mean


def test_step_normaliser_gives_mean_one_over_micro_batches():
    statistics = StepStatistics(num_heads=1)
    mask = torch.tensor([[True, True, False]])
    for raw in (torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[2.0, 2.0, 9.0]])):
        statistics.add([torch.ones(1, 3) * mask], [mask], raw, weights_normalised=False)
    summary = statistics.reduce(nonfinite_gradients=False, device=torch.device("cpu"))
    # Raw weights over the four targets: 1, 3, 2, 2 -> mean 2.
    assert summary.weight_normaliser == pytest.approx(0.5)
    assert summary.weight_mean == pytest.approx(1.0)
    assert summary.weight_max == pytest.approx(1.5)
    assert summary.main_loss == pytest.approx(1.0)
    assert not summary.nonfinite_gradients
