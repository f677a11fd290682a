# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Genesis: a Llama-style causal LM with ternary BitLinear layers and multi-token-prediction heads.

This file and its relative imports are copied next to the weights by `save_pretrained`, so a Hub
copy loads with `trust_remote_code=True` on a machine without the `modeling_genesis` package.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel
from transformers.models.llama.modeling_llama import LlamaRMSNorm, LlamaRotaryEmbedding, apply_rotary_pos_emb
from transformers.utils import logging
from transformers.utils.deprecation import deprecate_kwarg

from .bitlinear import BitLinear
from .configuration_genesis import GenesisConfig

logger = logging.get_logger(__name__)


class GenesisRMSNorm(LlamaRMSNorm):
    pass


class GenesisRotaryEmbedding(LlamaRotaryEmbedding):
    pass


def make_bitlinear(config: GenesisConfig, in_features: int, out_features: int) -> BitLinear:
    return BitLinear(
        in_features, out_features, config.weight_ste, config.activation_bits, config.packed_weights
    )


def build_attention_mask(
    attention_mask: torch.Tensor | None, query_length: int, past_length: int, device: torch.device
) -> torch.Tensor:
    """Build the boolean (batch or 1, 1, query, key) mask for SDPA, True where attention is allowed.

    `attention_mask` is the usual 2-D padding mask over past and current tokens (1 = real token).
    Padded query positions may always attend to themselves, so no row is fully masked (SDPA returns
    NaN for such rows, which would leak into gradients through the padded outputs).
    """
    key_length = past_length + query_length
    query_positions = torch.arange(past_length, key_length, device=device)
    key_positions = torch.arange(key_length, device=device)
    mask = (key_positions[None, :] <= query_positions[:, None])[None, None]
    if attention_mask is not None:
        padding = attention_mask[:, None, None, -key_length:].to(torch.bool)
        diagonal = (key_positions[None, :] == query_positions[:, None])[None, None]
        mask = (mask & padding) | diagonal
    return mask


class GenesisAttention(nn.Module):
    """Grouped-query self-attention with RoPE through `F.scaled_dot_product_attention`.

    With surprise memory on, every layer also attends to keys and values projected from the model's
    written memory slots, without positional encoding and visible from every position.
    """

    def __init__(self, config: GenesisConfig):
        super().__init__()
        self.config = config
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = make_bitlinear(config, config.hidden_size, self.num_heads * self.head_dim)
        self.k_proj = make_bitlinear(config, config.hidden_size, self.num_key_value_heads * self.head_dim)
        self.v_proj = make_bitlinear(config, config.hidden_size, self.num_key_value_heads * self.head_dim)
        self.o_proj = make_bitlinear(config, self.num_heads * self.head_dim, config.hidden_size)
        # BitNet b1.58 2B4T (arXiv 2504.12285) normalises the attention output before o_proj.
        self.attn_sub_norm = (
            GenesisRMSNorm(self.num_heads * self.head_dim, eps=config.rms_norm_eps)
            if config.use_sub_norms
            else nn.Identity()
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        cache: Cache | None = None,
        cache_index: int = 0,
        memory_states: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch_size, query_length, _ = hidden_states.shape
        query = self.q_proj(hidden_states).view(batch_size, query_length, -1, self.head_dim).transpose(1, 2)
        key = self.k_proj(hidden_states).view(batch_size, query_length, -1, self.head_dim).transpose(1, 2)
        value = self.v_proj(hidden_states).view(batch_size, query_length, -1, self.head_dim).transpose(1, 2)

        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if cache is not None:
            key, value = cache.update(key, value, cache_index)

        is_causal = attention_mask is None and memory_states is None and query_length > 1
        if memory_states is not None:
            # (slots, hidden) -> (batch, kv_heads, slots, head_dim), prepended to the sequence's keys.
            num_slots = memory_states.shape[0]
            memory_key = self.k_proj(memory_states).view(1, num_slots, -1, self.head_dim).transpose(1, 2)
            memory_value = self.v_proj(memory_states).view(1, num_slots, -1, self.head_dim).transpose(1, 2)
            key = torch.cat([memory_key.expand(batch_size, -1, -1, -1).to(key.dtype), key], dim=2)
            value = torch.cat([memory_value.expand(batch_size, -1, -1, -1).to(value.dtype), value], dim=2)
            if attention_mask is None:
                past_length = key.shape[2] - num_slots - query_length
                attention_mask = build_attention_mask(None, query_length, past_length, hidden_states.device)
            memory_columns = memory_mask[None, None, None, :].expand(
                attention_mask.shape[0], 1, query_length, -1
            )
            attention_mask = torch.cat(
                [memory_columns, attention_mask.expand(-1, -1, query_length, -1)], dim=-1
            )

        attn_output = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=self.config.attention_dropout if self.training else 0.0,
            is_causal=is_causal,
            scale=self.scaling,
            enable_gqa=self.num_heads != self.num_key_value_heads,
        )
        attn_output = attn_output.transpose(1, 2).reshape(batch_size, query_length, -1)
        return self.o_proj(self.attn_sub_norm(attn_output))


class GenesisMLP(nn.Module):
    """Gated MLP, down_proj(act(gate_proj(x)) * up_proj(x)), with an optional BitNet sub-norm before down_proj."""

    def __init__(self, config: GenesisConfig):
        super().__init__()
        self.gate_proj = make_bitlinear(config, config.hidden_size, config.intermediate_size)
        self.up_proj = make_bitlinear(config, config.hidden_size, config.intermediate_size)
        self.down_proj = make_bitlinear(config, config.intermediate_size, config.hidden_size)
        self.act_fn = ACT2FN[config.hidden_act]
        self.ffn_sub_norm = (
            GenesisRMSNorm(config.intermediate_size, eps=config.rms_norm_eps)
            if config.use_sub_norms
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.ffn_sub_norm(self.act_fn(self.gate_proj(x)) * self.up_proj(x)))


class GenesisDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm decoder block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GenesisConfig):
        super().__init__()
        self.self_attn = GenesisAttention(config)
        self.mlp = GenesisMLP(config)
        self.input_layernorm = GenesisRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = GenesisRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        cache_index: int = 0,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        memory_states = self.input_layernorm(memory) if memory is not None else None
        hidden_states = hidden_states + self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            cache=cache,
            cache_index=cache_index,
            memory_states=memory_states,
            memory_mask=memory_mask,
        )
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


@dataclass
class GenesisModelOutput(BaseModelOutputWithPast):
    """`BaseModelOutputWithPast` plus what the multi-token-prediction heads need.

    Args:
        trunk_hidden_state: the last decoder block's output before the final norm, `(batch, seq, hidden)`.
        position_embeddings: the RoPE `(cos, sin)` pair of the current positions.
        attention_mask: the boolean SDPA mask used by the trunk, or `None` for plain causal attention.
    """

    trunk_hidden_state: torch.Tensor | None = None
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None
    attention_mask: torch.Tensor | None = None


@dataclass
class GenesisCausalLMOutput(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus the multi-token-prediction outputs.

    Args:
        mtp_logits: one `(batch, seq, vocab)` tensor per MTP head; head k (1-based) at position t predicts
            token t + 1 + k. Computed only when `labels` are given or `return_mtp_logits=True`.
        loss_main: cross-entropy of the main head (next token).
        loss_mtp: `(mtp_num_heads,)` cross-entropy of each MTP head.
    """

    mtp_logits: tuple[torch.Tensor, ...] | None = None
    loss_main: torch.Tensor | None = None
    loss_mtp: torch.Tensor | None = None


class GenesisPreTrainedModel(PreTrainedModel):
    config: GenesisConfig
    config_class = GenesisConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GenesisDecoderLayer"]
    _supports_sdpa = True
    _can_compile_fullgraph = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Linear layers (BitLinear included), embeddings and norms get transformers' defaults:
        # N(0, initializer_range) weights and unit norms. BitLinear's absmean scale makes its ternary
        # pattern independent of that std, so the std only sets the latent-weight magnitude against
        # the learning rate, i.e. how fast ternary values flip.
        super()._init_weights(module)
        if isinstance(module, GenesisModel):
            init.zeros_(module.memory)
            init.zeros_(module.memory_write_step)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` writes `auto_map` only for the saved class and AutoConfig;
        # add all three so `AutoModel` also resolves the Hub copy.
        self.config.auto_map = {
            "AutoConfig": "configuration_genesis.GenesisConfig",
            "AutoModel": "modeling_genesis.GenesisModel",
            "AutoModelForCausalLM": "modeling_genesis.GenesisForCausalLM",
        }
        return super().save_pretrained(save_directory, *args, **kwargs)


class GenesisModel(GenesisPreTrainedModel):
    """The decoder trunk: embeddings, `num_hidden_layers` blocks run `num_loops` times, final norm."""

    def __init__(self, config: GenesisConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([GenesisDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = GenesisRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = GenesisRotaryEmbedding(config=config)
        # Surprise memory: written by the trainer, saved with the weights. A slot never written is all
        # zero and masked out, so an empty memory leaves the logits unchanged.
        self.register_buffer("memory", torch.zeros(config.memory_slots, config.hidden_size), persistent=True)
        self.register_buffer(
            "memory_write_step", torch.zeros(config.memory_slots, dtype=torch.long), persistent=True
        )
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> GenesisModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache()
        if use_cache and isinstance(cache, DynamicCache):
            # Each (loop, layer) pair has its own slot. `generate()` sizes its cache from
            # `num_hidden_layers` alone, so add the slots of the extra loops.
            # NOTE: static caches keep `num_hidden_layers` slots, so looping needs a dynamic cache.
            missing = self.config.num_loops * self.config.num_hidden_layers - len(cache.layers)
            cache.layers.extend(DynamicLayer() for _ in range(missing))

        query_length = inputs_embeds.shape[1]
        past_length = cache.get_seq_length() if cache is not None else 0
        if attention_mask is not None and attention_mask.ndim != 2:
            raise ValueError(
                f"`attention_mask` must be 2-D (batch, past + current tokens), got {attention_mask.ndim}-D."
            )
        if position_ids is None:
            if attention_mask is not None:
                # Left padding: positions count real tokens only, so a padded row matches its unpadded self.
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -query_length:]
            else:
                position_ids = torch.arange(
                    past_length, past_length + query_length, device=inputs_embeds.device
                )[None]
        # A mask without padding is plain causal attention, which SDPA runs faster with `is_causal`.
        if attention_mask is not None and not torch.compiler.is_compiling() and bool(attention_mask.all()):
            attention_mask = None
        mask = None
        if attention_mask is not None or past_length > 0:
            mask = build_attention_mask(attention_mask, query_length, past_length, inputs_embeds.device)

        memory, memory_mask = None, None
        if self.config.memory_slots > 0:
            memory = self.memory.to(inputs_embeds.dtype)
            memory_mask = self.memory.abs().sum(dim=-1) > 0

        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        hidden_states = inputs_embeds
        all_hidden_states = [hidden_states] if output_hidden_states else None
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        num_layers = len(self.layers)
        for loop in range(self.config.num_loops):
            for index, decoder_layer in enumerate(self.layers):
                if all_hidden_states is not None and (loop, index) != (0, 0):
                    all_hidden_states.append(hidden_states)
                hidden_states = decoder_layer(
                    hidden_states,
                    position_embeddings=position_embeddings,
                    attention_mask=mask,
                    cache=cache if use_cache else None,
                    cache_index=loop * num_layers + index,
                    memory=memory,
                    memory_mask=memory_mask,
                )

        last_hidden_state = self.norm(hidden_states)
        if all_hidden_states is not None:
            # As in transformers' Llama: the embeddings, every block's input, then the normed output.
            all_hidden_states.append(last_hidden_state)
        return GenesisModelOutput(
            last_hidden_state=last_hidden_state,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden_states) if all_hidden_states is not None else None,
            trunk_hidden_state=hidden_states,
            position_embeddings=position_embeddings,
            attention_mask=mask,
        )


def shifted_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    shift: int,
    num_items_in_batch: torch.Tensor | int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of `logits[:, t]` against `labels[:, t + shift]`, ignoring -100 and positions past the end.

    Args:
        logits: `(batch, seq, vocab)`.
        labels: `(batch, seq)` token ids, -100 where no loss is taken.
        shift: how many tokens ahead the logits predict (1 for the main head, 1 + k for MTP head k).
        num_items_in_batch: divide the summed loss by this count instead of taking the mean.
        reduction: `"mean"` (or sum / `num_items_in_batch`), or `"none"` for the `(batch, seq)` per-token loss,
            0 where ignored.
    """
    targets = F.pad(labels[:, shift:], (0, shift), value=-100)
    per_token = F.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="none"
    )
    per_token = per_token.view(targets.shape)
    if reduction == "none":
        return per_token
    if num_items_in_batch is not None:
        return per_token.sum() / num_items_in_batch
    return per_token.sum() / (targets != -100).sum().clamp(min=1)


class GenesisForCausalLM(GenesisPreTrainedModel, GenerationMixin):
    """Genesis trunk with the `lm_head` and `mtp_num_heads` multi-token-prediction heads (arXiv 2404.19737).

    The training loss is CE(t+1) + mtp_loss_weight * mean_k CE(t+1+k). The MTP heads exist for training
    (and speculative decoding); `generate()` uses the main head only.
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: GenesisConfig):
        super().__init__(config)
        self.model = GenesisModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.mtp_heads = nn.ModuleList([GenesisDecoderLayer(config) for _ in range(config.mtp_num_heads)])
        self.post_init()

    def save_packed(self, save_directory, **kwargs) -> None:
        """Save an inference copy whose BitLinear weights are packed base-3, five per byte.

        The copy loads with `from_pretrained` like any checkpoint and gives the logits of this model's
        fake-quantized forward. Keyword arguments go to `save_pretrained`.
        """
        config = copy.deepcopy(self.config)
        config.packed_weights = True
        state_dict = {}
        bitlinear_names = set()
        for name, module in self.named_modules():
            if isinstance(module, BitLinear):
                packed, scale = module.pack()
                state_dict[f"{name}.weight_packed"], state_dict[f"{name}.weight_scale"] = packed, scale
                bitlinear_names.add(f"{name}.weight")
        for name, tensor in self.state_dict().items():
            if name not in bitlinear_names:
                state_dict[name] = tensor
        packed_model = type(self)(config).to(self.device)
        packed_model.load_state_dict(state_dict, strict=True)
        packed_model.save_pretrained(save_directory, **kwargs)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    def compute_mtp_logits(self, outputs: GenesisModelOutput) -> tuple[torch.Tensor, ...]:
        """Run each MTP head on the trunk's last hidden state, then the shared final norm and `lm_head`."""
        return tuple(
            self.lm_head(
                self.model.norm(
                    head(
                        outputs.trunk_hidden_state,
                        position_embeddings=outputs.position_embeddings,
                        attention_mask=outputs.attention_mask,
                    )
                )
            )
            for head in self.mtp_heads
        )

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        return_mtp_logits: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> GenesisCausalLMOutput:
        r"""
        Args:
            labels: `(batch, seq)` token ids; the loss is taken on `labels[:, t + 1]` at position t (the Trainer
                passes `labels = input_ids`), with -100 where no loss is taken.
            logits_to_keep: if positive, compute logits for the last `logits_to_keep` positions only
                (generation needs just the last one).
            return_mtp_logits: compute the MTP heads' logits even without `labels`.
            num_items_in_batch: number of target tokens in the whole (accumulated) batch; the summed losses are
                divided by it, as transformers' `ForCausalLMLoss` does.
        """
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state
        if logits_to_keep > 0:
            hidden_states = hidden_states[:, -logits_to_keep:]
        logits = self.lm_head(hidden_states)

        mtp_logits = None
        if len(self.mtp_heads) > 0 and (labels is not None or return_mtp_logits):
            mtp_logits = self.compute_mtp_logits(outputs)

        loss = loss_main = loss_mtp = None
        if labels is not None:
            loss_main = shifted_cross_entropy(logits, labels, 1, num_items_in_batch)
            loss = loss_main
            if mtp_logits:
                loss_mtp = torch.stack(
                    [
                        shifted_cross_entropy(head_logits, labels, 2 + k, num_items_in_batch)
                        for k, head_logits in enumerate(mtp_logits)
                    ]
                )
                loss = loss_main + self.config.mtp_loss_weight * loss_mtp.mean()

        return GenesisCausalLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            mtp_logits=mtp_logits,
            loss_main=loss_main,
            loss_mtp=loss_mtp,
        )


__all__ = ["GenesisForCausalLM", "GenesisModel", "GenesisPreTrainedModel"]
