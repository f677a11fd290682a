# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tests for presets, config overrides, script defaults and the input checks that run before training."""

import json

import datasets
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from modeling_genesis import GenesisConfig
from trainer_genesis.presets import MODEL_PRESETS, build_config, parse_config_overrides
from trainer_genesis.pretrain import PRETRAIN_DEFAULTS, build_trainer, make_parser, set_cpu_threads
from trainer_genesis.tokenization import train_byte_level_bpe

# A model and data small enough that each check below runs in about a second.
TINY_OVERRIDES = (
    "hidden_size=32,intermediate_size=64,num_hidden_layers=1,num_attention_heads=2,vocab_size=300"
)


def parse(tmp_path, *argv: str):
    return make_parser().parse_args_into_dataclasses(
        args=["--output_dir", str(tmp_path / "out"), "--disable_tqdm", "true", *argv]
    )


def build(tmp_path, *argv: str):
    return build_trainer(*parse(tmp_path, *argv))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(
        "\n\n".join(f"def function_{index}(x):\n    return x * {index}\n" for index in range(200))
    )
    return str(path)


def test_presets_build_valid_configs():
    for name in MODEL_PRESETS:
        config = build_config(name)
        assert isinstance(config, GenesisConfig)
        assert config.vocab_size == 8192


def test_overrides_are_typed():
    parsed = parse_config_overrides(
        "num_hidden_layers=6, mtp_loss_weight=0.5,weight_ste=identity,use_sub_norms=false,"
        "activation_bits=none,tie_word_embeddings=1"
    )
    assert parsed == {
        "num_hidden_layers": 6,
        "mtp_loss_weight": 0.5,
        "weight_ste": "identity",
        "use_sub_norms": False,
        "activation_bits": None,
        "tie_word_embeddings": True,
    }
    assert isinstance(parsed["mtp_loss_weight"], float)
    assert build_config("tiny", "num_hidden_layers=2").num_hidden_layers == 2


def test_override_unknown_key_raises():
    with pytest.raises(
        ValueError, match=r"Unknown config override key 'num_layers'\. Valid keys: .*num_hidden_layers"
    ):
        build_config("tiny", "num_layers=3")


def test_override_bad_value_raises():
    with pytest.raises(
        ValueError, match="Invalid value 'many' for config field 'num_hidden_layers'; expected int"
    ):
        parse_config_overrides("num_hidden_layers=many")
    with pytest.raises(ValueError, match="Invalid config override 'num_hidden_layers'; expected key=value"):
        parse_config_overrides("num_hidden_layers")
    with pytest.raises(ValueError, match="`weight_ste` must be one of"):
        build_config("tiny", "weight_ste=sign")


def test_unknown_preset_raises():
    with pytest.raises(
        ValueError, match=r"Unknown model size preset 'huge'\. Valid presets: tiny, small, base"
    ):
        build_config("huge")


def test_unknown_preset_raises_in_build(tmp_path):
    with pytest.raises(ValueError, match="Unknown model size preset 'huge'"):
        build(tmp_path, "--model_size", "huge")


def test_unknown_override_raises_in_build(tmp_path):
    with pytest.raises(ValueError, match="Unknown config override key 'depth'"):
        build(tmp_path, "--config_overrides", "depth=3")


def test_script_defaults_apply(tmp_path):
    _, data_args, _, training_args = make_parser().parse_args_into_dataclasses(args=[])
    assert training_args.output_dir == PRETRAIN_DEFAULTS["output_dir"]
    assert training_args.max_steps == PRETRAIN_DEFAULTS["max_steps"]
    assert training_args.learning_rate == PRETRAIN_DEFAULTS["learning_rate"]
    assert data_args.dataset_name is None
    assert data_args.train_files is None
    _, _, _, overridden = parse(tmp_path, "--max_steps", "7")
    assert overridden.max_steps == 7


def test_block_size_above_positions_raises(tmp_path):
    with pytest.raises(
        ValueError, match=r"--block_size 2048 is larger than the model's max_position_embeddings=1024"
    ):
        build(tmp_path, "--block_size", "2048")


def test_streaming_without_max_steps_raises(tmp_path):
    with pytest.raises(
        ValueError, match="A streamed dataset \\(some/dataset\\) has no length.*positive --max_steps"
    ):
        build(tmp_path, "--dataset_name", "some/dataset", "--max_steps", "-1")


def test_missing_corpus_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data file not found: .*absent.txt"):
        build(tmp_path, "--train_files", str(tmp_path / "absent.txt"))


def test_empty_corpus_raises(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="Data file is empty: .*empty.txt"):
        build(tmp_path, "--train_files", str(empty))


def test_blank_corpus_raises(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n\n")
    with pytest.raises(ValueError, match="The training files contain 0 non-empty texts"):
        build(tmp_path, "--train_files", str(blank), "--config_overrides", TINY_OVERRIDES)


def test_corpus_shorter_than_block_raises(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("x = 1\n\ny = 2\n\nz = 3\n")
    with pytest.raises(ValueError, match="The train split yields no block of 64 tokens.*lower --block_size"):
        build(
            tmp_path, "--train_files", str(short), "--block_size", "64", "--config_overrides", TINY_OVERRIDES
        )


def test_tokenizer_larger_than_vocab_raises(tmp_path, text_file):
    words = " ".join(f"name_{index}" for index in range(2000))
    tokenizer: PreTrainedTokenizerFast = train_byte_level_bpe([words] * 3, vocab_size=400)
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    with pytest.raises(ValueError, match=r"has \d+ tokens, more than the model's vocab_size=300"):
        build(
            tmp_path,
            "--train_files",
            text_file,
            "--tokenizer_name",
            str(tmp_path / "tokenizer"),
            "--config_overrides",
            TINY_OVERRIDES,
        )


def test_build_prepares_blocks(tmp_path, text_file):
    run = build(
        tmp_path, "--train_files", text_file, "--block_size", "32", "--config_overrides", TINY_OVERRIDES
    )
    trainer = run.trainer
    assert len(run.tokenizer) == 300
    assert trainer.model.config.eos_token_id == run.tokenizer.eos_token_id
    assert len(trainer.train_dataset) > 0
    assert len(trainer.train_dataset[0]["input_ids"]) == 32
    assert (tmp_path / "out" / "tokenizer.json").is_file()
    assert run.sample_prompt.startswith("def function_")


def test_cpu_threads_follow_option(tmp_path, monkeypatch):
    previous = torch.get_num_threads()
    try:
        _, _, run_args, training_args = parse(tmp_path, "--cpu_threads", "1")
        set_cpu_threads(run_args, training_args)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")
        _, _, run_args, training_args = parse(tmp_path)
        set_cpu_threads(run_args, training_args)
        assert torch.get_num_threads() == 1  # fewer cores than processes still leaves one thread each
    finally:
        torch.set_num_threads(previous)


def test_streamed_dataset_trains(tmp_path):
    """A dataset folder passed as --dataset_name is streamed; its first texts become the held-out split."""
    folder = tmp_path / "stream"
    folder.mkdir()
    lines = [
        json.dumps({"text": f"def function_{index}(x):\n    return x * {index}\n"}) for index in range(300)
    ]
    (folder / "train.jsonl").write_text("\n".join(lines))
    run = build(
        tmp_path,
        "--dataset_name",
        str(folder),
        "--streaming_validation_texts",
        "20",
        "--block_size",
        "16",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--eval_strategy",
        "no",
        "--config_overrides",
        TINY_OVERRIDES,
    )
    assert isinstance(run.trainer.train_dataset, datasets.IterableDataset)
    assert len(run.trainer.eval_dataset) > 0
    assert run.sample_prompt == "def function_0(x):"
    assert run.trainer.train().global_step == 2
