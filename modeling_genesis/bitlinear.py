# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Ternary linear layer of BitNet b1.58 (arXiv 2402.17764) with fake quantization for training.

Every quantizer is written as `x + (q(x) - x).detach()` with standard aten ops instead of an
`autograd.Function`, so `torch.compile(fullgraph=True)` traces it without graph breaks.

Scale convention: a weight matrix W is stored in full precision. Its per-tensor scale is
s = max(mean|W|, eps), its ternary values are T = round(clamp(W / s, -1, 1)) in {-1, 0, 1},
and the forward multiplies by T * s. Scales are constants in the backward pass.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .packing import pack_ternary, packed_size, unpack_ternary

# Floor of the weight and activation scales, so an all-zero weight matrix or input row gives
# finite outputs and gradients instead of 0 / 0.
QUANT_EPS = 1e-5


def weight_scale(weight: torch.Tensor) -> torch.Tensor:
    """Return the per-tensor absmean scale s = max(mean|W|, eps), detached."""
    return weight.detach().abs().mean().clamp(min=QUANT_EPS)


def ternary_values(weight: torch.Tensor) -> torch.Tensor:
    """Return T = round(clamp(W / s, -1, 1)), the ternary values of `weight`, as `int8`."""
    return (weight.detach() / weight_scale(weight)).clamp(-1.0, 1.0).round().to(torch.int8)


def quantize_weight(weight: torch.Tensor, ste: str = "clipped") -> torch.Tensor:
    """Fake-quantize a weight matrix to {-s, 0, s} with a straight-through estimator.

    Args:
        weight: full-precision weight W of any shape.
        ste: `"clipped"` computes c = clamp(W / s, -1, 1) and returns (c + (round(c) - c).detach()) * s,
            so dL/dW = dL/dW_q where |W / s| <= 1 and 0 elsewhere. `"identity"` returns
            (W / s + (clamp(round(W / s), -1, 1) - W / s).detach()) * s, so dL/dW = dL/dW_q everywhere
            (the BitNet b1.58 reference estimator).

    Returns:
        A tensor with the dtype and shape of `weight` whose values are the ternary values times s.
    """
    scale = weight_scale(weight)
    normalized = weight / scale
    if ste == "clipped":
        clipped = normalized.clamp(-1.0, 1.0)
        quantized = clipped + (clipped.round() - clipped).detach()
    elif ste == "identity":
        quantized = normalized + (normalized.round().clamp(-1.0, 1.0) - normalized).detach()
    else:
        raise ValueError(f"`ste` must be 'clipped' or 'identity', got {ste!r}.")
    return quantized * scale


def quantize_activation(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Fake-quantize activations per token (last dimension) with absmax scaling and an identity STE.

    x_q = clamp(round(x * Q / max|x|), -Q - 1, Q) * max|x| / Q with Q = 2**(bits - 1) - 1 (127 for 8 bits).
    The arithmetic runs in float32 and the result is cast back to the input dtype.
    """
    q_max = 2 ** (bits - 1) - 1
    x_float = x.float()
    scale = q_max / x_float.detach().abs().amax(dim=-1, keepdim=True).clamp(min=QUANT_EPS)
    quantized = (x_float * scale).round().clamp(-q_max - 1, q_max) / scale
    return (x_float + (quantized - x_float).detach()).to(x.dtype)


class BitLinear(nn.Linear):
    """`nn.Linear` with ternary weights and low-bit activations in the forward pass (BitNet b1.58).

    The layer keeps a full-precision "latent" weight for the optimizer; the forward uses its ternary
    fake-quantized value and per-token quantized inputs. It has no bias.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        weight_ste: straight-through estimator of the weight quantizer, `"clipped"` or `"identity"`.
        activation_bits: bits of the per-token input quantization, or `None` for full-precision inputs.
        packed: hold the ternary values packed five per byte (`weight_packed`) and the float32 scale
            (`weight_scale`) instead of the latent weight. Such a layer only runs inference.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        weight_ste: str = "clipped",
        activation_bits: int | None = 8,
        packed: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__(in_features, out_features, bias=False, device=device, dtype=dtype)
        self.weight_ste = weight_ste
        self.activation_bits = activation_bits
        self.packed = packed
        if packed:
            self.weight = None
            numel = in_features * out_features
            self.register_buffer(
                "weight_packed", torch.ones(packed_size(numel), dtype=torch.uint8, device=device)
            )
            self.register_buffer("weight_scale", torch.ones((), dtype=torch.float32, device=device))

    def pack(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the packed ternary values and the float32 scale of the latent weight."""
        return pack_ternary(ternary_values(self.weight)), weight_scale(self.weight).float()

    def quantized_weight(self) -> torch.Tensor:
        """Return the ternary weight times its scale, as the forward uses it."""
        if self.packed:
            values = unpack_ternary(self.weight_packed, (self.out_features, self.in_features))
            return values.to(self.weight_scale.dtype) * self.weight_scale
        return quantize_weight(self.weight, self.weight_ste)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation_bits is not None:
            x = quantize_activation(x, self.activation_bits)
        return F.linear(x, self.quantized_weight().to(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"weight_ste={self.weight_ste}, activation_bits={self.activation_bits}, packed={self.packed}"
        )
