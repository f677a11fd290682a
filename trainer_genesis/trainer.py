# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""`GenesisTrainer`: Trainer with Muon + AdamW, a weighted multi-token loss and per-step training guards.

Each technique (NaN/Inf skipping, Grokfast, token weighting, plateau bursts) lives in its own module; this
file wires them into Trainer's documented hooks.
"""

import math
from typing import Any

import torch
from accelerate.utils import DistributedType
from torch import nn
from transformers import Trainer
from transformers.utils import logging

from modeling_genesis.modeling_genesis import shifted_cross_entropy

from .grokfast import GrokfastEMA
from .loop_schedule import LoopScheduleCallback, parse_loop_schedule
from .nonfinite import NonFiniteGuard, gradients_are_finite
from .optimizer import ADAMW, MUON, GenesisOptimizer, create_genesis_optimizer
from .plateau import PlateauBurst, PlateauBurstCallback
from .self_distillation import EMATeacher
from .step_statistics import MetricsWindow, StepStatistics, StepSummary
from .surprise_memory import SurpriseMemoryWriter
from .training_args import GenesisTrainingArguments
from .unfreezing import ProgressiveUnfreezingCallback
from .weighting import (
    LossStatistics,
    TokenWeightingConfig,
    compute_token_weights,
    normalise_weights,
    shifted_target_mask,
    weighted_causal_lm_loss,
)

logger = logging.get_logger(__name__)


class GenesisTrainer(Trainer):
    """Trainer for Genesis ternary causal LMs; every technique is switched by `GenesisTrainingArguments`.

    Hooks overridden:
    - `create_optimizer`: a `GenesisOptimizer` (Muon for 2-D block and MTP-head matrices, AdamW for the rest,
      layer-wise LR decay) that also checkpoints the custom state below.
    - `compute_loss`: per-token cross-entropy of the main and MTP heads, weighted by token triage and batch
      metabolism (see `weighting`), normalised like Trainer's own loss (`num_items_in_batch`, processes).
    - `training_step`: forward and backward as in Trainer, plus NaN/Inf skipping agreed by all processes and,
      on the last micro-batch of each optimizer step, the weight normalisation and Grokfast on the accumulated
      gradients (before Trainer clips them).
    - `log`: adds `train/...` metrics (per-head losses, token weights, skipped steps, LRs, burst factor).
    Plateau bursts run in a `PlateauBurstCallback` around the scheduler step.

    Custom state (loss statistics, Grokfast EMA, plateau state, skip counters) is saved in the optimizer's
    state dict, so `resume_from_checkpoint` restores it with the optimizer.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, GenesisTrainingArguments):
            raise ValueError(
                "GenesisTrainer needs `args` of type GenesisTrainingArguments, got "
                f"{type(self.args).__name__}."
            )
        config = self.accelerator.unwrap_model(self.model).config
        self.num_layers: int = config.num_hidden_layers
        self.num_mtp_heads: int = getattr(config, "mtp_num_heads", 0)
        self.mtp_loss_weight: float = getattr(config, "mtp_loss_weight", 0.0)

        self.token_weighting = TokenWeightingConfig.from_args(self.args)
        self.loss_statistics = LossStatistics(self.args.loss_statistics_decay)
        self.step_statistics = StepStatistics(num_heads=1 + self.num_mtp_heads)
        self.metrics_window = MetricsWindow()
        self.nonfinite_guard = (
            NonFiniteGuard(self.args.max_consecutive_skipped_steps)
            if self.args.skip_nonfinite_steps
            else None
        )
        self.plateau = None
        if self.args.use_plateau_burst:
            self.plateau = PlateauBurst(
                patience=self.args.plateau_patience,
                threshold=self.args.plateau_threshold,
                factor=self.args.plateau_lr_factor,
                burst_steps=self.args.plateau_burst_steps,
                cooldown_steps=self.args.plateau_cooldown_steps,
                smoothing=self.args.plateau_loss_smoothing,
            )
            self.add_callback(PlateauBurstCallback(self.plateau))
        self.grokfast: GrokfastEMA | None = None
        self.genesis_optimizer: GenesisOptimizer | None = None
        self._add_depth_and_memory_callbacks(config)

        if isinstance(self.optimizer, GenesisOptimizer):
            self._attach_optimizer(self.optimizer)
        elif self.optimizer is not None and (self.args.skip_nonfinite_steps or self.args.use_grokfast):
            raise ValueError(
                "`skip_nonfinite_steps` and `use_grokfast` need a GenesisOptimizer, but `optimizers` passed "
                f"a {type(self.optimizer).__name__}: let GenesisTrainer build the optimizer, or turn both "
                "techniques off."
            )

    def _add_depth_and_memory_callbacks(self, config) -> None:
        """Add the loop schedule, surprise memory, unfreezing and self-distillation callbacks that are on."""
        stages = parse_loop_schedule(self.args.loop_schedule)
        self.loop_schedule = LoopScheduleCallback(stages) if stages else None
        self.memory_writer = None
        if getattr(config, "memory_slots", 0) > 0:
            self.memory_writer = SurpriseMemoryWriter(
                threshold=self.args.surprise_threshold,
                decay=self.args.surprise_memory_decay,
                blend=self.args.surprise_memory_blend,
                warmup_steps=self.args.surprise_memory_warmup_steps,
            )
        self.unfreezing = (
            ProgressiveUnfreezingCallback(self.args.unfreeze_fraction)
            if self.args.unfreeze_fraction > 0
            else None
        )
        self.teacher = None
        self._distill_loss_sum, self._distill_loss_count = 0.0, 0
        if self.args.self_distill_weight > 0:
            model = self.accelerator.unwrap_model(self.model)
            self.teacher = EMATeacher(model, self.args.self_distill_decay, self.args.self_distill_weight)
        for callback in (self.loop_schedule, self.memory_writer, self.unfreezing, self.teacher):
            if callback is not None:
                self.add_callback(callback)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """Build the Muon + AdamW `GenesisOptimizer` unless an optimizer exists, and return it."""
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            adamw_cls, adamw_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = create_genesis_optimizer(
                opt_model,
                self.args,
                num_layers=self.num_layers,
                decay_parameter_names=self.get_decay_parameter_names(opt_model),
                adamw_cls=adamw_cls,
                adamw_kwargs=adamw_kwargs,
            )
            self._attach_optimizer(self.optimizer)
        return self.optimizer

    def _attach_optimizer(self, optimizer: GenesisOptimizer) -> None:
        self.genesis_optimizer = optimizer
        if self.args.use_grokfast:
            named_parameters = [
                (name, parameter)
                for group in optimizer.groups_of(ADAMW)
                for name, parameter in zip(group["param_names"], group["params"], strict=True)
            ]
            self.grokfast = GrokfastEMA(named_parameters, self.args.grokfast_alpha, self.args.grokfast_lambda)
            optimizer.register_extra_state("grokfast", self.grokfast)
        optimizer.register_extra_state("loss_statistics", self.loss_statistics)
        if self.nonfinite_guard is not None:
            optimizer.register_extra_state("nonfinite_guard", self.nonfinite_guard)
        if self.plateau is not None:
            optimizer.register_extra_state("plateau", self.plateau)
        if self.memory_writer is not None:
            optimizer.register_extra_state("surprise_memory", self.memory_writer)
        if self.teacher is not None:
            optimizer.register_extra_state("self_distillation", self.teacher)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Return the weighted main + MTP cross-entropy of a training micro-batch (Trainer's loss in eval).

        Each head's weighted loss sum is divided by `num_items_in_batch` (the accumulated batch's target
        count) when given, else by the micro-batch's own count, and scaled by the number of processes as
        Trainer does. With `num_items_in_batch`, the weights are normalised later, over the whole optimizer
        step.
        """
        if not model.training:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        if "labels" not in inputs:
            raise ValueError(
                "GenesisTrainer needs `labels` in every training batch; use "
                "`DataCollatorForLanguageModeling(tokenizer, mlm=False)` or set `labels = input_ids`."
            )
        labels = inputs["labels"]
        model_inputs = {key: value for key, value in inputs.items() if key != "labels"}
        if self.num_mtp_heads > 0:
            model_inputs["return_mtp_logits"] = True
        if self.memory_writer is not None:
            model_inputs["output_hidden_states"] = True
        outputs = model(**model_inputs)

        # Head 0 is the main head (target t + 1); MTP head k (1-based) predicts t + 1 + k.
        head_logits = [outputs.logits, *(getattr(outputs, "mtp_logits", None) or ())]
        head_losses = [
            shifted_cross_entropy(logits, labels, shift, reduction="none")
            for shift, logits in enumerate(head_logits, start=1)
        ]
        head_masks = [shifted_target_mask(labels, shift) for shift in range(1, len(head_logits) + 1)]
        weights = compute_token_weights(
            head_losses[0], head_masks[0], self.loss_statistics.mean, self.token_weighting
        )
        normalised_here = weights is not None and num_items_in_batch is None
        if normalised_here:
            weights = normalise_weights(weights, head_masks[0])
        loss = weighted_causal_lm_loss(
            head_losses, head_masks, weights, self.mtp_loss_weight, num_items_in_batch
        )
        self.step_statistics.add(head_losses, head_masks, weights, weights_normalised=normalised_here)
        if self.memory_writer is not None:
            self.memory_writer.record(
                (head_losses[0] * head_masks[0]).sum(dim=1),
                head_masks[0].sum(dim=1),
                outputs.hidden_states[-1].detach(),
                head_masks[0],
            )
        if self.teacher is not None:
            loss = loss + self._self_distillation_loss(
                outputs.logits, model_inputs, head_masks[0], num_items_in_batch
            )

        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # As in Trainer.compute_loss: DDP averages gradients but the loss used the global target count.
            loss = loss * (
                self.accelerator.num_processes // self.get_tp_size()
                if self.args.n_gpu <= 1
                else self.args.n_gpu
            )
        return (loss, outputs) if return_outputs else loss

    def _self_distillation_loss(
        self,
        logits: torch.Tensor,
        model_inputs: dict[str, Any],
        target_mask: torch.Tensor,
        num_items_in_batch: torch.Tensor | int | None,
    ) -> torch.Tensor:
        """Return the weighted KL term, normalised by the same target count as the cross-entropy."""
        # NOTE: with token triage or batch metabolism on, the step's weight normalisation also scales this
        # term's gradient (by a factor near 1).
        kl_sum = self.teacher.kl_loss(logits, model_inputs, target_mask)
        count = num_items_in_batch if num_items_in_batch is not None else target_mask.sum().clamp(min=1)
        kl = kl_sum / count
        self._distill_loss_sum += float(kl.detach())
        self._distill_loss_count += 1
        return self.teacher.weight * kl

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """Run forward and backward on one micro-batch, and finish the step's gradients after the last one.

        Returns the detached loss, as Trainer's `training_step` does. A micro-batch whose loss is NaN/Inf on
        any process gets no backward pass there, and the optimizer step is skipped on every process.
        """
        last_micro_batch = self.accelerator.sync_gradients
        cp_context, inputs = self._prepare_context_parallel_inputs(model, inputs)
        with cp_context():
            model.train()
            if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
                self.optimizer.train()
            inputs = self._prepare_inputs(inputs)
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
            del inputs
            if self.args.n_gpu > 1:
                loss = loss.mean()
            if not self._loss_is_scaled_for_accumulation(num_items_in_batch):
                loss = loss / self.current_gradient_accumulation_steps

            run_backward = self._may_run_backward(loss, last_micro_batch)
            if run_backward:
                self.accelerator.backward(loss, **self._backward_kwargs())
            loss = loss.detach()
            self.step_statistics.add_reported_loss(loss)
            if last_micro_batch:
                loss = self._finish_gradient_accumulation(loss, backward_ran=run_backward)
        return loss

    def _loss_is_scaled_for_accumulation(self, num_items_in_batch: torch.Tensor | int | None) -> bool:
        # Trainer's rule: a loss divided by `num_items_in_batch` is already scaled for gradient accumulation.
        if self.loss_is_scaled_for_ga is not None:
            return self.loss_is_scaled_for_ga
        return (
            self.model_accepts_loss_kwargs and num_items_in_batch is not None
        ) or self.compute_loss_func is not None

    def _backward_kwargs(self) -> dict[str, Any]:
        # As in Trainer.training_step: DeepSpeed scales for accumulation itself unless `scale_wrt_gas=False`.
        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            return {"scale_wrt_gas": False}
        return {}

    def _may_run_backward(self, loss: torch.Tensor, last_micro_batch: bool) -> bool:
        if self.nonfinite_guard is None:
            return True
        locally_finite = self.nonfinite_guard.observe_loss(loss)
        if not last_micro_batch:
            # Without a gradient all-reduce in this backward, a local decision cannot desynchronise processes.
            return locally_finite
        return not self.nonfinite_guard.any_process_poisoned(self.args.device)

    def _finish_gradient_accumulation(self, loss: torch.Tensor, backward_ran: bool) -> torch.Tensor:
        """Skip or complete the optimizer step after its last backward; return the micro-batch loss to log."""
        if not backward_ran:
            return self._skip_optimizer_step(loss, reason="a NaN/Inf loss")
        parameters = [parameter for group in self.optimizer.param_groups for parameter in group["params"]]
        local_nonfinite = self.nonfinite_guard is not None and not gradients_are_finite(parameters)
        summary = self.step_statistics.reduce(local_nonfinite, self.args.device)
        if self.nonfinite_guard is not None and summary.nonfinite_gradients:
            return self._skip_optimizer_step(loss, reason="NaN/Inf gradients")

        if summary.weight_normaliser != 1.0:
            # The loss used raw weights, so scaling the gradients brings their mean over the targets to 1.
            # NOTE: with `average_tokens_across_devices=False` each process divides by its own target count,
            # so this one global factor brings the mean to 1 only approximately.
            gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
            torch._foreach_mul_(gradients, summary.weight_normaliser)
            # Trainer sums the returned micro-batch losses, so this correction makes it log the weighted loss.
            loss = loss + (summary.weight_normaliser - 1.0) * self.step_statistics.reported_loss
        # A step without targets, or with a NaN loss that was not skipped, gives no usable loss level.
        step_loss = (
            summary.main_loss if summary.num_targets > 0 and math.isfinite(summary.main_loss) else None
        )
        if step_loss is not None:
            self.loss_statistics.update(step_loss)
        if self.grokfast is not None:
            self.grokfast.apply_()
        if self.plateau is not None:
            self.plateau.record_loss(step_loss)
        if self.nonfinite_guard is not None:
            self.nonfinite_guard.record_step()
        self._record_step_metrics(summary)
        self.step_statistics.reset()
        return loss

    def _skip_optimizer_step(self, loss: torch.Tensor, reason: str) -> torch.Tensor:
        if self.genesis_optimizer is None:
            raise RuntimeError(
                "Skipping an optimizer step needs the GenesisOptimizer built by "
                "`GenesisTrainer.create_optimizer`; keep that method, or set `skip_nonfinite_steps=False`."
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.genesis_optimizer.skip_next_step()
        if self.memory_writer is not None:
            self.memory_writer.discard_step()
        self.step_statistics.reset()
        if self.plateau is not None:
            self.plateau.record_loss(None)
        if self.is_world_process_zero():
            logger.warning(f"Skipping optimizer step {self.state.global_step + 1} because of {reason}.")
        self.nonfinite_guard.record_skip(self.state.global_step + 1)
        return loss

    def _record_step_metrics(self, summary: StepSummary) -> None:
        learning_rates = {}
        for kind in (MUON, ADAMW):
            groups = self.genesis_optimizer.groups_of(kind) if self.genesis_optimizer is not None else []
            if groups:
                learning_rates[kind] = max(group["lr"] for group in groups)
        burst = self.plateau.applied_factor if self.plateau is not None else 1.0
        self.metrics_window.add_step(summary, self.token_weighting.enabled, learning_rates, burst)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the `train/...` metrics to training logs, then log as Trainer does."""
        if "loss" in logs:
            logs = {**logs, **self.metrics_window.pop()}
            if self.nonfinite_guard is not None:
                logs["train/skipped_steps"] = self.nonfinite_guard.skipped_steps
            for callback in (self.loop_schedule, self.memory_writer, self.unfreezing):
                if callback is not None:
                    logs.update(callback.metrics())
            if self._distill_loss_count:
                # Mean over micro-batches of the unweighted KL term, per target token.
                logs["train/loss_distill"] = self._distill_loss_sum / self._distill_loss_count
                self._distill_loss_sum, self._distill_loss_count = 0.0, 0
        super().log(logs, start_time)
