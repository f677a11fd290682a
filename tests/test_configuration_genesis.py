import pytest

from modeling_genesis import GenesisConfig


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("weight_ste", "sign", "`weight_ste` must be one of"),
        ("activation_bits", 4, "`activation_bits` must be 8 or None"),
        ("mtp_num_heads", -1, "`mtp_num_heads` must be >= 0"),
        ("memory_slots", -2, "`memory_slots` must be >= 0"),
        ("num_loops", 0, "`num_loops` must be a positive integer"),
        ("num_key_value_heads", 3, "must be a multiple of `num_key_value_heads`"),
        ("hidden_size", 30, "must be a multiple of `num_attention_heads`"),
        ("mtp_loss_weight", -0.1, "`mtp_loss_weight` must be >= 0"),
        ("attention_dropout", 1.0, "`attention_dropout` must be in"),
        ("hidden_act", "tanh", "`hidden_act` must be one of"),
    ],
)
def test_invalid_value_raises(field, value, message):
    with pytest.raises(ValueError, match=message):
        GenesisConfig(**{field: value})


def test_defaults():
    config = GenesisConfig()
    assert config.model_type == "genesis"
    assert config.weight_ste == "clipped"
    assert config.activation_bits == 8
    assert config.mtp_num_heads == 2
    assert config.num_loops == 1
    assert config.memory_slots == 0
    assert config.num_key_value_heads == config.num_attention_heads
    assert config.head_dim == config.hidden_size // config.num_attention_heads
    assert config.rope_parameters["rope_theta"] == 10000.0


def test_round_trip(tmp_path):
    config = GenesisConfig(hidden_size=64, num_attention_heads=2, weight_ste="identity", activation_bits=None)
    config.save_pretrained(tmp_path)
    loaded = GenesisConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
