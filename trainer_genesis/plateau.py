# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Plateau burst: multiply every LR by a power of two for a few steps when the training loss stops improving.

The trigger follows torch's `ReduceLROnPlateau` (patience, relative threshold, cooldown) but raises the LR
instead of lowering it. The scheduler rewrites LRs every step, so the factor is divided out of every group
just before the scheduler step and multiplied back in after it. Multiplying and dividing by a power of two is
exact in floating point, so the scheduled LRs and their layer-wise ratios come back unchanged after a burst.
"""

from typing import Any

from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)


class PlateauBurst:
    """State machine of plateau bursts, advanced once per optimizer step.

    Args:
        patience: steps without improvement of the smoothed loss before a burst starts.
        threshold: relative improvement that counts: smoothed < best * (1 - threshold).
        factor: LR multiplier during a burst, a power of two.
        burst_steps: length of a burst in optimizer steps.
        cooldown_steps: steps after a burst before the patience count resumes.
        smoothing: decay of the EMA of the per-step loss.
    """

    def __init__(
        self,
        patience: int = 100,
        threshold: float = 0.01,
        factor: float = 2.0,
        burst_steps: int = 20,
        cooldown_steps: int = 100,
        smoothing: float = 0.9,
    ):
        self.patience = patience
        self.threshold = threshold
        self.factor = factor
        self.burst_steps = burst_steps
        self.cooldown_steps = cooldown_steps
        self.smoothing = smoothing
        self.smoothed_loss: float | None = None
        self.best_loss: float | None = None
        self.steps_without_improvement = 0
        self.burst_steps_left = 0
        self.cooldown_steps_left = 0
        self.applied_factor = 1.0
        self.num_bursts = 0
        self._step_loss: float | None = None

    def record_loss(self, loss: float | None) -> None:
        """Record the current step's training loss (`None` for a skipped step); `end_step` consumes it."""
        self._step_loss = loss

    def remove_factor(self, param_groups: list[dict[str, Any]]) -> None:
        """Divide the applied factor out of every group's LR, between the optimizer and scheduler steps."""
        if self.applied_factor != 1.0:
            for group in param_groups:
                group["lr"] /= self.applied_factor
            self.applied_factor = 1.0

    def end_step(self, param_groups: list[dict[str, Any]]) -> None:
        """Advance the state by one optimizer step and apply the next step's factor (after the scheduler)."""
        loss, self._step_loss = self._step_loss, None
        # Steps run during a burst or its cooldown do not count toward the patience.
        counting = self.burst_steps_left == 0 and self.cooldown_steps_left == 0
        if self.burst_steps_left > 0:
            self.burst_steps_left -= 1
            if self.burst_steps_left == 0:
                self.cooldown_steps_left = self.cooldown_steps
                self.steps_without_improvement = 0
        elif self.cooldown_steps_left > 0:
            self.cooldown_steps_left -= 1

        if loss is not None:
            self._update_improvement(loss, counting)
        idle = self.burst_steps_left == 0 and self.cooldown_steps_left == 0
        if idle and self.steps_without_improvement >= self.patience:
            self.burst_steps_left = self.burst_steps
            self.steps_without_improvement = 0
            self.num_bursts += 1
            logger.info(
                f"Training loss plateaued at {self.smoothed_loss:.4f} (best {self.best_loss:.4f}): "
                f"multiplying every LR by {self.factor} for {self.burst_steps} steps."
            )

        if self.burst_steps_left > 0:
            for group in param_groups:
                group["lr"] *= self.factor
            self.applied_factor = self.factor

    def _update_improvement(self, loss: float, counting: bool) -> None:
        if self.smoothed_loss is None:
            self.smoothed_loss = loss
        else:
            self.smoothed_loss = self.smoothing * self.smoothed_loss + (1.0 - self.smoothing) * loss
        if self.best_loss is None or self.smoothed_loss < self.best_loss * (1.0 - self.threshold):
            self.best_loss = self.smoothed_loss
            self.steps_without_improvement = 0
        elif counting:
            self.steps_without_improvement += 1

    _STATE_KEYS = (
        "smoothed_loss",
        "best_loss",
        "steps_without_improvement",
        "burst_steps_left",
        "cooldown_steps_left",
        "applied_factor",
        "num_bursts",
    )

    def state_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._STATE_KEYS}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key in self._STATE_KEYS:
            setattr(self, key, state_dict[key])


class PlateauBurstCallback(TrainerCallback):
    """Drives a `PlateauBurst` around Trainer's scheduler step.

    Trainer runs `optimizer.step()`, `on_optimizer_step`, `lr_scheduler.step()`, then `on_step_end`, so the
    factor comes out before the scheduler step and goes back in after it.

    Args:
        plateau: the state machine to drive; the trainer records each step's loss into it.
    """

    def __init__(self, plateau: PlateauBurst):
        self.plateau = plateau

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.plateau.remove_factor(optimizer.param_groups)

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.plateau.end_step(optimizer.param_groups)
