# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Skipping optimizer steps whose loss or gradients contain NaN/Inf, agreed by all processes."""

from collections.abc import Iterable
from typing import Any

import torch

from .collectives import any_process


@torch.no_grad()
def gradients_are_finite(parameters: Iterable[torch.Tensor]) -> bool:
    """Return whether every existing `.grad` of `parameters` is free of NaN and Inf, on this process only."""
    checks = [torch.isfinite(parameter.grad).all() for parameter in parameters if parameter.grad is not None]
    return bool(torch.stack(checks).all()) if checks else True


class NonFiniteGuard:
    """Tracks NaN/Inf losses within an optimizer step and counts the steps skipped because of them.

    A micro-batch whose loss is not finite gets no backward pass, and marks the step as poisoned on this
    process. On the last micro-batch of the step every process learns whether any process is poisoned (before
    backward, so that all of them either run the gradient all-reduce or none does).

    Args:
        max_consecutive_skips: `record_skip` raises once more steps than this were skipped in a row.
    """

    def __init__(self, max_consecutive_skips: int = 10):
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_steps = 0
        self.consecutive_skips = 0
        self.step_poisoned = False

    def observe_loss(self, loss: torch.Tensor) -> bool:
        """Record a micro-batch loss; return whether this process may run its backward pass."""
        if not bool(torch.isfinite(loss.detach()).all()):
            self.step_poisoned = True
        return not self.step_poisoned

    def any_process_poisoned(self, device: torch.device) -> bool:
        """Return on every process whether any process saw a non-finite loss in this step (a collective)."""
        return any_process(self.step_poisoned, device)

    def record_step(self) -> None:
        """Record an optimizer step that runs."""
        self.consecutive_skips = 0
        self.step_poisoned = False

    def record_skip(self, global_step: int) -> None:
        """Record a skipped optimizer step; raise a `RuntimeError` after too many in a row.

        Args:
            global_step: the index of the skipped step, for the error message.
        """
        self.skipped_steps += 1
        self.consecutive_skips += 1
        self.step_poisoned = False
        if self.consecutive_skips > self.max_consecutive_skips:
            raise RuntimeError(
                f"Stopping at optimizer step {global_step}: the last {self.consecutive_skips} steps were "
                "skipped because the loss or the gradients contained NaN or Inf values. Lower "
                "`learning_rate` or `muon_learning_rate`, check the data, or raise "
                f"`max_consecutive_skipped_steps` (now {self.max_consecutive_skips})."
            )

    def state_dict(self) -> dict[str, Any]:
        return {"skipped_steps": self.skipped_steps, "consecutive_skips": self.consecutive_skips}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped_steps = int(state_dict["skipped_steps"])
        self.consecutive_skips = int(state_dict["consecutive_skips"])
