# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Per-optimizer-step loss and weight sums, accumulated over micro-batches and reduced over processes once."""

from dataclasses import dataclass, field

import torch

from .collectives import all_reduce_


@dataclass
class StepSummary:
    """One optimizer step's statistics over all micro-batches and processes.

    Args:
        main_loss: unweighted mean main-head cross-entropy over the step's targets (0 without targets).
        num_targets: number of main-head targets in the step, over all processes.
        mtp_losses: unweighted mean cross-entropy of each MTP head over its targets.
        weight_normaliser: factor that brings the mean token weight over the main-head targets to 1.
        weight_mean: mean normalised token weight over the main-head targets (1 up to rounding).
        weight_max: largest normalised token weight.
        nonfinite_gradients: whether any process saw a NaN/Inf gradient.
    """

    main_loss: float
    num_targets: int = 0
    mtp_losses: list[float] = field(default_factory=list)
    weight_normaliser: float = 1.0
    weight_mean: float = 1.0
    weight_max: float = 1.0
    nonfinite_gradients: bool = False


class StepStatistics:
    """Sums of one process over the micro-batches of the current optimizer step.

    Args:
        num_heads: number of prediction heads, the main head plus the MTP heads.
    """

    def __init__(self, num_heads: int):
        self.num_heads = num_heads
        self.reset()

    def reset(self) -> None:
        """Forget the current step (after it finished or was skipped)."""
        # Layout: loss sum of each head, target count of each head, weight mass over the main-head targets.
        self.sums: torch.Tensor | None = None
        self.weight_max: torch.Tensor | None = None
        self.reported_loss: torch.Tensor | None = None

    @torch.no_grad()
    def add(
        self,
        head_losses: list[torch.Tensor],
        head_masks: list[torch.Tensor],
        weights: torch.Tensor | None,
        weights_normalised: bool,
    ) -> None:
        """Add one micro-batch.

        Args:
            head_losses: `(batch, seq)` unweighted per-token losses, main head first.
            head_masks: the matching target masks.
            weights: the `(batch, seq)` weights the loss used, or `None` for uniform weights.
            weights_normalised: whether `weights` already have mean 1 over this micro-batch's main-head
                targets (then they count as uniform for the step's normaliser).
        """
        device = head_losses[0].device
        loss_sums = [loss.detach().double().sum() for loss in head_losses]
        counts = [mask.sum().double() for mask in head_masks]
        main_mask = head_masks[0]
        if weights is None or weights_normalised:
            mass = counts[0]
        else:
            mass = (weights.double() * main_mask).sum()
        if weights is None:
            weight_max = torch.ones((), dtype=torch.float64, device=device)
        else:
            weight_max = torch.where(main_mask, weights, torch.zeros_like(weights)).max().double()
        sums = torch.stack([*loss_sums, *counts, mass])
        self.sums = sums if self.sums is None else self.sums + sums
        self.weight_max = (
            weight_max if self.weight_max is None else torch.maximum(self.weight_max, weight_max)
        )

    def add_reported_loss(self, loss: torch.Tensor) -> None:
        """Add the loss value `training_step` returns for a micro-batch (used to correct the logged loss)."""
        loss = loss.detach()
        self.reported_loss = loss if self.reported_loss is None else self.reported_loss + loss

    def reduce(self, nonfinite_gradients: bool, device: torch.device) -> StepSummary:
        """All-reduce the step's sums over processes and summarise them; every process must call this."""
        sums = (
            self.sums if self.sums is not None else torch.zeros(2 * self.num_heads + 1, dtype=torch.float64)
        )
        weight_max = self.weight_max if self.weight_max is not None else torch.ones((), dtype=torch.float64)
        sums = all_reduce_(sums.to(device), "sum").tolist()
        maxima = torch.stack(
            [weight_max.to(device), torch.tensor(float(nonfinite_gradients), device=device).double()]
        )
        weight_max, nonfinite = all_reduce_(maxima, "max").tolist()

        loss_sums = sums[: self.num_heads]
        counts = sums[self.num_heads : 2 * self.num_heads]
        mass = sums[-1]
        means = [total / max(count, 1.0) for total, count in zip(loss_sums, counts, strict=True)]
        normaliser = counts[0] / mass if counts[0] > 0 and mass > 0 else 1.0
        return StepSummary(
            main_loss=means[0],
            num_targets=int(counts[0]),
            mtp_losses=means[1:],
            weight_normaliser=normaliser,
            weight_mean=mass * normaliser / counts[0] if counts[0] > 0 else 1.0,
            weight_max=weight_max * normaliser,
            nonfinite_gradients=nonfinite > 0,
        )


class MetricsWindow:
    """Averages per-step metrics between two `Trainer.log` calls, under namespaced `train/...` keys."""

    def __init__(self):
        self._sums: dict[str, float] = {}
        self._maxima: dict[str, float] = {}
        self._num_steps = 0
        self._latest: dict[str, float] = {}

    def add_step(
        self, summary: StepSummary, weighted: bool, learning_rates: dict[str, float], burst: float
    ) -> None:
        """Add one optimizer step that ran.

        Args:
            summary: the step's reduced statistics.
            weighted: whether token triage or batch metabolism weighted the loss.
            learning_rates: the LR each optimizer kind used in this step, by kind ("muon", "adamw").
            burst: the plateau-burst LR factor in effect for this step.
        """
        values = {"train/loss_main": summary.main_loss}
        for index, loss in enumerate(summary.mtp_losses, start=1):
            values[f"train/loss_mtp_{index}"] = loss
        if weighted:
            values["train/token_weight_mean"] = summary.weight_mean
            self._maxima["train/token_weight_max"] = max(
                self._maxima.get("train/token_weight_max", 0.0), summary.weight_max
            )
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._num_steps += 1
        self._latest = {f"train/lr_{kind}": lr for kind, lr in learning_rates.items()}
        self._latest["train/lr_burst"] = burst

    def pop(self) -> dict[str, float]:
        """Return the averages (maxima for `*_max`) since the last call, and the latest LRs; then reset."""
        metrics: dict[str, float] = {}
        if self._num_steps > 0:
            metrics = {key: total / self._num_steps for key, total in self._sums.items()}
            metrics.update(self._maxima)
            metrics.update(self._latest)
        self._sums, self._maxima, self._num_steps = {}, {}, 0
        return metrics
