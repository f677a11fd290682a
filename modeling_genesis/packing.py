# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Base-3 packing of ternary weights: five values in {-1, 0, 1} per byte, 1.6 bits per weight.

3**5 = 243 <= 256, so the digits d_i = value_i + 1 of five consecutive weights (row-major order)
fit one byte as sum(d_i * 3**i). That is within 1% of the log2(3) = 1.585-bit limit, against
2 bits for four-per-byte packing.
"""

import torch

VALUES_PER_BYTE = 5
_POWERS_OF_THREE = (1, 3, 9, 27, 81)


def packed_size(numel: int) -> int:
    """Return the number of bytes that hold `numel` packed ternary values."""
    return -(-numel // VALUES_PER_BYTE)


def pack_ternary(values: torch.Tensor) -> torch.Tensor:
    """Pack a tensor of values in {-1, 0, 1} into a flat `uint8` tensor of `packed_size(values.numel())` bytes."""
    digits = (values.flatten().to(torch.int32) + 1).clamp(0, 2)
    padding = packed_size(digits.numel()) * VALUES_PER_BYTE - digits.numel()
    digits = torch.nn.functional.pad(digits, (0, padding), value=1).view(-1, VALUES_PER_BYTE)
    powers = torch.tensor(_POWERS_OF_THREE, dtype=torch.int32, device=digits.device)
    return (digits * powers).sum(dim=1).to(torch.uint8)


def unpack_ternary(packed: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """Unpack bytes written by `pack_ternary` into an `int8` tensor of `shape` with values in {-1, 0, 1}."""
    numel = 1
    for size in shape:
        numel *= size
    powers = torch.tensor(_POWERS_OF_THREE, dtype=torch.int32, device=packed.device)
    digits = (packed.to(torch.int32)[:, None] // powers) % 3
    return (digits.flatten()[:numel] - 1).to(torch.int8).view(shape)
