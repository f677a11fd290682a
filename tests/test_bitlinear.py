import pytest
import torch

from modeling_genesis.bitlinear import BitLinear, quantize_activation, quantize_weight


def test_weight_quantization_matches_formula():
    weight = torch.tensor([[0.5, -2.0, 0.1], [1.2, 0.0, -0.4]])
    scale = weight.abs().mean()  # 0.7
    expected = torch.tensor([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]]) * scale
    for ste in ("clipped", "identity"):
        torch.testing.assert_close(quantize_weight(weight, ste), expected)


def test_activation_quantization_matches_formula():
    x = torch.tensor([[0.5, -1.0, 0.26], [2.0, 0.01, -0.3]])
    q_max = 127
    for row in range(2):
        absmax = x[row].abs().max()
        expected = torch.clamp(torch.round(x[row] * q_max / absmax), -128, 127) * absmax / q_max
        torch.testing.assert_close(quantize_activation(x)[row], expected)
    # 0.5 / 1.0 * 127 = 63.5 rounds to 64 (round half to even), so the quantization is visible.
    assert quantize_activation(x)[0, 0].item() == pytest.approx(64 / 127)


def test_clipped_ste_gradient_is_masked():
    weight = torch.tensor([[0.5, -2.0, 0.1], [1.2, 0.0, -0.4]], requires_grad=True)
    upstream = torch.arange(1.0, 7.0).view(2, 3)
    (quantize_weight(weight, "clipped") * upstream).sum().backward()
    inside = (weight.detach() / weight.detach().abs().mean()).abs() <= 1
    torch.testing.assert_close(weight.grad, upstream * inside)
    assert not inside.all(), "the example must contain entries outside [-s, s]"


def test_identity_ste_gradient_passes_through():
    weight = torch.tensor([[0.5, -2.0, 0.1], [1.2, 0.0, -0.4]], requires_grad=True)
    upstream = torch.arange(1.0, 7.0).view(2, 3)
    (quantize_weight(weight, "identity") * upstream).sum().backward()
    torch.testing.assert_close(weight.grad, upstream)


def test_activation_ste_gradient_passes_through():
    x = torch.randn(3, 5, requires_grad=True)
    upstream = torch.randn(3, 5)
    (quantize_activation(x) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, upstream)


def test_bitlinear_forward_uses_quantized_operands():
    torch.manual_seed(0)
    layer = BitLinear(8, 4)
    x = torch.randn(2, 3, 8)
    expected = quantize_activation(x) @ quantize_weight(layer.weight).T
    torch.testing.assert_close(layer(x), expected)
    assert layer.bias is None


def test_bitlinear_full_precision_activations():
    torch.manual_seed(0)
    layer = BitLinear(8, 4, activation_bits=None)
    x = torch.randn(2, 8)
    torch.testing.assert_close(layer(x), x @ quantize_weight(layer.weight).T)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("ste", ["clipped", "identity"])
def test_zero_input_and_zero_weight_are_finite(dtype, ste):
    layer = BitLinear(6, 4, weight_ste=ste).to(dtype)
    x = torch.randn(3, 6, dtype=dtype)
    x[1] = 0.0  # an all-zero token
    x.requires_grad_(True)
    out = layer(x)
    out.float().sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(layer.weight.grad).all()
    assert torch.isfinite(x.grad).all()
    assert (out[1] == 0).all()

    zero_layer = BitLinear(6, 4, weight_ste=ste).to(dtype)
    with torch.no_grad():
        zero_layer.weight.zero_()
    x = torch.randn(3, 6, dtype=dtype, requires_grad=True)
    out = zero_layer(x)
    out.float().sum().backward()
    assert torch.isfinite(out).all()
    assert (out == 0).all()
    assert torch.isfinite(zero_layer.weight.grad).all()
    assert torch.isfinite(x.grad).all()


def test_unknown_ste_raises():
    with pytest.raises(ValueError, match="'clipped' or 'identity'"):
        quantize_weight(torch.ones(2, 2), "sign")
