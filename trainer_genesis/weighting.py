# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Token triage and batch metabolism: detached loss weights from one global running mean of token loss.

Token triage weights a token by its loss over the running mean, so tokens the model still gets wrong count
more (closest published method: excess-loss token selection in Rho-1, arXiv 2404.07965, which compares against
a reference model instead). Batch metabolism weights a sequence by its mean loss over the same running mean.
The fused weights are normalised to mean 1 over the batch's valid tokens, so without clipping and with triage
off a sequence's weight is its mean loss over the batch's. Both weights are clipped, multiplied, and also
applied to the MTP heads' losses at the same positions.

The running mean changes only between optimizer steps, so a token's raw weight does not depend on how the
batch is split into gradient-accumulation micro-batches or processes. The normalisation to mean 1 needs the
whole batch, so the trainer applies it once per optimizer step by rescaling the accumulated gradients.
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

# Keeps the ratio finite once the running mean loss reaches zero.
_MIN_REFERENCE_LOSS = 1e-6


class LossStatistics:
    """Bias-corrected exponential moving average of the mean token loss, one value per optimizer step.

    Args:
        decay: EMA decay in [0, 1).
    """

    def __init__(self, decay: float = 0.99):
        self.decay = decay
        self.ema = 0.0
        self.num_updates = 0

    @property
    def mean(self) -> float | None:
        """The running mean token loss, or `None` before the first update."""
        if self.num_updates == 0:
            return None
        return self.ema / (1.0 - self.decay**self.num_updates)

    def update(self, value: float) -> None:
        """Fold one optimizer step's mean token loss into the running mean."""
        self.ema = self.decay * self.ema + (1.0 - self.decay) * value
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema, "num_updates": self.num_updates}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.ema = float(state_dict["ema"])
        self.num_updates = int(state_dict["num_updates"])


@dataclass(frozen=True)
class TokenWeightingConfig:
    """Switches and clip ranges of token triage and batch metabolism."""

    use_token_triage: bool = True
    token_min_weight: float = 0.25
    token_max_weight: float = 4.0
    use_batch_metabolism: bool = True
    sequence_min_weight: float = 0.5
    sequence_max_weight: float = 2.0

    @property
    def enabled(self) -> bool:
        return self.use_token_triage or self.use_batch_metabolism

    @classmethod
    def from_args(cls, args: Any) -> "TokenWeightingConfig":
        """Read the fields of `GenesisTrainingArguments`."""
        return cls(
            use_token_triage=args.use_token_triage,
            token_min_weight=args.token_triage_min_weight,
            token_max_weight=args.token_triage_max_weight,
            use_batch_metabolism=args.use_batch_metabolism,
            sequence_min_weight=args.batch_metabolism_min_weight,
            sequence_max_weight=args.batch_metabolism_max_weight,
        )


def shifted_target_mask(labels: torch.Tensor, shift: int) -> torch.Tensor:
    """Return the `(batch, seq)` mask of positions t with a target `labels[:, t + shift]` other than -100."""
    return F.pad(labels[:, shift:], (0, shift), value=-100) != -100


@torch.no_grad()
def compute_token_weights(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    reference_loss: float | None,
    config: TokenWeightingConfig,
) -> torch.Tensor | None:
    """Return the raw fused weight of every position, `(batch, seq)`, or `None` when both techniques are off.

    The weights are detached and not yet normalised. Before the running mean exists (the first optimizer step)
    every weight is 1. Positions without a main-head target get the token factor 1.

    Args:
        token_loss: `(batch, seq)` main-head cross-entropy, 0 where `mask` is False.
        mask: `(batch, seq)` positions with a main-head target.
        reference_loss: the running mean token loss, or `None` before the first optimizer step.
        config: switches and clip ranges.
    """
    if not config.enabled:
        return None
    weights = torch.ones_like(token_loss, dtype=torch.float32)
    if reference_loss is None:
        return weights
    token_loss = token_loss.detach().float()
    reference = max(reference_loss, _MIN_REFERENCE_LOSS)
    if config.use_token_triage:
        token_factor = (token_loss / reference).clamp(config.token_min_weight, config.token_max_weight)
        weights = torch.where(mask, token_factor, weights)
    if config.use_batch_metabolism:
        counts = mask.sum(dim=1)
        sequence_loss = (token_loss * mask).sum(dim=1) / counts.clamp(min=1)
        sequence_factor = (sequence_loss / reference).clamp(
            config.sequence_min_weight, config.sequence_max_weight
        )
        sequence_factor = torch.where(counts > 0, sequence_factor, torch.ones_like(sequence_factor))
        weights = weights * sequence_factor[:, None]
    return weights


def normalise_weights(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scale `weights` so that their mean over the positions in `mask` is 1."""
    count = mask.sum()
    mass = (weights * mask).sum()
    return weights * (count.clamp(min=1) / mass.clamp(min=torch.finfo(weights.dtype).tiny))


def weighted_causal_lm_loss(
    head_losses: list[torch.Tensor],
    head_masks: list[torch.Tensor],
    weights: torch.Tensor | None,
    mtp_loss_weight: float,
    num_items_in_batch: torch.Tensor | int | None,
) -> torch.Tensor:
    """Combine per-token losses into main CE + mtp_loss_weight * mean over MTP heads of their CE.

    With `weights=None` this computes exactly what `GenesisForCausalLM` returns as `loss`: each head's summed
    loss is divided by `num_items_in_batch` when given (the whole accumulated batch's main-head target count),
    else by the head's own target count.

    Args:
        head_losses: `(batch, seq)` per-token losses, main head first, 0 where not a target.
        head_masks: the matching target masks.
        weights: `(batch, seq)` detached weights applied to every head, or `None`.
        mtp_loss_weight: weight of the mean MTP loss.
        num_items_in_batch: main-head target count of the whole accumulated batch, or `None`.
    """
    per_head = []
    for token_loss, mask in zip(head_losses, head_masks, strict=True):
        total = (token_loss * weights).sum() if weights is not None else token_loss.sum()
        denominator = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1)
        per_head.append(total / denominator)
    loss = per_head[0]
    if len(per_head) > 1:
        loss = loss + mtp_loss_weight * torch.stack(per_head[1:]).mean()
    return loss
