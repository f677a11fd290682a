# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Muon + AdamW parameter groups with layer-wise LR decay, wrapped in one optimizer object.

`GenesisOptimizer` is a real `torch.optim.Optimizer` whose `param_groups` are the group dicts of its inner
optimizers and whose `state` is shared with them. Trainer's LR scheduler, gradient clipping and checkpointing
therefore see every group through the one object.
"""

import re
from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import nn
from transformers.utils import logging

logger = logging.get_logger(__name__)

MUON = "muon"
ADAMW = "adamw"

# A parameter lives in decoder block i (trunk) or in an MTP head when its name contains these parts.
_BLOCK_PATTERN = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_MTP_HEAD_PATTERN = re.compile(r"(?:^|\.)mtp_heads\.\d+\.")
_EMBEDDING_PATTERN = re.compile(r"(?:^|\.)embed_tokens\.")


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


def layerwise_lr_factor(name: str, num_layers: int, decay: float) -> float:
    """Return the LR factor of parameter `name` under layer-wise LR decay.

    Decoder block i of `num_layers` gets decay**(num_layers - 1 - i), the token embeddings the bottom block's
    factor, and everything else (final norm, `lm_head`, MTP heads) 1.0.

    Args:
        name: parameter name as given by `named_parameters()`.
        num_layers: number of decoder blocks in the trunk.
        decay: the per-block decay; 1.0 gives every parameter the factor 1.0.
    """
    if _MTP_HEAD_PATTERN.search(name):
        return 1.0
    block = _BLOCK_PATTERN.search(name)
    if block is not None:
        return decay ** (num_layers - 1 - int(block.group(1)))
    if _EMBEDDING_PATTERN.search(name):
        return decay ** (num_layers - 1)
    return 1.0


def is_muon_parameter(name: str, parameter: torch.Tensor) -> bool:
    """Return whether `parameter` is a 2-D weight matrix inside a decoder block or an MTP head."""
    in_block = _BLOCK_PATTERN.search(name) is not None or _MTP_HEAD_PATTERN.search(name) is not None
    return in_block and parameter.ndim == 2


def build_param_groups(
    model: nn.Module,
    num_layers: int,
    learning_rate: float,
    muon_learning_rate: float | None,
    layerwise_lr_decay: float,
    decay_parameter_names: Iterable[str],
    weight_decay: float,
    muon_weight_decay: float,
) -> list[dict[str, Any]]:
    """Split the trainable parameters into Muon and AdamW groups.

    There is one group per (optimizer, LR factor, weight decay).
    Each group dict carries `optimizer` ("muon" or "adamw"), `lr_factor`, `lr` (the optimizer's base LR times
    the factor), `weight_decay` and `param_names`. A parameter shared under several names (tied weights) gets
    the largest of their factors, and goes to Muon only if every name qualifies.

    Args:
        model: the model to train.
        num_layers: number of decoder blocks in the trunk.
        learning_rate: base LR of the AdamW groups.
        muon_learning_rate: base LR of the Muon groups; `None` puts every parameter in AdamW.
        layerwise_lr_decay: per-block LR decay, 1.0 for none.
        decay_parameter_names: names of the AdamW parameters that get weight decay (Trainer excludes norms and
            biases).
        weight_decay: AdamW weight decay.
        muon_weight_decay: Muon weight decay.
    """
    names_by_id: dict[int, list[str]] = {}
    parameters: list[torch.Tensor] = []
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if not parameter.requires_grad:
            continue
        if id(parameter) not in names_by_id:
            names_by_id[id(parameter)] = []
            parameters.append(parameter)
        names_by_id[id(parameter)].append(name)

    decay_names = set(decay_parameter_names)
    groups: dict[tuple[str, float, float], dict[str, Any]] = {}
    for parameter in parameters:
        names = names_by_id[id(parameter)]
        factor = max(layerwise_lr_factor(name, num_layers, layerwise_lr_decay) for name in names)
        use_muon = muon_learning_rate is not None and all(
            is_muon_parameter(name, parameter) for name in names
        )
        if use_muon:
            key = (MUON, factor, muon_weight_decay)
        else:
            key = (ADAMW, factor, weight_decay if any(name in decay_names for name in names) else 0.0)
        if key not in groups:
            base_lr = muon_learning_rate if use_muon else learning_rate
            groups[key] = {
                "params": [],
                "param_names": [],
                "optimizer": key[0],
                "lr_factor": factor,
                "lr": base_lr * factor,
                "weight_decay": key[2],
            }
        groups[key]["params"].append(parameter)
        groups[key]["param_names"].append(names[0])

    # AdamW groups first, so Trainer's logged `learning_rate` (group 0) follows `learning_rate`; then Muon.
    # Within each, groups go from the top of the network down. The order is the same in every run.
    ordered = sorted(groups.values(), key=lambda group: (group["optimizer"] != ADAMW, -group["lr_factor"]))
    check_exact_cover(model, ordered)
    return ordered


def check_exact_cover(model: nn.Module, param_groups: list[dict[str, Any]]) -> None:
    """Raise a `ValueError` unless every trainable parameter of `model` is in exactly one group.

    Parameters are compared by identity, so a tied weight counts once. Muon groups must hold 2-D tensors only.

    Args:
        model: the model being trained.
        param_groups: optimizer group dicts with a `params` list.
    """
    names_by_id: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if parameter.requires_grad:
            names_by_id.setdefault(id(parameter), []).append(name)

    seen: dict[int, int] = {}
    for group in param_groups:
        for parameter in group["params"]:
            seen[id(parameter)] = seen.get(id(parameter), 0) + 1
            if group.get("optimizer") == MUON and parameter.ndim != 2:
                names = names_by_id.get(id(parameter), ["<not a model parameter>"])
                raise ValueError(
                    f"Muon group contains a {parameter.ndim}-D parameter {names}; Muon needs 2-D."
                )

    missing = [names[0] for key, names in names_by_id.items() if key not in seen]
    duplicated = [names_by_id.get(key, ["<unknown>"])[0] for key, count in seen.items() if count > 1]
    foreign = [key for key in seen if key not in names_by_id]
    if missing or duplicated or foreign:
        raise ValueError(
            f"Optimizer groups must contain every trainable parameter exactly once. Missing: {missing}. In "
            f"more than one group: {duplicated}. Not trainable parameters of the model: {len(foreign)}."
        )


class GenesisOptimizer(torch.optim.Optimizer):
    """One optimizer over several inner optimizers (Muon and AdamW), seen by Trainer as a single object.

    `param_groups` is the concatenation of the inner optimizers' group dicts (the same dict objects) and
    `state` is one mapping shared with the inner optimizers, so an LR written by the scheduler reaches the
    inner step and `state_dict()` covers everything. `load_state_dict` re-links the inner optimizers to the
    loaded groups. Checkpoint through this object only: an inner optimizer's own `state_dict()` would see the
    other's state.

    Objects registered with `register_extra_state` (gradient EMA, loss statistics, counters) are saved under
    the `"extra_state"` key as tensors and plain numbers, so `torch.load(..., weights_only=True)` restores
    them.

    Args:
        optimizers: the inner optimizers by name, e.g. `{"adamw": AdamW(...), "muon": Muon(...)}`.
            `param_groups` lists their groups in this order.
    """

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]):
        if not optimizers:
            raise ValueError("GenesisOptimizer needs at least one inner optimizer.")
        self.optimizers = dict(optimizers)
        self.extra_state: dict[str, Stateful] = {}
        self._skip_next_step = False
        # Whether the latest `step()` was skipped; callbacks that run after it read this.
        self.last_step_skipped = False
        super().__init__([group for inner in self.optimizers.values() for group in inner.param_groups], {})
        self._link_inner_optimizers()

    def _link_inner_optimizers(self) -> None:
        start = 0
        for inner in self.optimizers.values():
            count = len(inner.param_groups)
            inner.param_groups = self.param_groups[start : start + count]
            inner.state = self.state
            start += count

    def groups_of(self, name: str) -> list[dict[str, Any]]:
        """Return the param groups that inner optimizer `name` steps."""
        return self.optimizers[name].param_groups if name in self.optimizers else []

    def skip_next_step(self) -> None:
        """Make the next `step()` return without touching parameters or optimizer state."""
        self._skip_next_step = True

    def register_extra_state(self, name: str, stateful: Stateful) -> None:
        """Save `stateful.state_dict()` with this optimizer's state and restore it in `load_state_dict`."""
        self.extra_state[name] = stateful

    @torch.no_grad()
    def step(self, closure=None):
        """Run every inner optimizer's step, unless `skip_next_step()` was called since the last step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.last_step_skipped = self._skip_next_step
        if self._skip_next_step:
            self._skip_next_step = False
            return loss
        for inner in self.optimizers.values():
            inner.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        state_dict = super().state_dict()
        state_dict["extra_state"] = {
            name: stateful.state_dict() for name, stateful in self.extra_state.items()
        }
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra_state = state_dict.pop("extra_state", {})
        super().load_state_dict(state_dict)
        self._link_inner_optimizers()
        for name, stateful in self.extra_state.items():
            if name in extra_state:
                stateful.load_state_dict(extra_state[name])
            else:
                logger.warning(
                    f"The optimizer state has no '{name}' entry, so '{name}' starts from its initial state."
                )
        unused = sorted(set(extra_state) - set(self.extra_state))
        if unused:
            logger.warning(f"Ignoring optimizer extra state {unused}: nothing in this run registered it.")


def create_genesis_optimizer(
    model: nn.Module,
    args: Any,
    num_layers: int,
    decay_parameter_names: Iterable[str],
    adamw_cls: type[torch.optim.Optimizer],
    adamw_kwargs: dict[str, Any],
) -> GenesisOptimizer:
    """Build the Muon + AdamW `GenesisOptimizer` for `model` from `GenesisTrainingArguments`.

    Args:
        model: the model to train.
        args: `GenesisTrainingArguments`.
        num_layers: number of decoder blocks in the trunk.
        decay_parameter_names: names of the AdamW parameters that get weight decay.
        adamw_cls: the AdamW class Trainer would use for `args.optim`.
        adamw_kwargs: its keyword arguments (betas, eps, fused); `lr` is set per group.
    """
    muon_weight_decay = args.weight_decay if args.muon_weight_decay is None else args.muon_weight_decay
    groups = build_param_groups(
        model,
        num_layers=num_layers,
        learning_rate=args.learning_rate,
        muon_learning_rate=args.muon_learning_rate if args.use_muon else None,
        layerwise_lr_decay=args.layerwise_lr_decay,
        decay_parameter_names=decay_parameter_names,
        weight_decay=args.weight_decay,
        muon_weight_decay=muon_weight_decay,
    )
    optimizers: dict[str, torch.optim.Optimizer] = {}
    muon_groups = [group for group in groups if group["optimizer"] == MUON]
    adamw_groups = [group for group in groups if group["optimizer"] == ADAMW]
    if adamw_groups:
        optimizers[ADAMW] = adamw_cls(adamw_groups, **{**adamw_kwargs, "lr": args.learning_rate})
    if muon_groups:
        optimizers[MUON] = torch.optim.Muon(
            muon_groups,
            lr=args.muon_learning_rate,
            momentum=args.muon_momentum,
            nesterov=args.muon_nesterov,
            adjust_lr_fn=args.muon_adjust_lr_fn,
            weight_decay=muon_weight_decay,
        )
    return GenesisOptimizer(optimizers)
