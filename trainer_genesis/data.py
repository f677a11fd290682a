# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Pretraining data: sources, held-out split, tokenization, packing and per-process shards.

Three sources give a train and a validation split of raw texts:
- a Hub dataset by name, read with `streaming=True` (`datasets.IterableDataset`);
- local text, JSON lines or Parquet files;
- by default, the embedded corpus: the `.py` source of the running interpreter's standard library, with
  tests excluded and a held-out split by file.

`pack_dataset` tokenizes the texts, appends EOS to each and cuts the token stream into `block_size` blocks.
"""

import hashlib
import math
import sysconfig
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import datasets
import torch
from datasets.distributed import split_dataset_by_node
from transformers import PreTrainedTokenizerBase
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Top-level standard-library folders left out of the embedded corpus: test suites, the IDLE editor,
# third-party packages, demos, and bundled wheels or data without Python source worth learning.
STDLIB_EXCLUDED_DIRS = frozenset(
    {"test", "tests", "idle_test", "idlelib", "site-packages", "dist-packages", "turtledemo", "ensurepip"}
)
# File extensions read by `datasets.load_dataset` for --train_files and --validation_files.
FILE_BUILDERS = {".txt": "text", ".text": "text", ".md": "text", ".json": "json", ".jsonl": "json"}
FILE_BUILDERS[".parquet"] = "parquet"


@dataclass
class DataArguments:
    """Data source, held-out split and block settings of a pretraining run."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset to stream (`datasets.load_dataset(..., streaming=True)`). Requires --max_steps."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Configuration name of --dataset_name."}
    )
    train_files: list[str] | None = field(
        default=None,
        metadata={"help": "Local training files: .txt/.md (text), .json/.jsonl (JSON lines) or .parquet."},
    )
    validation_files: list[str] | None = field(
        default=None,
        metadata={
            "help": "Local validation files; when absent, the last --validation_fraction of the texts is held out."
        },
    )
    text_column: str = field(
        default="text", metadata={"help": "Column that holds the text in JSON, Parquet or Hub data."}
    )
    text_sample_by: str = field(
        default="paragraph",
        metadata={
            "help": "How text files are cut into texts: 'line', 'paragraph' (blank-line separated) or 'document'."
        },
    )
    block_size: int = field(
        default=256, metadata={"help": "Tokens per training block; at most max_position_embeddings."}
    )
    validation_fraction: float = field(
        default=0.02,
        metadata={
            "help": "Fraction held out for evaluation: of the files of the embedded corpus, of the texts otherwise."
        },
    )
    streaming_validation_texts: int = field(
        default=500,
        metadata={
            "help": "Texts taken from the start of a streamed dataset for evaluation when it has no validation split."
        },
    )
    tokenizer_train_texts: int = field(
        default=200_000,
        metadata={"help": "Maximum number of training texts the byte-level BPE is trained on."},
    )
    preprocessing_batch_size: int = field(
        default=1000, metadata={"help": "Texts per batch when tokenizing and packing with `datasets.map`."}
    )

    def __post_init__(self):
        if self.dataset_name is not None and self.train_files:
            raise ValueError("Pass either --dataset_name or --train_files, not both.")
        if self.validation_files and not self.train_files:
            raise ValueError("--validation_files needs --train_files.")
        if self.text_sample_by not in ("line", "paragraph", "document"):
            raise ValueError(
                f"--text_sample_by must be 'line', 'paragraph' or 'document', got {self.text_sample_by!r}."
            )
        if self.block_size < 2:
            raise ValueError(f"--block_size must be at least 2 tokens, got {self.block_size}.")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"--validation_fraction must be in (0, 1), got {self.validation_fraction}.")

    @property
    def streaming(self) -> bool:
        """Whether the training data is read as a stream (a Hub dataset)."""
        return self.dataset_name is not None

    def describe(self) -> str:
        """Return a one-line description of the data source for logs and the model card."""
        if self.dataset_name is not None:
            suffix = f" ({self.dataset_config_name})" if self.dataset_config_name else ""
            return f"Hub dataset `{self.dataset_name}`{suffix}, streamed"
        if self.train_files:
            return "local files " + ", ".join(f"`{Path(path).name}`" for path in self.train_files)
        return f"the Python {sysconfig.get_python_version()} standard library source (`.py` files, tests excluded)"


def stdlib_source_files(root: str | Path | None = None) -> list[Path]:
    """List the standard library's `.py` files under `root`, sorted by relative path.

    Args:
        root: the standard library folder; defaults to the running interpreter's (`sysconfig`).

    Returns:
        Relative paths, without files under any folder named in `STDLIB_EXCLUDED_DIRS` or `__pycache__`.
    """
    root = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    files = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if STDLIB_EXCLUDED_DIRS.intersection(relative.parts[:-1]) or "__pycache__" in relative.parts:
            continue
        files.append(relative)
    return sorted(files)


def split_files_by_hash(files: list[Path], validation_fraction: float) -> tuple[list[Path], list[Path]]:
    """Split files into train and validation lists, holding out `ceil(fraction * n)` files chosen by path hash.

    The files whose SHA-1 of the relative path sort first are held out, so the split depends only on the
    names, not on the order the file system lists them in.
    """
    by_hash = sorted(files, key=lambda path: hashlib.sha1(path.as_posix().encode("utf-8")).hexdigest())
    num_validation = math.ceil(validation_fraction * len(files))
    validation = set(by_hash[:num_validation])
    return [path for path in files if path not in validation], [path for path in files if path in validation]


def _read_records(root: Path, files: list[Path]) -> list[dict[str, str]]:
    records = []
    for relative in files:
        text = (root / relative).read_text(encoding="utf-8", errors="replace")
        if text.strip():
            records.append({"text": text, "path": relative.as_posix()})
    return records


def load_stdlib_corpus(validation_fraction: float, root: str | Path | None = None) -> datasets.DatasetDict:
    """Load the embedded corpus: the standard library's `.py` source, held out by file.

    Args:
        validation_fraction: fraction of files held out for the validation split.
        root: the standard library folder; defaults to the running interpreter's.

    Returns:
        A `DatasetDict` with `train` and `validation` splits of `{"text", "path"}` records in path order.
        Empty files are skipped.

    Raises:
        FileNotFoundError: the folder has no usable `.py` file.
    """
    root = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    files = stdlib_source_files(root)
    if len(files) < 2:
        raise FileNotFoundError(
            f"The embedded corpus needs the standard library's .py source, but {root} has {len(files)} such "
            "files (this Python may ship without source). Pass --train_files or --dataset_name instead."
        )
    train_files, validation_files = split_files_by_hash(files, validation_fraction)
    splits = {"train": _read_records(root, train_files), "validation": _read_records(root, validation_files)}
    for name, records in splits.items():
        if not records:
            raise ValueError(f"The embedded corpus has no non-empty file in its {name} split under {root}.")
    logger.info(
        "Embedded corpus: %d train and %d validation files from %s.",
        len(splits["train"]),
        len(splits["validation"]),
        root,
    )
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_list(records) for name, records in splits.items()}
    )


def _file_builder(paths: list[str]) -> str:
    builders = set()
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Data file not found: {path}")
        if Path(path).stat().st_size == 0:
            raise ValueError(f"Data file is empty: {path}")
        suffix = Path(path).suffix.lower()
        if suffix not in FILE_BUILDERS:
            raise ValueError(
                f"Unsupported data file extension {suffix!r} in {path}; use one of {sorted(FILE_BUILDERS)}."
            )
        builders.add(FILE_BUILDERS[suffix])
    if len(builders) != 1:
        raise ValueError(
            f"All data files must have one format (text, JSON lines or Parquet), got {sorted(builders)}."
        )
    return builders.pop()


def load_local_files(args: DataArguments) -> datasets.DatasetDict:
    """Load --train_files (and --validation_files, or a held-out tail of the training texts)."""
    data_files = {"train": list(args.train_files)}
    if args.validation_files:
        data_files["validation"] = list(args.validation_files)
    builder = _file_builder([path for paths in data_files.values() for path in paths])
    options = {"sample_by": args.text_sample_by, "keep_linebreaks": True} if builder == "text" else {}
    raw = datasets.load_dataset(builder, data_files=data_files, **options)
    if args.text_column in raw["train"].column_names:
        raw = raw.filter(
            lambda example: bool(example[args.text_column] and example[args.text_column].strip())
        )
    if "validation" not in raw and len(raw["train"]) < 2:
        raise ValueError(
            f"The training files contain {len(raw['train'])} non-empty texts, but holding out a validation split "
            "needs at least 2. Add text or pass --validation_files."
        )
    if "validation" not in raw:
        held_out = raw["train"].train_test_split(test_size=args.validation_fraction, shuffle=False)
        raw = datasets.DatasetDict({"train": held_out["train"], "validation": held_out["test"]})
    return raw


def load_streaming(args: DataArguments) -> datasets.IterableDatasetDict:
    """Stream --dataset_name; without a validation split, its first texts are held out for evaluation."""
    raw = datasets.load_dataset(args.dataset_name, args.dataset_config_name, streaming=True)
    if "train" not in raw:
        raise ValueError(f"Dataset {args.dataset_name!r} has no 'train' split; it has {sorted(raw)}.")
    if "validation" in raw:
        return datasets.IterableDatasetDict({"train": raw["train"], "validation": raw["validation"]})
    count = args.streaming_validation_texts
    return datasets.IterableDatasetDict(
        {"train": raw["train"].skip(count), "validation": raw["train"].take(count)}
    )


def load_raw_splits(args: DataArguments) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """Load the raw `train` and `validation` texts of the source that `args` selects."""
    if args.dataset_name is not None:
        return load_streaming(args)
    if args.train_files:
        return load_local_files(args)
    return load_stdlib_corpus(args.validation_fraction)


def iterate_texts(dataset: datasets.Dataset | datasets.IterableDataset, text_column: str, limit: int):
    """Yield at most `limit` texts of `dataset`, for tokenizer training."""
    for index, example in enumerate(dataset):
        if index >= limit:
            break
        yield example[text_column]


def check_text_column(
    dataset: datasets.Dataset | datasets.IterableDataset, text_column: str, split: str
) -> None:
    """Raise `ValueError` when the split lacks `text_column` or, for a map-style split, has no rows."""
    columns = dataset.column_names
    if columns is not None and text_column not in columns:
        raise ValueError(
            f"The {split} split has no column {text_column!r}; its columns are {columns}. Set --text_column."
        )
    if isinstance(dataset, datasets.Dataset) and len(dataset) == 0:
        raise ValueError(f"The {split} split is empty; check the data files or --validation_fraction.")


def pack_dataset(
    dataset: datasets.Dataset | datasets.IterableDataset,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    text_column: str = "text",
    batch_size: int = 1000,
) -> datasets.Dataset | datasets.IterableDataset:
    """Tokenize texts, append EOS to each, concatenate and cut into `block_size` blocks.

    Blocks are cut within each `batch_size` batch of texts, and the remainder of a batch shorter than a
    block is dropped.

    Returns:
        A dataset with `input_ids` and `labels` (a copy of `input_ids`; the model shifts them) per block.
    """
    eos_id = tokenizer.eos_token_id
    # A stream may not know its columns, so keep only the text column before blocks change the row count.
    dataset = dataset.select_columns([text_column])

    def tokenize(batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
        encoded = tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]
        return {"input_ids": [ids + [eos_id] for ids in encoded]}

    def group(batch: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
        stream = list(chain.from_iterable(batch["input_ids"]))
        usable = len(stream) - len(stream) % block_size
        blocks = [stream[start : start + block_size] for start in range(0, usable, block_size)]
        return {"input_ids": blocks, "labels": [list(block) for block in blocks]}

    tokenized = dataset.map(tokenize, batched=True, batch_size=batch_size, remove_columns=[text_column])
    return tokenized.map(group, batched=True, batch_size=batch_size)


def shard_for_process(
    dataset: datasets.Dataset | datasets.IterableDataset, rank: int, world_size: int
) -> datasets.Dataset | datasets.IterableDataset:
    """Return this process's disjoint shard of `dataset` (`datasets.distributed.split_dataset_by_node`)."""
    if world_size <= 1:
        return dataset
    return split_dataset_by_node(dataset, rank=rank, world_size=world_size)


def equalize_across_processes(dataset: datasets.Dataset) -> datasets.Dataset:
    """Cut every process's shard to the shortest shard's length, so all processes run the same number of steps."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return dataset
    length = torch.tensor(len(dataset), dtype=torch.long)
    torch.distributed.all_reduce(length, op=torch.distributed.ReduceOp.MIN)
    return dataset.select(range(int(length)))


def describe_held_out(args: DataArguments, raw: datasets.DatasetDict | datasets.IterableDatasetDict) -> str:
    """Return a one-line description of the held-out split for logs and the model card."""
    validation = raw["validation"]
    if args.dataset_name is not None:
        return f"the dataset's validation split or its first {args.streaming_validation_texts} texts"
    if args.validation_files:
        return f"{len(validation):,} texts from " + ", ".join(
            f"`{Path(path).name}`" for path in args.validation_files
        )
    if args.train_files:
        return f"the last {args.validation_fraction:.0%} of the texts ({len(validation):,} texts)"
    total = len(validation) + len(raw["train"])
    return f"{len(validation)} of {total} files ({args.validation_fraction:.0%}, chosen by SHA-1 of the path)"
