# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Genesis model configuration: a Llama-style decoder with ternary (BitNet b1.58) linear layers."""

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig
from transformers.modeling_rope_utils import RopeParameters

WEIGHT_STE_CHOICES = ("clipped", "identity")
ACTIVATION_BITS_CHOICES = (8, None)


@strict
class GenesisConfig(PreTrainedConfig):
    r"""
    Configuration of a [`GenesisForCausalLM`]: a Llama-style decoder (RMSNorm pre-norm, RoPE, grouped-query
    attention, gated MLP, no biases) whose decoder-block and MTP-head linear layers are ternary `BitLinear`
    layers (BitNet b1.58, arXiv 2402.17764). Embeddings, `lm_head` and norms stay in full precision.

    Args:
        vocab_size (`int`, defaults to 8192):
            Number of tokens in the vocabulary; the first dimension of `embed_tokens` and `lm_head`.
        hidden_size (`int`, defaults to 256):
            Width of the residual stream.
        intermediate_size (`int`, defaults to 704):
            Width of the gated MLP's hidden layer.
        num_hidden_layers (`int`, defaults to 4):
            Number of decoder blocks in the trunk.
        num_attention_heads (`int`, defaults to 4):
            Number of query heads; must divide `hidden_size` unless `head_dim` is set.
        num_key_value_heads (`int`, *optional*):
            Number of key/value heads for grouped-query attention (arXiv 2305.13245); must divide
            `num_attention_heads`. Defaults to `num_attention_heads` (multi-head attention).
        head_dim (`int`, *optional*):
            Width of one attention head. Defaults to `hidden_size // num_attention_heads`.
        hidden_act (`str`, defaults to `"silu"`):
            Activation of the gated MLP (SwiGLU with `"silu"`, arXiv 2002.05202).
        max_position_embeddings (`int`, defaults to 2048):
            Longest sequence the model is trained for; training blocks must not be longer.
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the normal initialisation of embeddings and full-precision linear layers.
        rms_norm_eps (`float`, defaults to 1e-5):
            Epsilon of every RMSNorm.
        use_cache (`bool`, defaults to `True`):
            Whether the forward returns a key/value cache for generation.
        pad_token_id (`int`, *optional*):
            Padding token id.
        bos_token_id (`int`, *optional*):
            Beginning-of-sequence token id.
        eos_token_id (`int` or `list[int]`, *optional*):
            End-of-sequence token id; training texts are joined with it.
        tie_word_embeddings (`bool`, defaults to `False`):
            Share one matrix between `embed_tokens` and `lm_head`.
        rope_parameters (`dict`, *optional*):
            RoPE settings in transformers' format; defaults to `{"rope_type": "default", "rope_theta": 10000.0}`.
        attention_dropout (`float`, defaults to 0.0):
            Dropout on attention probabilities during training.
        weight_ste (`str`, defaults to `"clipped"`):
            Straight-through estimator of the weight quantizer. `"clipped"` clamps W/s to [-1, 1] before
            rounding, so entries with |W/s| > 1 get no gradient; it was chosen to stop gradient explosions.
            `"identity"` passes the gradient through unchanged, as in the BitNet b1.58 reference code.
        activation_bits (`int`, *optional*, defaults to 8):
            Per-token absmax quantization of BitLinear inputs to this many bits, as in BitNet b1.58.
            `None` keeps activations in full precision.
        use_sub_norms (`bool`, defaults to `True`):
            Add the BitNet sub-norms (RMSNorm before `o_proj` and before `down_proj`), as in BitNet b1.58 2B4T
            (arXiv 2504.12285); they keep BitLinear inputs well scaled.
        mtp_num_heads (`int`, defaults to 2):
            Number of multi-token-prediction heads (arXiv 2404.19737). Head k (1-based) predicts token t+1+k
            from the trunk's last hidden state at t; each head is one decoder block followed by the shared
            final norm and `lm_head`. 0 disables them.
        mtp_loss_weight (`float`, defaults to 0.3):
            Weight of the mean MTP cross-entropy added to the main cross-entropy.
        num_loops (`int`, defaults to 1):
            Number of times the decoder stack runs with the same weights (weight-shared depth).
        memory_slots (`int`, defaults to 0):
            Number of surprise-memory vectors that every attention layer also attends to; 0 disables it.
        packed_weights (`bool`, defaults to `False`):
            BitLinear layers hold their ternary values packed base-3, five per byte (1.6 bits per weight),
            plus a float32 scale, instead of full-precision latent weights. Set by
            `GenesisForCausalLM.save_packed`; such a model runs inference only.
    """

    model_type = "genesis"
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = 8192
    hidden_size: int = 256
    intermediate_size: int = 704
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    tie_word_embeddings: bool = False
    rope_parameters: RopeParameters | dict | None = None
    attention_dropout: float | int = 0.0
    weight_ste: str = "clipped"
    activation_bits: int | None = 8
    use_sub_norms: bool = True
    mtp_num_heads: int = 2
    mtp_loss_weight: float | int = 0.3
    num_loops: int = 1
    memory_slots: int = 0
    packed_weights: bool = False

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and self.num_attention_heads > 0:
            if self.hidden_size % self.num_attention_heads != 0:
                raise ValueError(
                    f"`hidden_size` ({self.hidden_size}) must be a multiple of `num_attention_heads` "
                    f"({self.num_attention_heads}); change one of them or set `head_dim`."
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.rope_parameters is None and "rope_theta" not in kwargs and "rope_scaling" not in kwargs:
            self.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
        super().__post_init__(**kwargs)
        self._validate_ranges()

    def _validate_ranges(self):
        """Raise `ValueError` naming the first field outside its allowed range."""
        positive = (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "max_position_embeddings",
            "num_loops",
        )
        for name in positive:
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        for name in ("mtp_num_heads", "memory_slots"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"`{name}` must be >= 0 (0 disables it), got {value}.")
        if self.head_dim % 2 != 0:
            raise ValueError(f"`head_dim` must be even for rotary embeddings, got {self.head_dim}.")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be a multiple of "
                f"`num_key_value_heads` ({self.num_key_value_heads})."
            )
        if self.weight_ste not in WEIGHT_STE_CHOICES:
            raise ValueError(f"`weight_ste` must be one of {WEIGHT_STE_CHOICES}, got {self.weight_ste!r}.")
        if self.activation_bits not in ACTIVATION_BITS_CHOICES:
            raise ValueError(
                f"`activation_bits` must be 8 or None (full-precision activations), got {self.activation_bits!r}."
            )
        if not 0.0 <= self.initializer_range <= 1.0:
            raise ValueError(f"`initializer_range` must be in [0, 1], got {self.initializer_range}.")
        if not self.rms_norm_eps > 0.0:
            raise ValueError(f"`rms_norm_eps` must be > 0, got {self.rms_norm_eps}.")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"`attention_dropout` must be in [0, 1), got {self.attention_dropout}.")
        if self.mtp_loss_weight < 0.0:
            raise ValueError(f"`mtp_loss_weight` must be >= 0, got {self.mtp_loss_weight}.")
        if self.hidden_act not in ("silu", "gelu", "relu", "relu2", "gelu_pytorch_tanh"):
            raise ValueError(
                f"`hidden_act` must be one of silu, gelu, gelu_pytorch_tanh, relu, relu2, got {self.hidden_act!r}."
            )


__all__ = ["GenesisConfig"]
