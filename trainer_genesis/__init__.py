# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Training Genesis ternary causal LMs with the Hugging Face Trainer."""

from .grokfast import GrokfastEMA
from .nonfinite import NonFiniteGuard
from .optimizer import GenesisOptimizer, build_param_groups, check_exact_cover, layerwise_lr_factor
from .plateau import PlateauBurst, PlateauBurstCallback
from .trainer import GenesisTrainer
from .training_args import GenesisTrainingArguments
from .weighting import LossStatistics, TokenWeightingConfig

__all__ = [
    "GenesisOptimizer",
    "GenesisTrainer",
    "GenesisTrainingArguments",
    "GrokfastEMA",
    "LossStatistics",
    "NonFiniteGuard",
    "PlateauBurst",
    "PlateauBurstCallback",
    "TokenWeightingConfig",
    "build_param_groups",
    "check_exact_cover",
    "layerwise_lr_factor",
]
