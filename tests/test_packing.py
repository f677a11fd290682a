import pytest
import torch

from modeling_genesis import GenesisConfig, GenesisForCausalLM
from modeling_genesis.bitlinear import BitLinear, quantize_weight
from modeling_genesis.packing import pack_ternary, packed_size, unpack_ternary


@pytest.mark.parametrize("shape", [(1,), (5,), (7, 3), (64, 33)])
def test_pack_round_trip(shape):
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(-1, 2, shape, generator=generator, dtype=torch.int8)
    packed = pack_ternary(values)
    assert packed.dtype == torch.uint8
    assert packed.numel() == packed_size(values.numel())
    assert torch.equal(unpack_ternary(packed, shape), values)


def test_pack_uses_five_values_per_byte():
    values = torch.tensor([-1, 0, 1, 1, -1], dtype=torch.int8)
    # digits 0, 1, 2, 2, 0 -> 0 + 3 + 18 + 54 + 0
    assert pack_ternary(values).tolist() == [75]
    assert pack_ternary(torch.ones(5, dtype=torch.int8)).tolist() == [242]


def test_packed_layer_matches_fake_quantization():
    torch.manual_seed(0)
    layer = BitLinear(10, 6)
    packed_layer = BitLinear(10, 6, packed=True)
    packed_layer.weight_packed.copy_(layer.pack()[0])
    packed_layer.weight_scale.copy_(layer.pack()[1])
    torch.testing.assert_close(packed_layer.quantized_weight(), quantize_weight(layer.weight))
    x = torch.randn(3, 10)
    torch.testing.assert_close(packed_layer(x), layer(x))
    assert packed_layer.weight is None


def test_packed_model_gives_same_logits(tmp_path):
    torch.manual_seed(0)
    config = GenesisConfig(
        vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    model = GenesisForCausalLM(config).eval()
    model.save_packed(tmp_path)
    loaded = GenesisForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.packed_weights
    assert "model.layers.0.self_attn.q_proj.weight" not in loaded.state_dict()
    input_ids = torch.randint(3, 99, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)
    unpacked_size = (tmp_path / "model.safetensors").stat().st_size
    model.save_pretrained(tmp_path / "latent")
    assert unpacked_size < (tmp_path / "latent" / "model.safetensors").stat().st_size
