# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Grokfast-EMA gradient filter (Lee et al., arXiv 2405.20233)."""

from typing import Any

import torch


class GrokfastEMA:
    """Gradient filter that amplifies the slow-varying part of the gradients.

    Each call updates ema <- alpha * ema + (1 - alpha) * g, then sets g <- g + lambda * ema.

    The EMA starts at the first gradient a parameter receives, as in the authors' `gradfilter_ema`, and is
    kept in float32 whatever the gradient dtype, because increments of (1 - alpha) = 2% vanish in bfloat16.
    Call `apply_` once per optimizer step on the accumulated, unscaled gradients, before clipping, so that the
    clip bounds the update that is applied.

    Args:
        named_parameters: the `(name, parameter)` pairs to filter; names key the checkpointed EMA.
        alpha: EMA decay in [0, 1); 0.98 in the paper.
        lamb: amplification (the paper's lambda) >= 0; 2.0 in the paper.
    """

    def __init__(
        self, named_parameters: list[tuple[str, torch.Tensor]], alpha: float = 0.98, lamb: float = 2.0
    ):
        self.named_parameters = list(named_parameters)
        self.alpha = alpha
        self.lamb = lamb
        self.ema: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def apply_(self) -> None:
        """Update the EMA with the current gradients and add `lamb` times the EMA to them, in place."""
        for name, parameter in self.named_parameters:
            if parameter.grad is None:
                continue
            gradient = parameter.grad.float()
            ema = self.ema.get(name)
            if ema is None:
                ema = gradient.clone()
                self.ema[name] = ema
            else:
                ema.mul_(self.alpha).add_(gradient, alpha=1 - self.alpha)
            parameter.grad.add_(ema.to(parameter.grad.dtype), alpha=self.lamb)

    def state_dict(self) -> dict[str, Any]:
        return {"ema": dict(self.ema)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        devices = {name: parameter.device for name, parameter in self.named_parameters}
        unknown = sorted(set(state_dict["ema"]) - set(devices))
        if unknown:
            raise ValueError(f"Grokfast EMA state names parameters that are not filtered here: {unknown}.")
        self.ema = {
            name: ema.to(device=devices[name], dtype=torch.float32) for name, ema in state_dict["ema"].items()
        }
