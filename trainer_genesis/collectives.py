# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""All-reduce helpers that are no-ops in a single process."""

import torch
import torch.distributed as dist

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}


def is_distributed() -> bool:
    """Return whether a torch.distributed process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """All-reduce `tensor` in place over every process (`op` is "sum" or "max") and return it.

    Args:
        tensor: on the device the process group's backend expects (CUDA for NCCL, any for gloo).
        op: the reduction.
    """
    if is_distributed():
        dist.all_reduce(tensor, op=_OPS[op])
    return tensor


def any_process(flag: bool, device: torch.device) -> bool:
    """Return True on every process if `flag` is True on at least one."""
    if not is_distributed():
        return flag
    return bool(all_reduce_(torch.tensor([float(flag)], device=device), "max").item())
