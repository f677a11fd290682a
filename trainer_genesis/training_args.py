# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Training arguments of `GenesisTrainer`: one switch and its knobs per training technique."""

import math
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .loop_schedule import parse_loop_schedule

MUON_ADJUST_LR_CHOICES = ("original", "match_rms_adamw")
# AdamW variants that `Trainer.get_optimizer_cls_and_kwargs` builds from `torch.optim.AdamW`.
SUPPORTED_ADAMW_OPTIMS = ("adamw_torch", "adamw_torch_fused")


@dataclass
class GenesisTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus one field per Genesis training technique.

    Every technique has a `use_*` (or `skip_*`) switch so an ablation can turn it off alone. With
    `use_muon`, `use_grokfast`, `use_token_triage`, `use_batch_metabolism`, `skip_nonfinite_steps` and
    `use_plateau_burst` all `False` and `layerwise_lr_decay=1.0`, `GenesisTrainer` trains like a plain
    `Trainer` with AdamW.
    """

    max_grad_norm: float = field(
        default=0.5,
        metadata={
            "help": "Maximum global gradient norm for clipping; 0 disables clipping. Default 0.5 (Trainer's "
            "default is 1.0): ternary training is prone to gradient spikes."
        },
    )

    # Muon (orthogonalised momentum) for the 2-D weight matrices of decoder blocks and MTP heads.
    use_muon: bool = field(
        default=True,
        metadata={
            "help": "Default True. Update the 2-D weight matrices inside decoder blocks and MTP heads with "
            "torch.optim.Muon (orthogonalised momentum, arXiv 2502.16982) and everything else with AdamW. "
            "False puts every parameter in AdamW."
        },
    )
    muon_learning_rate: float = field(
        default=0.02,
        metadata={
            "help": "Default 0.02. Peak learning rate of the Muon groups; the LR scheduler and layer-wise "
            "decay scale it like `learning_rate`. 0.02 is the default of the reference Muon code "
            "(KellerJordan/Muon), whose per-matrix LR scaling is `muon_adjust_lr_fn='original'`."
        },
    )
    muon_momentum: float = field(
        default=0.95, metadata={"help": "Default 0.95. Momentum coefficient of Muon, in [0, 1)."}
    )
    muon_nesterov: bool = field(
        default=True, metadata={"help": "Default True. Use Nesterov momentum in Muon."}
    )
    muon_adjust_lr_fn: str = field(
        default="original",
        metadata={
            "help": "Default 'original'. How torch.optim.Muon scales the LR per matrix of shape (A, B): "
            "'original' multiplies by sqrt(max(1, A/B)); 'match_rms_adamw' by 0.2 * sqrt(max(A, B)), which "
            "makes the update RMS match AdamW's so Muon can share AdamW's LR (arXiv 2502.16982)."
        },
    )
    muon_weight_decay: float | None = field(
        default=None,
        metadata={
            "help": "Default None (use `weight_decay`). Decoupled weight decay of the Muon groups; Muon "
            "multiplies the weights by (1 - lr * weight_decay) each step."
        },
    )

    # Layer-wise LR decay.
    layerwise_lr_decay: float = field(
        default=0.85,
        metadata={
            "help": "Default 0.85; 1.0 turns it off. Decoder block i of L trains at lr * decay**(L-1-i) (the "
            "top block at lr), the token embeddings at the bottom block's factor, and the final norm, "
            "lm_head and MTP heads at lr. Layer-wise LR decay as used for fine-tuning ELECTRA (arXiv "
            "2003.10555)."
        },
    )

    # Grokfast-EMA gradient filter.
    use_grokfast: bool = field(
        default=True,
        metadata={
            "help": "Default True. Grokfast-EMA (arXiv 2405.20233): once per optimizer step, add "
            "grokfast_lambda times an exponential moving average of past gradients to the gradients of the "
            "AdamW parameters, amplifying their slow-varying component. Muon parameters are left alone "
            "because the Newton-Schulz orthogonalisation would cancel the amplification."
        },
    )
    grokfast_alpha: float = field(
        default=0.98,
        metadata={"help": "Default 0.98 (arXiv 2405.20233). Decay of the gradient EMA, in [0, 1)."},
    )
    grokfast_lambda: float = field(
        default=2.0,
        metadata={"help": "Default 2.0 (arXiv 2405.20233). Amplification of the gradient EMA, >= 0."},
    )

    # Token triage and batch metabolism: loss weights from one global running mean of token loss.
    use_token_triage: bool = field(
        default=False,
        metadata={
            "help": "Default False: the ablation measured +0.027 held-out loss with it on, worse for 4 of 4 seed and "
            "corpus pairs (docs/ABLATION.md). Token triage: weight each token's loss by its loss divided by the global "
            "running mean token loss, clipped to [token_triage_min_weight, token_triage_max_weight], so "
            "tokens the model still gets wrong count more. Closest published method: excess-loss token "
            "selection in Rho-1 (arXiv 2404.07965), with a running mean in place of a reference model."
        },
    )
    token_triage_min_weight: float = field(
        default=0.25, metadata={"help": "Default 0.25. Lower clip of the token triage weight, in (0, 1]."}
    )
    token_triage_max_weight: float = field(
        default=4.0, metadata={"help": "Default 4.0. Upper clip of the token triage weight, >= 1."}
    )
    use_batch_metabolism: bool = field(
        default=True,
        metadata={
            "help": "Default True. Batch metabolism: weight each sequence by its mean token loss divided by "
            "the global running mean token loss, clipped to [batch_metabolism_min_weight, "
            "batch_metabolism_max_weight]. The fused weights are then normalised to mean 1 over the batch, "
            "so without clipping and with token triage off a sequence's weight is its mean loss over the "
            "batch's: harder sequences get a larger share of the gradient."
        },
    )
    batch_metabolism_min_weight: float = field(
        default=0.5, metadata={"help": "Default 0.5. Lower clip of the sequence weight, in (0, 1]."}
    )
    batch_metabolism_max_weight: float = field(
        default=2.0, metadata={"help": "Default 2.0. Upper clip of the sequence weight, >= 1."}
    )
    loss_statistics_decay: float = field(
        default=0.99,
        metadata={
            "help": "Default 0.99. Decay of the bias-corrected running mean of token loss that token triage "
            "and batch metabolism compare against; it is updated once per optimizer step. In [0, 1)."
        },
    )

    # Skipping optimizer steps with NaN/Inf loss or gradients.
    skip_nonfinite_steps: bool = field(
        default=True,
        metadata={
            "help": "Default True. Skip the optimizer step (no parameter, momentum, EMA or weight-decay "
            "update) when any process sees a NaN/Inf loss or gradient. The LR schedule still advances."
        },
    )
    max_consecutive_skipped_steps: int = field(
        default=10,
        metadata={
            "help": "Default 10. Training stops with an error when more than this many optimizer steps in a "
            "row were skipped for NaN/Inf values."
        },
    )

    # Plateau burst: a temporary LR increase when the training loss stops improving.
    use_plateau_burst: bool = field(
        default=True,
        metadata={
            "help": "Default True. When the smoothed training loss has not improved by plateau_threshold "
            "(relative) for plateau_patience optimizer steps, multiply every group's LR by plateau_lr_factor "
            "for plateau_burst_steps steps. The trigger mirrors torch's ReduceLROnPlateau (patience, "
            "threshold, cooldown) but raises the LR to leave the plateau instead of lowering it."
        },
    )
    plateau_patience: int = field(
        default=100,
        metadata={"help": "Default 100. Optimizer steps without improvement before a burst starts, >= 1."},
    )
    plateau_threshold: float = field(
        default=0.01,
        metadata={
            "help": "Default 0.01. An improvement means the smoothed loss fell below best * (1 - threshold). "
            "In [0, 1)."
        },
    )
    plateau_lr_factor: float = field(
        default=2.0,
        metadata={
            "help": "Default 2.0. LR multiplier during a burst; a power of two > 1, so that multiplying and "
            "dividing the scheduled LR by it is exact in floating point."
        },
    )
    plateau_burst_steps: int = field(
        default=20, metadata={"help": "Default 20. Length of a burst in optimizer steps, >= 1."}
    )
    plateau_cooldown_steps: int = field(
        default=100,
        metadata={"help": "Default 100. Optimizer steps after a burst before another can start, >= 0."},
    )
    plateau_loss_smoothing: float = field(
        default=0.9,
        metadata={
            "help": "Default 0.9. Decay of the exponential moving average of the per-step training loss "
            "(main head cross-entropy) that the plateau test uses. In [0, 1)."
        },
    )

    # Looped depth: the trainer raises the model's `num_loops` on a schedule.
    loop_schedule: str = field(
        default="",
        metadata={
            "help": "Default '' (off): the ablation measured +0.009 held-out loss for '1@0,2@1/3,3@2/3' at about "
            "half the throughput (docs/ABLATION.md). Number of weight-shared passes over the decoder stack as "
            "LOOPS@FRACTION stages of `max_steps`, e.g. '1@0,2@1/3,3@2/3': 1 pass from the start, 2 from a "
            "third, 3 from two thirds "
            "(progressive depth growth as in arXiv 2502.05171's recurrent depth, applied as a schedule). "
            "Each pass costs a full trunk forward and backward. '' keeps the model's `num_loops`."
        },
    )

    # Surprise memory: only used when the model has `memory_slots > 0`.
    surprise_threshold: float = field(
        default=3.0,
        metadata={
            "help": "Default 3.0. A step whose loss is this many running standard deviations above the running "
            "mean writes the mean final hidden state of its highest-loss sequence into the model's memory "
            "(surprise-gated writes, arXiv 2501.00663). Used only when the model has `memory_slots > 0`."
        },
    )
    surprise_memory_decay: float = field(
        default=0.99,
        metadata={
            "help": "Default 0.99. Decay of the running mean and variance of the step loss, in [0, 1)."
        },
    )
    surprise_memory_blend: float = field(
        default=0.5,
        metadata={
            "help": "Default 0.5. Weight of the new vector when it replaces a slot written before, in (0, 1]."
        },
    )
    surprise_memory_warmup_steps: int = field(
        default=20,
        metadata={"help": "Default 20. Optimizer steps observed before the first memory write, >= 0."},
    )

    # Off by default.
    unfreeze_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Default 0.0 (off). Progressive unfreezing, bottom-up: decoder blocks start frozen and join "
            "training one by one from the bottom until all train at this fraction of `max_steps`; embeddings, "
            "lm_head and MTP heads always train. Costs no compute, but upper blocks get fewer updates in the "
            "same budget. Reverse of ULMFiT's top-down unfreezing (arXiv 1801.06146)."
        },
    )
    self_distill_weight: float = field(
        default=0.0,
        metadata={
            "help": "Default 0.0 (off). Weight of a KL(EMA teacher || model) term on the next-token "
            "distributions, the teacher being an exponential moving average of the model (mean teacher, "
            "arXiv 1703.01780). Costs a second forward pass per micro-batch and a second copy of the weights; "
            "reported harmful for ternary models."
        },
    )
    self_distill_decay: float = field(
        default=0.999,
        metadata={
            "help": "Default 0.999. EMA decay of the self-distillation teacher per optimizer step, in [0, 1)."
        },
    )

    def __post_init__(self):
        self._validate_genesis_fields()
        super().__post_init__()

    def _validate_genesis_fields(self) -> None:
        _check_range("muon_learning_rate", self.muon_learning_rate, low=0.0, low_open=True)
        _check_range("muon_momentum", self.muon_momentum, low=0.0, high=1.0, high_open=True)
        if self.muon_adjust_lr_fn not in MUON_ADJUST_LR_CHOICES:
            raise ValueError(
                f"`muon_adjust_lr_fn` must be one of {MUON_ADJUST_LR_CHOICES}, got "
                f"{self.muon_adjust_lr_fn!r}."
            )
        if self.muon_weight_decay is not None:
            _check_range("muon_weight_decay", self.muon_weight_decay, low=0.0)
        _check_range("layerwise_lr_decay", self.layerwise_lr_decay, low=0.0, high=1.0, low_open=True)

        _check_range("grokfast_alpha", self.grokfast_alpha, low=0.0, high=1.0, high_open=True)
        _check_range("grokfast_lambda", self.grokfast_lambda, low=0.0)

        for prefix in ("token_triage", "batch_metabolism"):
            low, high = getattr(self, f"{prefix}_min_weight"), getattr(self, f"{prefix}_max_weight")
            _check_range(f"{prefix}_min_weight", low, low=0.0, high=1.0, low_open=True)
            _check_range(f"{prefix}_max_weight", high, low=1.0)
        _check_range("loss_statistics_decay", self.loss_statistics_decay, low=0.0, high=1.0, high_open=True)
        _check_range("max_consecutive_skipped_steps", self.max_consecutive_skipped_steps, low=1)

        _check_range("plateau_patience", self.plateau_patience, low=1)
        _check_range("plateau_threshold", self.plateau_threshold, low=0.0, high=1.0, high_open=True)
        if not (self.plateau_lr_factor > 1.0 and math.frexp(self.plateau_lr_factor)[0] == 0.5):
            raise ValueError(
                "`plateau_lr_factor` must be a power of two greater than 1 (2.0, 4.0, ...), got "
                f"{self.plateau_lr_factor}: only then does dividing the LR by it restore the scheduled LR "
                "exactly."
            )
        _check_range("plateau_burst_steps", self.plateau_burst_steps, low=1)
        _check_range("plateau_cooldown_steps", self.plateau_cooldown_steps, low=0)
        _check_range("plateau_loss_smoothing", self.plateau_loss_smoothing, low=0.0, high=1.0, high_open=True)

        parse_loop_schedule(self.loop_schedule)
        _check_range("surprise_threshold", self.surprise_threshold, low=0.0, low_open=True)
        _check_range("surprise_memory_decay", self.surprise_memory_decay, low=0.0, high=1.0, high_open=True)
        _check_range("surprise_memory_blend", self.surprise_memory_blend, low=0.0, high=1.0, low_open=True)
        _check_range("surprise_memory_warmup_steps", self.surprise_memory_warmup_steps, low=0)
        _check_range("unfreeze_fraction", self.unfreeze_fraction, low=0.0, high=1.0)
        _check_range("self_distill_weight", self.self_distill_weight, low=0.0)
        _check_range("self_distill_decay", self.self_distill_decay, low=0.0, high=1.0, high_open=True)

        self._validate_trainer_compatibility()

    def _validate_trainer_compatibility(self) -> None:
        optim = getattr(self.optim, "value", self.optim)
        if optim not in SUPPORTED_ADAMW_OPTIMS:
            raise ValueError(
                f"`optim={optim!r}` is not supported by GenesisTrainer, which builds its own Muon + AdamW "
                f"optimizer: set `optim` to one of {SUPPORTED_ADAMW_OPTIMS}."
            )
        if self.label_smoothing_factor != 0:
            raise ValueError(
                f"`label_smoothing_factor={self.label_smoothing_factor}` is not supported by "
                "GenesisTrainer's weighted loss: set it to 0."
            )
        if self.fp16 and (self.skip_nonfinite_steps or self.use_grokfast):
            # fp16 gradients carry the GradScaler's changing scale, and the scaler must see Inf gradients.
            raise ValueError(
                "`fp16=True` cannot be combined with `skip_nonfinite_steps` or `use_grokfast`: the fp16 "
                "gradient scaler handles overflowing steps itself and rescales gradients between steps. Use "
                "`bf16=True`, or turn both techniques off."
            )


def _check_range(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise a `ValueError` naming `name` unless `value` lies in the given interval."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(
            f"`{name}` must be in {interval}, got {value}. Set `{name}` to a value in that range."
        )
