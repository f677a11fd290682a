# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Surprise memory: write a summary of surprising batches into the model's memory slots.

Every attention layer of a Genesis model with `memory_slots > 0` also attends to keys and values
projected from `model.memory`. This writer fills it: when an optimizer step's loss is more than
`threshold` standard deviations above its running mean, the mean final hidden state of the step's
highest-loss sequence is blended into the least recently written slot. It is the surprise-gated
write of Titans (arXiv 2501.00663) reduced to a slot memory written outside the gradient path.
"""

import torch
import torch.distributed as dist
from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)


class SurpriseMemoryWriter(TrainerCallback):
    """Track step losses and write `model.memory` on surprise, once per optimizer step.

    The trainer calls `record` for every micro-batch. `on_step_end` reduces what was recorded over
    the accumulation steps and all processes. Every process then writes the same slot with the same
    vector, so the memory buffers stay identical.

    Args:
        threshold: write when (loss - running mean) / running std exceeds this.
        decay: decay of the exponential running mean and variance of the step loss.
        blend: weight of the new vector when blended into a slot that was written before.
        warmup_steps: optimizer steps observed before the first write, so the statistics settle.
    """

    def __init__(
        self, threshold: float = 3.0, decay: float = 0.99, blend: float = 0.5, warmup_steps: int = 20
    ):
        self.threshold = threshold
        self.decay = decay
        self.blend = blend
        self.warmup_steps = warmup_steps
        self.loss_mean = torch.zeros((), dtype=torch.float64)
        self.loss_var = torch.zeros((), dtype=torch.float64)
        self.num_observed = torch.zeros((), dtype=torch.long)
        self.num_writes = torch.zeros((), dtype=torch.long)
        self._reset_step()

    def discard_step(self) -> None:
        """Forget what was recorded for the current optimizer step (it was skipped)."""
        self._reset_step()

    def _reset_step(self) -> None:
        self._loss_sum = 0.0
        self._token_count = 0.0
        self._best_loss = float("-inf")
        self._best_hidden = None

    @torch.no_grad()
    def record(
        self,
        sequence_loss_sum: torch.Tensor,
        sequence_tokens: torch.Tensor,
        last_hidden_state: torch.Tensor,
        mask: torch.Tensor,
    ) -> None:
        """Record one micro-batch.

        Args:
            sequence_loss_sum: `(batch,)` summed main-head token loss of each sequence.
            sequence_tokens: `(batch,)` number of target tokens of each sequence.
            last_hidden_state: `(batch, seq, hidden)` final (normed) hidden states.
            mask: `(batch, seq)` 1 where a position has a target token.
        """
        self._loss_sum += sequence_loss_sum.sum().item()
        self._token_count += sequence_tokens.sum().item()
        sequence_loss = sequence_loss_sum / sequence_tokens.clamp(min=1)
        best = int(sequence_loss.argmax())
        if sequence_tokens[best] > 0 and sequence_loss[best].item() > self._best_loss:
            weights = mask[best].to(last_hidden_state.dtype)[:, None]
            self._best_loss = sequence_loss[best].item()
            self._best_hidden = ((last_hidden_state[best] * weights).sum(0) / weights.sum()).float()

    def _reduce_over_processes(
        self, hidden_size: int, device: torch.device
    ) -> tuple[float, torch.Tensor | None]:
        """Return the step's mean token loss and the mean hidden state of its highest-loss sequence."""
        hidden = (
            self._best_hidden if self._best_hidden is not None else torch.zeros(hidden_size, device=device)
        )
        totals = torch.tensor([self._loss_sum, self._token_count], dtype=torch.float64, device=device)
        best_loss = torch.tensor([self._best_loss], dtype=torch.float64, device=device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(totals)
            losses = [torch.zeros_like(best_loss) for _ in range(dist.get_world_size())]
            hiddens = [torch.zeros_like(hidden) for _ in range(dist.get_world_size())]
            dist.all_gather(losses, best_loss)
            dist.all_gather(hiddens, hidden.to(device))
            winner = int(torch.cat(losses).argmax())
            best_loss, hidden = losses[winner], hiddens[winner]
        if totals[1] == 0 or not torch.isfinite(best_loss).all():
            return float("nan"), None
        return (totals[0] / totals[1]).item(), hidden

    @torch.no_grad()
    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or model.config.memory_slots == 0:
            self._reset_step()
            return
        trunk = model.model
        step_loss, hidden = self._reduce_over_processes(model.config.hidden_size, trunk.memory.device)
        self._reset_step()
        if hidden is None or step_loss != step_loss:  # nothing recorded, or a non-finite (skipped) step
            return
        # The variance starts at 0, so divide out the weight its first updates are missing.
        updates = max(int(self.num_observed) - 1, 1)
        std = (self.loss_var / (1 - self.decay**updates)).sqrt().clamp(min=1e-8)
        surprise = (step_loss - self.loss_mean) / std
        if self.num_observed >= self.warmup_steps and surprise > self.threshold:
            self._write(trunk, hidden, state.global_step)
            logger.info(
                f"Step {state.global_step}: loss {step_loss:.4f} is {surprise.item():.1f} std above its mean; memory written."
            )
        if self.num_observed == 0:
            self.loss_mean.fill_(step_loss)
        else:
            # Exponentially weighted mean and variance, updated in place.
            delta = step_loss - self.loss_mean
            self.loss_mean += (1 - self.decay) * delta
            self.loss_var = self.decay * (self.loss_var + (1 - self.decay) * delta**2)
        self.num_observed += 1

    def _write(self, trunk: torch.nn.Module, hidden: torch.Tensor, step: int) -> None:
        slot = int(trunk.memory_write_step.argmin())
        vector = hidden.to(trunk.memory.dtype)
        if trunk.memory_write_step[slot] > 0:
            vector = self.blend * vector + (1 - self.blend) * trunk.memory[slot]
        trunk.memory[slot] = vector
        # Trainer counts optimizer steps from 1 by `on_step_end`, so a slot never written (stamp 0)
        # is always the least recent.
        trunk.memory_write_step[slot] = max(step, 1)
        self.num_writes += 1

    def metrics(self) -> dict[str, float]:
        """Return the values to log under the `train/` namespace."""
        return {
            "train/memory_writes": float(self.num_writes),
            "train/loss_running_mean": float(self.loss_mean),
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "loss_mean": self.loss_mean.clone(),
            "loss_var": self.loss_var.clone(),
            "num_observed": self.num_observed.clone(),
            "num_writes": self.num_writes.clone(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            setattr(self, name, value.clone())
