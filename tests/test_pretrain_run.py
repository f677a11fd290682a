# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""End-to-end runs of `scripts/pretrain.py` with tiny settings: one process, tinyshakespeare, two processes."""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainer_genesis.data import DataArguments, load_raw_splits, shard_for_process

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "pretrain.py"
SHAKESPEARE = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TINY_OVERRIDES = "hidden_size=32,intermediate_size=64,num_hidden_layers=2,num_attention_heads=2,vocab_size=320,mtp_num_heads=1"
TINY_ARGS = [
    "--config_overrides",
    TINY_OVERRIDES,
    "--block_size",
    "32",
    "--max_steps",
    "6",
    "--eval_steps",
    "3",
    "--logging_steps",
    "1",
    "--per_device_train_batch_size",
    "4",
    "--per_device_eval_batch_size",
    "8",
    "--sample_max_new_tokens",
    "8",
    "--disable_tqdm",
    "true",
]
# Loads the saved folder in a fresh interpreter where `modeling_genesis` cannot be imported, and generates.
LOAD_WITHOUT_PACKAGE = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_genesis"] = None
    sys.modules["trainer_genesis"] = None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = sys.argv[1]
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)
    inputs = tokenizer("def ", return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    print("CLASS", type(model).__module__, type(model).__name__)
    print("NEW_TOKENS", output.shape[1] - inputs["input_ids"].shape[1])
    """
)


def run_script(output_dir: Path, *argv: str, launcher: list[str] | None = None, timeout: int = 600):
    command = [
        *(launcher or [sys.executable]),
        str(SCRIPT),
        "--output_dir",
        str(output_dir),
        *TINY_ARGS,
        *argv,
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=environment
    )
    assert result.returncode == 0, f"pretrain.py failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny run on the embedded corpus in a subprocess, shared by the tests that inspect its output folder."""
    output_dir = tmp_path_factory.mktemp("tiny_run")
    result = run_script(output_dir, "--validation_fraction", "0.02")
    return output_dir, result


@pytest.mark.slow
def test_tiny_run_writes_model_folder(tiny_run):
    output_dir, result = tiny_run
    for name in ("model.safetensors", "config.json", "modeling_genesis.py", "configuration_genesis.py"):
        assert (output_dir / name).is_file(), name
    for name in ("tokenizer.json", "README.md", "loss_curve.png", "eval_results.json"):
        assert (output_dir / name).is_file(), name
    config = json.loads((output_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_genesis.GenesisForCausalLM"
    assert "versions: python" in result.stdout
    assert "git revision:" in result.stdout
    assert "Sample generation:" in result.stdout


@pytest.mark.slow
def test_tiny_run_reports_metrics(tiny_run):
    output_dir, _ = tiny_run
    metrics = json.loads((output_dir / "eval_results.json").read_text())
    assert metrics["eval_bits_per_byte"] > 0
    assert metrics["eval_perplexity"] > 1
    card = (output_dir / "README.md").read_text()
    assert f"| bits per byte | {metrics['eval_bits_per_byte']:.4g} |" in card
    assert "| optimizer steps | 6 |" in card
    assert "standard library" in card


@pytest.mark.slow
def test_output_loads_without_package(tiny_run, tmp_path):
    output_dir, _ = tiny_run
    script = tmp_path / "load.py"
    script.write_text(LOAD_WITHOUT_PACKAGE)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, str(script), str(output_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    assert "CLASS transformers_modules." in result.stdout
    assert "NEW_TOKENS 5" in result.stdout


@pytest.mark.slow
def test_shakespeare_train_files_run(tmp_path):
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} is not present")
    output_dir = tmp_path / "shakespeare"
    run_script(output_dir, "--train_files", str(SHAKESPEARE))
    metrics = json.loads((output_dir / "eval_results.json").read_text())
    assert 0 < metrics["eval_bits_per_byte"] < 20
    assert "`tinyshakespeare.txt`" in (output_dir / "README.md").read_text()


@pytest.mark.slow
def test_two_process_shards_disjoint(tmp_path):
    data_args = DataArguments(validation_fraction=0.02)
    raw = load_raw_splits(data_args)
    shards = [set(shard_for_process(raw["train"], rank, 2)["path"]) for rank in range(2)]
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(raw["train"]["path"])

    launcher = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
    ]
    result = run_script(
        tmp_path / "two", "--validation_fraction", "0.02", "--log_level_replica", "info", launcher=launcher
    )
    output = result.stdout + result.stderr
    total = len(raw["train"])
    for rank in range(2):
        expected = f"Process {rank} of 2 reads {len(shards[rank])} of {total} training texts."
        assert expected in output
    assert re.search(r"'eval_bits_per_byte': '?[0-9.]+", output)
    card = (tmp_path / "two" / "README.md").read_text()
    assert "(2 processes)" in card
