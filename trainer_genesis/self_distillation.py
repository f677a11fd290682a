# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""EMA self-distillation: a KL term pulling the model towards an exponential moving average of itself.

The teacher is a frozen copy of the model whose weights follow the student's as an EMA after every
optimizer step (the mean-teacher scheme, arXiv 1703.01780). The loss adds
`weight * KL(teacher || student)` over the main head's next-token distributions at target positions.
It costs one extra forward pass without backward per micro-batch and a second copy of the weights.
"""

import copy

import torch
from torch import nn
from torch.nn import functional as F
from transformers import TrainerCallback


class EMATeacher(TrainerCallback):
    """Keep an EMA copy of a model and compute the distillation KL term against it.

    Args:
        model: the student; the teacher starts as its deep copy.
        decay: EMA decay per optimizer step, teacher <- decay * teacher + (1 - decay) * student.
        weight: factor of the KL term in the loss.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, weight: float = 0.1):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`self_distill_decay` must be in [0, 1), got {decay}.")
        self.decay = decay
        self.weight = weight
        self.teacher = copy.deepcopy(model).eval().requires_grad_(False)

    def kl_loss(self, student_logits: torch.Tensor, inputs: dict, target_mask: torch.Tensor) -> torch.Tensor:
        """Return the summed KL(teacher || student) over positions where `target_mask` is 1.

        Args:
            student_logits: `(batch, seq, vocab)` main-head logits of the student.
            inputs: the micro-batch passed to the student (`input_ids`, `attention_mask`).
            target_mask: `(batch, seq)` 1 at positions that have a next-token target.
        """
        with torch.no_grad():
            teacher_logits = self.teacher(
                input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), use_cache=False
            ).logits
        teacher_log_probs = F.log_softmax(teacher_logits.float(), dim=-1)
        student_log_probs = F.log_softmax(student_logits.float(), dim=-1)
        per_token = F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="none").sum(-1)
        return (per_token * target_mask).sum()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the teacher's parameters and buffers one EMA step towards the student's."""
        for teacher_param, param in zip(self.teacher.parameters(), model.parameters(), strict=True):
            teacher_param.lerp_(param.detach().to(teacher_param.dtype), 1.0 - self.decay)
        for teacher_buffer, buffer in zip(self.teacher.buffers(), model.buffers(), strict=True):
            teacher_buffer.copy_(buffer)
        self.teacher.config.num_loops = model.config.num_loops

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        # A skipped optimizer step left the model unchanged, and so leaves the teacher. Accelerate
        # wraps the optimizer: its `optimizer` attribute is the GenesisOptimizer.
        optimizer = getattr(optimizer, "optimizer", optimizer)
        if not getattr(optimizer, "last_step_skipped", False):
            self.update(model)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.teacher.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.teacher.load_state_dict(state)
