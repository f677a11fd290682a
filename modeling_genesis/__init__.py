# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Ternary (BitNet b1.58) causal language models for transformers.

Importing this package registers `GenesisConfig` and the Genesis models with `AutoConfig`,
`AutoModel` and `AutoModelForCausalLM`, and marks them for `auto_map` so `save_pretrained`
writes a folder that loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .bitlinear import BitLinear, quantize_activation, quantize_weight
from .configuration_genesis import GenesisConfig
from .modeling_genesis import GenesisForCausalLM, GenesisModel, GenesisPreTrainedModel

AutoConfig.register(GenesisConfig.model_type, GenesisConfig, exist_ok=True)
AutoModel.register(GenesisConfig, GenesisModel, exist_ok=True)
AutoModelForCausalLM.register(GenesisConfig, GenesisForCausalLM, exist_ok=True)
GenesisConfig.register_for_auto_class()
GenesisModel.register_for_auto_class("AutoModel")
GenesisForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "BitLinear",
    "GenesisConfig",
    "GenesisForCausalLM",
    "GenesisModel",
    "GenesisPreTrainedModel",
    "quantize_activation",
    "quantize_weight",
]
