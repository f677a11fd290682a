# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
import pytest
import torch

from trainer_genesis import GrokfastEMA


def test_grokfast_matches_hand_computation():
    parameter = torch.nn.Parameter(torch.zeros(2))
    grokfast = GrokfastEMA([("w", parameter)], alpha=0.5, lamb=2.0)

    parameter.grad = torch.tensor([1.0, -2.0])
    grokfast.apply_()
    # The EMA starts at the first gradient: g + 2 * g.
    torch.testing.assert_close(parameter.grad, torch.tensor([3.0, -6.0]))

    parameter.grad = torch.tensor([3.0, 0.0])
    grokfast.apply_()
    # ema = 0.5 * [1, -2] + 0.5 * [3, 0] = [2, -1], so g + 2 * ema = [7, -2].
    torch.testing.assert_close(grokfast.ema["w"], torch.tensor([2.0, -1.0]))
    torch.testing.assert_close(parameter.grad, torch.tensor([7.0, -2.0]))


def test_grokfast_matches_reference_filter_over_steps():
    parameter = torch.nn.Parameter(torch.zeros(3, 2))
    grokfast = GrokfastEMA([("w", parameter)], alpha=0.98, lamb=2.0)
    generator = torch.Generator().manual_seed(0)
    ema = None
    for _ in range(5):
        gradient = torch.randn(3, 2, generator=generator)
        ema = gradient.clone() if ema is None else ema * 0.98 + gradient * 0.02
        parameter.grad = gradient.clone()
        grokfast.apply_()
        torch.testing.assert_close(parameter.grad, gradient + 2.0 * ema)


def test_grokfast_skips_parameters_without_gradient():
    used, unused = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    grokfast = GrokfastEMA([("used", used), ("unused", unused)])
    used.grad = torch.ones(1)
    grokfast.apply_()
    assert unused.grad is None
    assert set(grokfast.ema) == {"used"}


def test_grokfast_ema_stays_float32_for_bfloat16_gradients():
    parameter = torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))
    grokfast = GrokfastEMA([("w", parameter)])
    parameter.grad = torch.ones(4, dtype=torch.bfloat16)
    grokfast.apply_()
    assert grokfast.ema["w"].dtype == torch.float32
    assert parameter.grad.dtype == torch.bfloat16


def test_grokfast_state_round_trip():
    parameter = torch.nn.Parameter(torch.zeros(2))
    grokfast = GrokfastEMA([("w", parameter)])
    parameter.grad = torch.tensor([1.0, 2.0])
    grokfast.apply_()
    restored = GrokfastEMA([("w", parameter)])
    restored.load_state_dict(grokfast.state_dict())
    torch.testing.assert_close(restored.ema["w"], grokfast.ema["w"])
    with pytest.raises(ValueError, match="other"):
        restored.load_state_dict({"ema": {"other": torch.zeros(2)}})
