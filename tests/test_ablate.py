# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tests of the ablation variants, evaluation, result summaries and a resumed smoke run of `scripts/ablate.py`."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG

from modeling_genesis import GenesisConfig
from trainer_genesis.ablation import (
    TECHNIQUES,
    HeldOutEvaluator,
    ablation_variants,
    build_model,
    dense_adamw,
    dense_config_for,
    library_defaults,
    prepare_corpus,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_ablate_script():
    spec = importlib.util.spec_from_file_location("ablate_script", REPO_ROOT / "scripts" / "ablate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_result(variant: str, seed: int, losses: list[float], corpus: str = "text") -> dict:
    curve = [
        {"step": 10 * (i + 1), "tokens": 100 * (i + 1), "loss": loss, "bits_per_byte": loss / 2}
        for i, loss in enumerate(losses)
    ]
    return {
        "variant": {"name": variant, "description": variant},
        "seed": seed,
        "corpus": corpus,
        "curve": curve,
        "final": curve[-1],
        "train_tokens": 100 * len(losses),
        "train_seconds": 2.0,
        "events": {},
    }


def test_ablation_variants_cover_every_technique():
    names = [variant.name for variant in ablation_variants()]
    assert len(names) == len(set(names))
    assert names[:3] == ["dense-adamw", "ternary-adamw", "full"]
    for technique in TECHNIQUES:
        expected = f"full-no-{technique.name}" if technique.default_on else f"full-plus-{technique.name}"
        assert expected in names, technique.name
    other_ste = "identity" if GenesisConfig().weight_ste == "clipped" else "clipped"
    assert f"full-{other_ste}-ste" in names


def test_dense_model_has_genesis_shapes():
    config_kwargs = {**TINY_CONFIG, "mtp_num_heads": 0}
    dense = build_model(dense_adamw(), config_kwargs, seed=0)
    genesis = build_model(ablation_variants()[1], config_kwargs, seed=0)
    genesis_shapes = {name: parameter.shape for name, parameter in genesis.named_parameters()}
    assert type(dense).__name__ == "LlamaForCausalLM"
    for name, parameter in dense.named_parameters():
        assert genesis_shapes[name] == parameter.shape, name
    assert (
        dense_config_for(GenesisConfig(**config_kwargs)).num_key_value_heads
        == TINY_CONFIG["num_key_value_heads"]
    )


def test_held_out_evaluator_matches_cross_entropy():
    model = build_model(dense_adamw(), TINY_CONFIG, seed=0).eval()
    input_ids = torch.randint(
        0, TINY_CONFIG["vocab_size"], (5, 12), generator=torch.Generator().manual_seed(0)
    )
    byte_lengths = np.full(TINY_CONFIG["vocab_size"], 2, dtype=np.int64)
    result = HeldOutEvaluator(input_ids, byte_lengths, batch_size=2).evaluate(model)
    with torch.no_grad():
        expected = model(input_ids=input_ids, labels=input_ids).loss.item()
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["bits_per_byte"] == pytest.approx(expected / (2 * math.log(2)), rel=1e-5)
    assert not model.training


def test_library_defaults_name_every_switch():
    defaults = library_defaults()
    for technique in TECHNIQUES:
        assert defaults[technique.switch] == technique.library_default, technique.name
    assert defaults["weight_ste"] == GenesisConfig().weight_ste
    assert "learning_rate" not in defaults
    assert json.loads(json.dumps(defaults)) == defaults


def test_prepare_corpus_rejects_changed_cache(tmp_path):
    (tmp_path / "corpus.json").write_text(json.dumps({"vocab_size": 512}))
    with pytest.raises(ValueError, match="new --output_dir"):
        prepare_corpus("text", None, vocab_size=1024, block_size=64, eval_blocks=4, cache_dir=tmp_path)


def test_tokens_to_dense_uses_same_seed_target():
    ablate = load_ablate_script()
    results = [
        make_result("dense-adamw", 0, [5.0, 4.0]),
        make_result("dense-adamw", 1, [5.0, 3.0]),
        make_result("full", 0, [3.9, 3.5]),
        make_result("full", 1, [4.0, 3.5]),
    ]
    rows = {row.variant: row for row in ablate.summarise(results, "dense-adamw")}
    assert rows["dense-adamw"].tokens_to_dense == [200, 200]
    assert rows["full"].tokens_to_dense == [100, None]
    assert rows["full"].loss == [3.5, 3.5]
    assert ablate.tokens_to_reach([{"tokens": 5, "loss": 2.0}], target=1.0) is None


def test_paired_effect_pairs_corpus_and_seed():
    ablate = load_ablate_script()
    results = [
        make_result("full", 0, [3.0]),
        make_result("full-no-grokfast", 0, [3.2]),
        make_result("full", 1, [3.1]),
        make_result("full-no-grokfast", 1, [3.0]),
        make_result("full", 0, [2.0], corpus="other"),
    ]
    effect = ablate.paired_effect(results, "full", "full-no-grokfast")
    assert effect.pairs == 2
    assert effect.lowered == 1
    assert effect.mean == pytest.approx((-0.2 + 0.1) / 2)
    assert effect.standard_error == pytest.approx(0.15)
    assert ablate.paired_effect(results, "full", "full-no-mtp") is None


def test_ablate_smoke_stores_and_reuses_results(tmp_path):
    ablate = load_ablate_script()
    output_dir, page = tmp_path / "runs", tmp_path / "ABLATION.md"
    argv = ["--smoke", "--output_dir", str(output_dir), "--page", str(page), "--seeds", "0"]
    ablate.main([*argv, "--variants", "dense-adamw", "full"])
    results = sorted((output_dir / "stdlib-json" / "results").glob("*.json"))
    assert [path.name for path in results] == ["dense-adamw-seed0.json", "full-seed0.json"]
    stored = {path.name: path.read_text() for path in results}
    result = json.loads(stored["full-seed0.json"])
    assert result["final"]["step"] == 6
    assert math.isfinite(result["final"]["loss"])
    assert result["train_tokens"] == 6 * 2 * 32

    ablate.main([*argv, "--variants", "dense-adamw", "full"])
    assert {path.name: path.read_text() for path in results} == stored

    # A stored Genesis run whose library defaults differ from today's is trained again.
    changed = json.loads(stored["full-seed0.json"])
    changed["library_defaults"]["use_grokfast"] = not changed["library_defaults"]["use_grokfast"]
    results[1].write_text(json.dumps(changed))
    ablate.main([*argv, "--variants", "full"])
    assert json.loads(results[1].read_text())["library_defaults"] == library_defaults()

    ablate.main([*argv, "--variants", "dense-adamw", "--learning_rate", "0.001"])
    assert (results[0]).read_text() != stored["dense-adamw-seed0.json"]

    # The page keeps the newest settings only: the full run made with the old LR is left off.
    text = page.read_text()
    assert "| `dense-adamw` |" in text
    assert "| `full` |" not in text
    assert text.count("scripts/ablate.py --smoke") == 1
    assert len((output_dir / "commands.jsonl").read_text().splitlines()) == 4


def test_command_shows_data_file_names(tmp_path):
    ablate = load_ablate_script()
    data = tmp_path / "corpus.txt"
    data.write_text("abc")
    argv = ["--train_files", str(data), "--seeds", "0", "--note", "a b"]
    assert ablate.command_with_file_names(argv) == [
        "--train_files",
        "corpus.txt",
        "--seeds",
        "0",
        "--note",
        "a b",
    ]
    assert ablate.describe_file(str(data)).startswith("`corpus.txt`: 3 bytes, SHA-256 ba7816bf")
