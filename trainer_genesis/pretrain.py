# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Build and finish the pretraining job that `scripts/pretrain.py` runs.

`build_trainer` turns parsed arguments into a ready trainer: it checks the inputs, loads the data,
trains or loads the tokenizer, packs blocks, builds the model and wires the held-out metrics.
`finish_run` evaluates, saves the model folder, writes the loss curve and the model card, and logs a
sample generation.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import accelerate
import datasets
import evaluate
import numpy as np
import torch
import transformers
from transformers import (
    AutoTokenizer,
    EvalPrediction,
    HfArgumentParser,
    PreTrainedTokenizerBase,
    default_data_collator,
)
from transformers.utils import logging

from modeling_genesis import GenesisConfig, GenesisForCausalLM
from trainer_genesis import GenesisTrainer, GenesisTrainingArguments
from trainer_genesis.data import (
    DataArguments,
    check_text_column,
    describe_held_out,
    equalize_across_processes,
    iterate_texts,
    load_raw_splits,
    pack_dataset,
    shard_for_process,
)
from trainer_genesis.metrics import BITS_PER_BYTE_PATH
from trainer_genesis.model_card import LOSS_CURVE_FILE, describe_hardware, plot_loss_curve, write_model_card
from trainer_genesis.presets import ModelArguments, build_config
from trainer_genesis.tokenization import check_vocab_fits, load_or_train_tokenizer, token_byte_lengths

logger = logging.get_logger(__name__)

# Training defaults of `scripts/pretrain.py`, applied where the command line does not set the option.
# They are tuned for the tiny preset on the embedded corpus with a 10-minute budget on 2 CPU cores.
# docs/pretrain_tuning.md lists the measurements behind them.
PRETRAIN_DEFAULTS: dict[str, Any] = {
    "output_dir": "outputs/genesis-tiny",
    "max_steps": 240,
    "learning_rate": 3e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 30,
    "weight_decay": 0.1,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 16,
    "logging_steps": 10,
    "eval_strategy": "steps",
    "eval_steps": 120,
    "save_strategy": "no",
    "report_to": "none",
    "log_level": "info",
    "seed": 42,
    "dataloader_pin_memory": torch.cuda.is_available(),
    # Without CUDA, run on CPU explicitly: only then does TrainingArguments join the processes started by
    # `accelerate launch --multi_gpu` or torchrun into one gloo process group for DDP.
    "use_cpu": not torch.cuda.is_available(),
    # torch.optim.Muon runs Newton-Schulz in bfloat16, which CPUs without bfloat16 matmul units run slowly:
    # on an AVX2-only 2-core CPU it took 19 s per optimizer step of the tiny preset, against about 1.2 s for
    # the forward and backward. On CPU every parameter therefore uses AdamW unless --use_muon true is passed.
    "use_muon": torch.cuda.is_available(),
    # With token triage, batch metabolism, Grokfast and plateau bursts on, held-out bits per byte after 100
    # steps was 2.373, against 2.218 with all four off (same data, learning rate 3e-3), so this short run
    # trains on the plain loss. Each stays available as a switch.
    "use_token_triage": False,
    "use_batch_metabolism": False,
    "use_grokfast": False,
    "use_plateau_burst": False,
    # Extra passes over the decoder stack cost a trunk forward and backward each; the 1 -> 2 -> 3 schedule
    # would make this run about 1.6x longer (an estimate from the tiny preset's layer and lm_head sizes).
    "loop_schedule": "",
}


# Config entries left out of the model card: loading metadata and fields that only classification heads use.
CARD_CONFIG_OMITTED = frozenset(
    {
        "auto_map",
        "architectures",
        "_name_or_path",
        "id2label",
        "label2id",
        "problem_type",
        "transformers_version",
    }
)


@dataclass
class RunArguments:
    """Run settings outside model, data and training: CPU threads and the sample generated at the end."""

    cpu_threads: int | None = field(
        default=None,
        metadata={
            "help": "Threads per process when training on CPU. Default: the usable cores divided by the processes "
            "on this machine (`accelerate launch` otherwise leaves each process one thread)."
        },
    )

    sample_prompt: str | None = field(
        default=None,
        metadata={"help": "Prompt of the final sample; default: the start of the first held-out text."},
    )
    sample_max_new_tokens: int = field(
        default=64, metadata={"help": "Tokens generated for the final sample."}
    )
    sample_temperature: float = field(
        default=0.8, metadata={"help": "Sampling temperature of the final sample."}
    )
    sample_top_k: int = field(default=50, metadata={"help": "Top-k cut-off of the final sample."})


@dataclass
class PretrainRun:
    """State of one pretraining run, built by `build_trainer` and completed by `finish_run`."""

    trainer: GenesisTrainer
    tokenizer: PreTrainedTokenizerBase
    model_args: ModelArguments
    data_args: DataArguments
    run_args: RunArguments
    start_time: float
    held_out: str
    sample_prompt: str
    train_metrics: dict[str, float] = field(default_factory=dict)


def make_parser() -> HfArgumentParser:
    """Return the `HfArgumentParser` of the pretraining script with `PRETRAIN_DEFAULTS` applied."""
    parser = HfArgumentParser((ModelArguments, DataArguments, RunArguments, GenesisTrainingArguments))
    parser.set_defaults(**PRETRAIN_DEFAULTS)
    return parser


def git_revision() -> str:
    """Return the short git revision of this source tree, with `-dirty` for uncommitted changes, or `unknown`."""
    root = Path(__file__).resolve().parent.parent
    try:
        revision = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return revision.stdout.strip() or "unknown"


def software_versions() -> dict[str, str]:
    """Return the versions of Python and the libraries the run depends on."""
    return {
        "python_version": sys.version.split()[0],
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "accelerate_version": accelerate.__version__,
        "datasets_version": datasets.__version__,
    }


def changed_fields(arguments: Any) -> dict[str, Any]:
    """Return the dataclass fields of `arguments` whose value differs from the field's default."""
    changed = {}
    for item in dataclasses.fields(arguments):
        if item.default is dataclasses.MISSING or not item.init:
            continue
        value = getattr(arguments, item.name)
        # `__post_init__` turns some unset defaults into empty or resolved values; those were not set.
        unset = (not value and not item.default) or (item.default is None and dataclasses.is_dataclass(value))
        if not unset and value != item.default and str(value) != str(item.default):
            changed[item.name] = value
    return changed


def set_cpu_threads(run_args: RunArguments, training_args: GenesisTrainingArguments) -> None:
    """Set torch's thread count on CPU from --cpu_threads, or share the usable cores among local processes."""
    if not training_args.use_cpu:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(run_args.cpu_threads or max(1, cores // local_processes))


def log_startup(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: GenesisTrainingArguments,
    config: GenesisConfig,
) -> None:
    """Log one block with versions, git revision, hardware and the resolved configuration."""
    versions = ", ".join(
        f"{name.removesuffix('_version')} {value}" for name, value in software_versions().items()
    )
    lines = [
        "Genesis pretraining",
        f"  versions: {versions}",
        f"  git revision: {git_revision()}",
        f"  hardware: {describe_hardware()}, {training_args.world_size} process(es), "
        f"{torch.get_num_threads()} torch threads per process",
        f"  model: {model_args}",
        f"  data: {data_args} -> {data_args.describe()}",
        f"  config: {json.dumps(config.to_diff_dict(), sort_keys=True)}",
        f"  training (fields that differ from {type(training_args).__name__}'s defaults): "
        f"{json.dumps(changed_fields(training_args), sort_keys=True, default=str)}",
    ]
    logger.info("\n".join(lines))


def check_arguments(
    data_args: DataArguments, training_args: GenesisTrainingArguments, config: GenesisConfig
) -> None:
    """Raise `ValueError` for argument combinations that would fail later in training.

    Raises:
        ValueError: `block_size` is above the config's `max_position_embeddings`, or a streamed source is
            used without a positive `max_steps`.
    """
    if data_args.block_size > config.max_position_embeddings:
        raise ValueError(
            f"--block_size {data_args.block_size} is larger than the model's max_position_embeddings="
            f"{config.max_position_embeddings}. Lower --block_size or pass "
            f"--config_overrides max_position_embeddings={data_args.block_size}."
        )
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError(
            f"A streamed dataset ({data_args.dataset_name}) has no length, so the number of epochs cannot set the "
            f"training length; pass a positive --max_steps (got {training_args.max_steps})."
        )


class PretrainTrainer(GenesisTrainer):
    """The trainer of `scripts/pretrain.py`; its model card is the one filled from this run's results.

    `Trainer.push_to_hub` calls `create_model_card`, which would otherwise replace the card with
    transformers' generic draft.
    """

    card_values: dict[str, Any] | None = None

    def create_model_card(self, **kwargs: Any) -> None:
        if self.is_world_process_zero() and self.card_values is not None:
            write_model_card(self.args.output_dir, self.card_values)


def prepare_tokenizer(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: GenesisTrainingArguments,
    train_texts: datasets.Dataset | datasets.IterableDataset,
    vocab_size: int,
) -> PreTrainedTokenizerBase:
    """Load or train the tokenizer; with several processes the main one trains it and the others load its copy."""
    with training_args.main_process_first(desc="tokenizer", local=False):
        if model_args.tokenizer_name is None and training_args.process_index > 0:
            return AutoTokenizer.from_pretrained(training_args.output_dir)
        texts = iterate_texts(train_texts, data_args.text_column, data_args.tokenizer_train_texts)
        tokenizer = load_or_train_tokenizer(model_args.tokenizer_name, texts, vocab_size)
        if model_args.tokenizer_name is None:
            tokenizer.save_pretrained(training_args.output_dir)
        return tokenizer


def prepare_datasets(
    data_args: DataArguments,
    training_args: GenesisTrainingArguments,
    tokenizer: PreTrainedTokenizerBase,
    raw: datasets.DatasetDict | datasets.IterableDatasetDict,
) -> tuple[datasets.Dataset | datasets.IterableDataset, datasets.Dataset]:
    """Pack this process's shard of the training texts and all held-out texts into blocks.

    Raises:
        ValueError: a split yields no complete block.
    """
    rank, world_size = training_args.process_index, training_args.world_size
    # NOTE: Trainer's data loader splits batches across processes again, so in one of its epochs a process
    # trains on 1 / world_size of its own shard. Shards stay disjoint; with --max_steps the step count is unchanged.
    train_texts = shard_for_process(raw["train"], rank, world_size)
    if world_size > 1 and isinstance(train_texts, datasets.Dataset):
        logger.info(
            "Process %d of %d reads %d of %d training texts.",
            rank,
            world_size,
            len(train_texts),
            len(raw["train"]),
        )
    options = {"text_column": data_args.text_column, "batch_size": data_args.preprocessing_batch_size}
    train_dataset = pack_dataset(train_texts, tokenizer, data_args.block_size, **options)
    eval_dataset = pack_dataset(raw["validation"], tokenizer, data_args.block_size, **options)
    if isinstance(eval_dataset, datasets.IterableDataset):
        eval_dataset = datasets.Dataset.from_list(list(eval_dataset))
    splits = {"train": train_dataset, "validation": eval_dataset}
    if not isinstance(train_dataset, datasets.Dataset):
        del splits["train"]  # a stream has no length to check before training
    for split, dataset in splits.items():
        if len(dataset) == 0:
            raise ValueError(
                f"The {split} split yields no block of {data_args.block_size} tokens: its texts are empty or too "
                "short. Add text or lower --block_size."
            )
    if isinstance(train_dataset, datasets.Dataset):
        train_dataset = equalize_across_processes(train_dataset)
        logger.info(
            "Training blocks: %d of %d tokens on this process.", len(train_dataset), data_args.block_size
        )
    logger.info("Held-out blocks: %d of %d tokens.", len(eval_dataset), data_args.block_size)
    return train_dataset, eval_dataset


def make_metric_functions(byte_lengths: np.ndarray):
    """Return `(preprocess_logits_for_metrics, compute_metrics)` reporting held-out cross-entropy, perplexity and bits per byte.

    The first reduces each batch's main-head logits to per-token cross-entropy, so evaluation keeps a
    `(blocks, block_size - 1)` array instead of the logits. The second sums it with the shipped
    `evaluate` metric, loaded by path so it works offline.

    Args:
        byte_lengths: UTF-8 bytes of each token id (see `token_byte_lengths`).
    """
    metric = evaluate.load(BITS_PER_BYTE_PATH, keep_in_memory=True)

    def preprocess_logits_for_metrics(logits: torch.Tensor | tuple, labels: torch.Tensor) -> torch.Tensor:
        if isinstance(logits, tuple):
            logits = logits[0]  # the main head; MTP logits and losses follow it
        targets = labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="none"
        )
        return losses.view(targets.shape)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        targets = np.asarray(prediction.label_ids)[:, 1:]
        valid = targets != -100
        losses = np.asarray(prediction.predictions)[valid]
        return metric.compute(predictions=losses, references=byte_lengths[targets[valid]])

    return preprocess_logits_for_metrics, compute_metrics


def build_trainer(
    model_args: ModelArguments,
    data_args: DataArguments,
    run_args: RunArguments,
    training_args: GenesisTrainingArguments,
) -> PretrainRun:
    """Check the arguments, prepare data and tokenizer, and return the run with its trainer.

    Every input check runs before the tokenizer is trained or the model is built.
    """
    start_time = time.time()
    config = build_config(model_args.model_size, model_args.config_overrides)
    check_arguments(data_args, training_args, config)
    log_startup(model_args, data_args, training_args, config)

    raw = load_raw_splits(data_args)
    for split in ("train", "validation"):
        check_text_column(raw[split], data_args.text_column, split)
    tokenizer = prepare_tokenizer(model_args, data_args, training_args, raw["train"], config.vocab_size)
    check_vocab_fits(tokenizer, config.vocab_size)
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    train_dataset, eval_dataset = prepare_datasets(data_args, training_args, tokenizer, raw)

    transformers.set_seed(training_args.seed)
    model = GenesisForCausalLM(config)
    logger.info("Model: %s parameters.", f"{model.num_parameters():,}")
    with training_args.main_process_first(desc="metric", local=False):
        preprocess_logits, compute_metrics = make_metric_functions(
            token_byte_lengths(tokenizer, config.vocab_size)
        )
    trainer = PretrainTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=default_data_collator,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits,
    )
    sample_prompt = run_args.sample_prompt or default_sample_prompt(raw["validation"], data_args.text_column)
    return PretrainRun(
        trainer=trainer,
        tokenizer=tokenizer,
        model_args=model_args,
        data_args=data_args,
        run_args=run_args,
        start_time=start_time,
        held_out=describe_held_out(data_args, raw),
        sample_prompt=sample_prompt,
    )


def default_sample_prompt(validation: datasets.Dataset | datasets.IterableDataset, text_column: str) -> str:
    """Return the first non-empty line of the first held-out text, cut to 48 characters."""
    for example in validation:
        for line in example[text_column].splitlines():
            if line.strip():
                return line[:48]
    return "\n"


def generate_sample(run: PretrainRun) -> str:
    """Sample a continuation of the run's prompt with the trained model and return prompt plus continuation."""
    model = run.trainer.accelerator.unwrap_model(run.trainer.model)
    model.eval()
    inputs = run.tokenizer(run.sample_prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    torch.manual_seed(run.trainer.args.seed)
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=run.run_args.sample_max_new_tokens,
            do_sample=True,
            temperature=run.run_args.sample_temperature,
            top_k=run.run_args.sample_top_k,
            pad_token_id=run.tokenizer.pad_token_id,
        )
    return run.tokenizer.decode(output[0], skip_special_tokens=True)


def final_eval_metrics(trainer: GenesisTrainer) -> dict[str, float]:
    """Return held-out metrics at the last step: the logged ones when evaluation just ran there, else a new evaluation."""
    history = trainer.state.log_history
    for entry in reversed(history):
        if "eval_bits_per_byte" in entry and entry.get("step") == trainer.state.global_step:
            return {key: value for key, value in entry.items() if key.startswith("eval_")}
    return trainer.evaluate()


def collect_card_values(run: PretrainRun, eval_metrics: dict[str, float], sample_text: str) -> dict[str, Any]:
    """Gather everything the model card template names."""
    trainer, args = run.trainer, run.trainer.args
    model = trainer.accelerator.unwrap_model(trainer.model)
    blocks_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    # The saved config.json is complete; the card shows the fields a reader compares runs by.
    config = {key: value for key, value in model.config.to_dict().items() if key not in CARD_CONFIG_OMITTED}
    return {
        "model_name": Path(args.output_dir).resolve().name
        if args.hub_model_id is None
        else args.hub_model_id,
        "eval_num_tokens": eval_metrics.get("eval_num_tokens"),
        "eval_num_bytes": eval_metrics.get("eval_num_bytes"),
        "eval_cross_entropy": eval_metrics.get("eval_cross_entropy"),
        "eval_perplexity": eval_metrics.get("eval_perplexity"),
        "eval_bits_per_byte": eval_metrics.get("eval_bits_per_byte"),
        "eval_loss": eval_metrics.get("eval_loss"),
        "loss_curve_file": LOSS_CURVE_FILE,
        "sample_prompt": run.sample_prompt,
        "sample_prompt_literal": json.dumps(run.sample_prompt),
        "sample_text": sample_text,
        "sample_temperature": run.run_args.sample_temperature,
        "sample_top_k": run.run_args.sample_top_k,
        "seed": args.seed,
        "data": run.data_args.describe(),
        "held_out": run.held_out,
        "tokenizer": run.model_args.tokenizer_name or "byte-level BPE trained on the training split",
        "vocab_size": len(run.tokenizer),
        "model_size": run.model_args.model_size,
        "num_parameters": model.num_parameters(),
        "config_overrides": run.model_args.config_overrides or "none",
        "steps": trainer.state.global_step,
        "tokens_seen": trainer.state.global_step * blocks_per_step * run.data_args.block_size,
        "global_batch_size": blocks_per_step,
        "block_size": run.data_args.block_size,
        "processes": f"{args.world_size} process" if args.world_size == 1 else f"{args.world_size} processes",
        "learning_rate": args.learning_rate,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "warmup_steps": args.warmup_steps,
        "weight_decay": args.weight_decay,
        "max_grad_norm": args.max_grad_norm,
        "train_runtime": run.train_metrics.get("train_runtime", float("nan")),
        "total_runtime": round(time.time() - run.start_time, 1),
        "hardware": describe_hardware(),
        **software_versions(),
        "git_revision": git_revision(),
        "trainer_class": type(trainer).__mro__[1].__name__,
        "config_json": json.dumps(config, indent=2, sort_keys=True),
    }


def finish_run(run: PretrainRun) -> dict[str, float]:
    """Evaluate, write the loss curve and model card, save (and push) the model folder, and log a sample.

    Returns:
        The final held-out metrics.
    """
    trainer = run.trainer
    eval_metrics = final_eval_metrics(trainer)
    trainer.log_metrics("eval", eval_metrics)
    sample_text = ""
    if trainer.is_world_process_zero():
        Path(trainer.args.output_dir).mkdir(parents=True, exist_ok=True)
        plot_loss_curve(trainer.state.log_history, Path(trainer.args.output_dir) / LOSS_CURVE_FILE)
        sample_text = generate_sample(run)
        logger.info("Sample generation:\n%s", sample_text)
        trainer.card_values = collect_card_values(run, eval_metrics, sample_text)
        trainer.save_metrics("eval", eval_metrics)
    # `save_model` writes weights, config with auto_map, modeling files and tokenizer; with --push_to_hub it
    # also uploads the folder through `Trainer.push_to_hub`, which writes the card via `create_model_card`.
    trainer.save_model()
    if trainer.is_world_process_zero():
        trainer.create_model_card()
    if math.isnan(eval_metrics.get("eval_bits_per_byte", float("nan"))):
        logger.warning("The held-out bits per byte is NaN; the training run diverged.")
    return eval_metrics
