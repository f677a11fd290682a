# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tests for the pretraining data: embedded corpus, local files, packing and per-process shards."""

import json
from pathlib import Path

import datasets
import pytest

from trainer_genesis.data import (
    DataArguments,
    load_local_files,
    load_stdlib_corpus,
    pack_dataset,
    shard_for_process,
    split_files_by_hash,
    stdlib_source_files,
)
from trainer_genesis.tokenization import train_byte_level_bpe


def write_fake_stdlib(root: Path, num_modules: int = 20) -> None:
    """Lay out a small standard-library-like folder with test folders that must be excluded."""
    for index in range(num_modules):
        (root / f"module_{index:02d}.py").write_text(f"def function_{index}(x):\n    return x + {index}\n")
    for folder in ("test", "idlelib", "json/tests", "site-packages/pkg", "json/__pycache__"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "excluded.py").write_text("raise SystemExit\n")
    (root / "json" / "decoder.py").write_text("import re\n")
    (root / "empty.py").write_text("\n")


@pytest.fixture
def tokenizer():
    texts = [f"def function_{index}(x):\n    return x + {index}\n" for index in range(50)]
    return train_byte_level_bpe(texts * 4, vocab_size=300)


def test_stdlib_files_exclude_tests(tmp_path):
    write_fake_stdlib(tmp_path)
    files = stdlib_source_files(tmp_path)
    names = [path.as_posix() for path in files]
    assert "json/decoder.py" in names
    assert not [name for name in names if "excluded" in name]
    assert names == sorted(names)


def test_stdlib_files_of_interpreter_exclude_tests():
    files = stdlib_source_files()
    assert len(files) > 100
    assert not [path for path in files if "test" in path.parts[:-1] or "tests" in path.parts[:-1]]


def test_split_by_hash_is_deterministic():
    files = [Path(f"pkg/module_{index}.py") for index in range(100)]
    train, validation = split_files_by_hash(files, 0.05)
    train_again, validation_again = split_files_by_hash(list(reversed(files)), 0.05)
    assert len(validation) == 5
    assert set(validation) == set(validation_again)
    assert set(train) == set(train_again)
    assert not set(train) & set(validation)


def test_stdlib_corpus_splits_by_file(tmp_path):
    write_fake_stdlib(tmp_path)
    corpus = load_stdlib_corpus(0.1, root=tmp_path)
    train_paths = set(corpus["train"]["path"])
    validation_paths = set(corpus["validation"]["path"])
    assert len(validation_paths) == 3  # ceil(0.1 x 22 files)
    assert not train_paths & validation_paths
    assert "empty.py" not in train_paths | validation_paths
    assert corpus["train"][0]["text"].startswith("def function_") or corpus["train"][0]["text"].startswith(
        "import"
    )


def test_stdlib_corpus_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="standard library's .py source"):
        load_stdlib_corpus(0.1, root=tmp_path)


def test_local_text_files_hold_out_tail(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(f"paragraph {index}\nline two" for index in range(20)))
    raw = load_local_files(DataArguments(train_files=[str(path)], validation_fraction=0.1))
    assert len(raw["train"]) == 18
    assert len(raw["validation"]) == 2
    assert raw["validation"][0]["text"].startswith("paragraph 18")
    assert "\n" in raw["train"][0]["text"]


def test_local_jsonl_and_parquet(tmp_path):
    records = [{"text": f"record {index}", "id": index} for index in range(10)]
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps(record) for record in records))
    parquet = tmp_path / "data.parquet"
    datasets.Dataset.from_list(records).to_parquet(str(parquet))
    for path in (jsonl, parquet):
        raw = load_local_files(DataArguments(train_files=[str(path)], validation_files=[str(path)]))
        assert raw["train"]["text"] == [record["text"] for record in records]
        assert len(raw["validation"]) == 10


def test_local_file_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data file not found: .*absent.txt"):
        load_local_files(DataArguments(train_files=[str(tmp_path / "absent.txt")]))


def test_local_file_empty_raises(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with pytest.raises(ValueError, match="Data file is empty: .*empty.txt"):
        load_local_files(DataArguments(train_files=[str(path)]))


def test_local_file_extension_unsupported(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text\nhello\n")
    with pytest.raises(ValueError, match="Unsupported data file extension '.csv'"):
        load_local_files(DataArguments(train_files=[str(path)]))


def test_pack_joins_texts_with_eos(tokenizer):
    texts = datasets.Dataset.from_list(
        [{"text": "def f(x):\n    return x\n", "path": str(index)} for index in range(30)]
    )
    packed = pack_dataset(texts, tokenizer, block_size=16)
    one_text = tokenizer("def f(x):\n    return x\n", add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    stream = [token for block in packed["input_ids"] for token in block]
    assert packed.column_names == ["input_ids", "labels"]
    assert all(len(block) == 16 for block in packed["input_ids"])
    assert list(packed["labels"]) == list(packed["input_ids"])
    assert len(packed) == (30 * len(one_text)) // 16
    assert stream == (one_text * 30)[: len(stream)]


def test_pack_streaming_dataset(tokenizer):
    records = [{"text": f"def function_{index}(x):\n    return x\n"} for index in range(40)]
    stream = datasets.Dataset.from_list(records).to_iterable_dataset(num_shards=4)
    packed = list(pack_dataset(stream, tokenizer, block_size=8))
    assert packed
    assert all(len(example["input_ids"]) == 8 for example in packed)


def test_shards_are_disjoint():
    texts = datasets.Dataset.from_list([{"text": f"text {index}"} for index in range(11)])
    shards = [list(shard_for_process(texts, rank, 2)["text"]) for rank in range(2)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(list(texts["text"]))
    assert shard_for_process(texts, 0, 1) is texts


def test_streaming_shards_are_disjoint():
    records = [{"text": f"text {index}"} for index in range(12)]
    stream = datasets.Dataset.from_list(records).to_iterable_dataset(num_shards=4)
    shards = [[example["text"] for example in shard_for_process(stream, rank, 2)] for rank in range(2)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(record["text"] for record in records)


def test_data_arguments_reject_invalid():
    with pytest.raises(ValueError, match="--text_sample_by must be"):
        DataArguments(text_sample_by="sentence")
    with pytest.raises(ValueError, match="either --dataset_name or --train_files"):
        DataArguments(dataset_name="name", train_files=["a.txt"])
    with pytest.raises(ValueError, match="--validation_fraction must be in"):
        DataArguments(validation_fraction=1.5)


def test_pack_stream_with_unknown_columns(tokenizer):
    def generate():
        for index in range(40):
            yield {"text": f"def function_{index}(x):\n    return x\n", "index": index}

    stream = datasets.IterableDataset.from_generator(generate)
    packed = list(pack_dataset(stream, tokenizer, block_size=8))
    assert packed
    assert set(packed[0]) == {"input_ids", "labels"}
