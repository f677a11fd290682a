import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForCausalLM

from modeling_genesis import GenesisConfig, GenesisForCausalLM, GenesisModel
from modeling_genesis.bitlinear import BitLinear


def tiny_config(**overrides) -> GenesisConfig:
    values = dict(
        vocab_size=99,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    values.update(overrides)
    return GenesisConfig(**values)


def tiny_model(**overrides) -> GenesisForCausalLM:
    torch.manual_seed(0)
    return GenesisForCausalLM(tiny_config(**overrides))


def test_linear_layers_in_blocks_and_heads_are_ternary():
    model = tiny_model()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            is_block = name.startswith(("model.layers.", "mtp_heads."))
            assert isinstance(module, BitLinear) == is_block, name
    assert not isinstance(model.lm_head, BitLinear)


def test_loss_matches_hand_computation():
    model = tiny_model(mtp_loss_weight=0.5)
    input_ids = torch.randint(3, 99, (2, 12))
    labels = input_ids.clone()
    labels[0, :3] = -100
    out = model(input_ids=input_ids, labels=labels)

    def cross_entropy(logits, shift):
        return F.cross_entropy(
            logits[:, :-shift].reshape(-1, 99), labels[:, shift:].reshape(-1), ignore_index=-100
        )

    main = cross_entropy(out.logits, 1)
    heads = [cross_entropy(head_logits, 2 + k) for k, head_logits in enumerate(out.mtp_logits)]
    expected = main + 0.5 * torch.stack(heads).mean()

    assert len(out.mtp_logits) == 2
    torch.testing.assert_close(out.loss_main, main)
    torch.testing.assert_close(out.loss_mtp, torch.stack(heads))
    torch.testing.assert_close(out.loss, expected)


def test_mtp_heads_off_gives_plain_loss():
    model = tiny_model(mtp_num_heads=0)
    input_ids = torch.randint(3, 99, (2, 12))
    out = model(input_ids=input_ids, labels=input_ids)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, 99), input_ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    assert out.mtp_logits is None


def test_num_items_in_batch_divides_summed_loss():
    model = tiny_model(mtp_num_heads=0)
    input_ids = torch.randint(3, 99, (2, 12))
    mean_loss = model(input_ids=input_ids, labels=input_ids).loss
    summed = model(input_ids=input_ids, labels=input_ids, num_items_in_batch=1).loss
    torch.testing.assert_close(summed, mean_loss * 22)


@pytest.mark.parametrize("tie_word_embeddings", [False, True])
def test_every_parameter_receives_gradient(tie_word_embeddings):
    model = tiny_model(tie_word_embeddings=tie_word_embeddings, memory_slots=0)
    input_ids = torch.randint(3, 99, (2, 12))
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
    assert any(name.startswith("mtp_heads.") for name, _ in model.named_parameters())


def test_tied_embeddings_share_storage():
    model = tiny_model(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    untied = tiny_model(tie_word_embeddings=False)
    assert untied.lm_head.weight is not untied.model.embed_tokens.weight


def test_attention_mask_isolates_padding():
    model = tiny_model().eval()
    input_ids = torch.randint(3, 99, (1, 8))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), input_ids], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 8, dtype=torch.long)], dim=1)
    with torch.no_grad():
        alone = model(input_ids=input_ids).logits
        left_padded = model(input_ids=padded, attention_mask=mask).logits
    torch.testing.assert_close(left_padded[:, 3:], alone, atol=1e-5, rtol=1e-4)
    assert torch.isfinite(left_padded).all()


@pytest.mark.slow
def test_compile_fullgraph_has_no_graph_breaks():
    model = tiny_model()
    input_ids = torch.randint(3, 99, (2, 12))

    def train_step(ids):
        return model(input_ids=ids, labels=ids).loss

    explanation = torch._dynamo.explain(train_step)(input_ids)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1

    eager_loss = train_step(input_ids)
    eager_loss.backward()
    eager_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()

    compiled = torch.compile(train_step, fullgraph=True)
    compiled_loss = compiled(input_ids)
    compiled_loss.backward()
    torch.testing.assert_close(compiled_loss, eager_loss, atol=1e-5, rtol=1e-5)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, eager_grads[name], atol=1e-4, rtol=1e-3, msg=name)


LOAD_WITHOUT_PACKAGE = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_genesis"] = None  # importing the package now raises ImportError
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True)
    assert "modeling_genesis" not in type(model).__module__.split(".")[0], type(model).__module__
    input_ids = torch.load(sys.argv[2])
    with torch.no_grad():
        torch.save(model(input_ids=input_ids).logits, sys.argv[3])
    """
)


@pytest.mark.parametrize("tie_word_embeddings", [False, True])
def test_save_and_load_without_package(tmp_path, tie_word_embeddings):
    model = tiny_model(tie_word_embeddings=tie_word_embeddings).eval()
    model.save_pretrained(tmp_path / "model")
    auto_map = json.loads((tmp_path / "model" / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM"}
    for file in (
        "modeling_genesis.py",
        "configuration_genesis.py",
        "bitlinear.py",
        "packing.py",
        "model.safetensors",
    ):
        assert (tmp_path / "model" / file).exists(), file

    input_ids = torch.randint(3, 99, (2, 10))
    torch.save(input_ids, tmp_path / "input_ids.pt")
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
    script = tmp_path / "load.py"
    script.write_text(LOAD_WITHOUT_PACKAGE)
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "model"),
            str(tmp_path / "input_ids.pt"),
            str(tmp_path / "out.pt"),
        ],
        check=True,
        cwd=tmp_path,
    )
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, atol=0, rtol=0)


def test_auto_classes_resolve_in_process(tmp_path):
    model = tiny_model().eval()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path), GenesisForCausalLM)
    assert isinstance(AutoModel.from_pretrained(tmp_path), GenesisModel)


def test_greedy_generation_with_cache_matches_without():
    model = tiny_model().eval()
    prompt = torch.randint(3, 99, (2, 5))
    cached = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=True)
    uncached = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False)
    assert cached.shape == (2, 17)
    assert torch.equal(cached, uncached)


def test_left_padded_batch_generates_each_row():
    model = tiny_model().eval()
    short = torch.randint(3, 99, (1, 3))
    long = torch.randint(3, 99, (1, 6))
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], dim=1), long])
    mask = torch.ones_like(batch)
    mask[0, :3] = 0
    together = model.generate(batch, attention_mask=mask, max_new_tokens=8, do_sample=False)
    alone_short = model.generate(short, max_new_tokens=8, do_sample=False)
    alone_long = model.generate(long, max_new_tokens=8, do_sample=False)
    assert torch.equal(together[0, 3:], alone_short[0])
    assert torch.equal(together[1], alone_long[0])


def test_old_past_key_values_name_is_accepted():
    model = tiny_model().eval()
    input_ids = torch.randint(3, 99, (1, 6))
    with torch.no_grad():
        full = model(input_ids=input_ids).logits[:, -1]
        prefix = model(input_ids=input_ids[:, :-1], use_cache=True)
        step = model(input_ids=input_ids[:, -1:], past_key_values=prefix.cache, use_cache=True).logits[:, -1]
    torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-4)


def test_loops_apply_the_same_layers_again():
    model = tiny_model(num_loops=2, mtp_num_heads=0).eval()
    input_ids = torch.randint(3, 99, (2, 7))
    with torch.no_grad():
        trunk = model.model
        hidden = trunk.embed_tokens(input_ids)
        position_ids = torch.arange(7)[None]
        position_embeddings = trunk.rotary_emb(hidden, position_ids=position_ids)
        for _ in range(2):
            for layer in trunk.layers:
                hidden = layer(hidden, position_embeddings=position_embeddings)
        expected = model.lm_head(trunk.norm(hidden))
        looped = model(input_ids=input_ids).logits
    torch.testing.assert_close(looped, expected)


def test_loops_change_the_output():
    model = tiny_model(num_loops=1).eval()
    input_ids = torch.randint(3, 99, (2, 7))
    with torch.no_grad():
        once = model(input_ids=input_ids).logits
        model.config.num_loops = 2
        twice = model(input_ids=input_ids).logits
    assert not torch.allclose(once, twice)


@pytest.mark.parametrize("memory_slots", [0, 3])
def test_looped_generation_with_cache_matches_without(memory_slots):
    model = tiny_model(num_loops=3, memory_slots=memory_slots).eval()
    if memory_slots:
        with torch.no_grad():
            model.model.memory[1] = torch.randn(32)
    prompt = torch.randint(3, 99, (2, 5))
    cached = model.generate(prompt, max_new_tokens=10, do_sample=False, use_cache=True)
    uncached = model.generate(prompt, max_new_tokens=10, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_empty_memory_leaves_logits_unchanged():
    with_memory = tiny_model(memory_slots=4).eval()
    without_memory = tiny_model(memory_slots=0).eval()
    weights = {name: value for name, value in with_memory.state_dict().items() if "memory" not in name}
    without_memory.load_state_dict(weights, strict=False)
    input_ids = torch.randint(3, 99, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(
            with_memory(input_ids=input_ids).logits, without_memory(input_ids=input_ids).logits
        )
        with_memory.model.memory[2] = torch.randn(32)
        written = with_memory(input_ids=input_ids).logits
    assert not torch.allclose(written, without_memory(input_ids=input_ids).logits)


def test_memory_round_trips_through_save(tmp_path):
    model = tiny_model(memory_slots=4).eval()
    with torch.no_grad():
        model.model.memory[0] = torch.randn(32)
        model.model.memory_write_step[0] = 7
    model.save_pretrained(tmp_path)
    loaded = GenesisForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded.model.memory, model.model.memory)
    assert torch.equal(loaded.model.memory_write_step, model.model.memory_write_step)
    input_ids = torch.randint(3, 99, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)


def test_output_hidden_states_cover_every_block_run():
    model = tiny_model(num_loops=2).eval()
    input_ids = torch.randint(3, 99, (2, 5))
    with torch.no_grad():
        out = model(input_ids=input_ids, output_hidden_states=True)
        plain = model(input_ids=input_ids)
    assert len(out.hidden_states) == 2 * 2 + 1
    torch.testing.assert_close(out.hidden_states[0], model.model.embed_tokens(input_ids))
    torch.testing.assert_close(model.lm_head(out.hidden_states[-1]), plain.logits)
    assert plain.hidden_states is None
