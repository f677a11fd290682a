# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Training variants for the benchmark and the ablation, and the ablation's runs on a held-out split.

A `Variant` is a model and a trainer recipe. The variants are the dense baseline (`LlamaForCausalLM` of the
same shape, trained by a plain `Trainer` with AdamW), ternary AdamW (Genesis with every technique off), the
full recipe (every library default), and recipes with one technique added or removed.
`scripts/benchmark.py` times them. `scripts/ablate.py` trains each at a fixed token budget with
`run_ablation_job` and compares held-out loss and bits per byte.
"""

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import evaluate
import numpy as np
import torch
import transformers
from torch import nn
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging

from modeling_genesis import GenesisConfig, GenesisForCausalLM

from .data import DataArguments, iterate_texts, load_raw_splits, load_stdlib_corpus, pack_dataset
from .metrics import BITS_PER_BYTE_PATH
from .tokenization import load_or_train_tokenizer, token_byte_lengths
from .trainer import GenesisTrainer
from .training_args import GenesisTrainingArguments

logger = logging.get_logger(__name__)


@dataclass(frozen=True)
class Technique:
    """One switchable technique: the training argument or config field that turns it on or off.

    `on` is the value that turns on a technique whose library default is off. A technique that is on by
    default is turned on with its default value instead.
    """

    name: str
    switch: str
    on: Any
    off: Any
    model_field: bool = False

    @property
    def library_default(self) -> Any:
        """The switch's default in `GenesisConfig` or `GenesisTrainingArguments`."""
        owner = GenesisConfig if self.model_field else GenesisTrainingArguments
        return {item.name: item.default for item in dataclasses.fields(owner)}[self.switch]

    @property
    def default_on(self) -> bool:
        """Whether the library default turns the technique on."""
        return self.library_default != self.off

    @property
    def on_value(self) -> Any:
        """The value that turns the technique on: the library default if that is on, else `on`."""
        return self.library_default if self.default_on else self.on

    def overrides(self, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return `(training_overrides, config_overrides)` that set the switch to `value`."""
        return ({}, {self.switch: value}) if self.model_field else ({self.switch: value}, {})


# Every technique the ablation measures. The `on` values of the techniques that are off by default are this
# ablation's choices: 16 memory slots, every block unfrozen by half of training, and a KL weight of 0.1
# (the default `weight` of `EMATeacher`).
TECHNIQUES: tuple[Technique, ...] = (
    Technique("muon", "use_muon", on=True, off=False),
    Technique("layerwise_lr_decay", "layerwise_lr_decay", on=0.85, off=1.0),
    Technique("grokfast", "use_grokfast", on=True, off=False),
    Technique("token_triage", "use_token_triage", on=True, off=False),
    Technique("batch_metabolism", "use_batch_metabolism", on=True, off=False),
    Technique("skip_nonfinite_steps", "skip_nonfinite_steps", on=True, off=False),
    Technique("plateau_burst", "use_plateau_burst", on=True, off=False),
    Technique("loop_schedule", "loop_schedule", on="1@0,2@1/3,3@2/3", off=""),
    Technique("mtp", "mtp_num_heads", on=2, off=0, model_field=True),
    Technique("surprise_memory", "memory_slots", on=16, off=0, model_field=True),
    Technique("progressive_unfreezing", "unfreeze_fraction", on=0.5, off=0.0),
    Technique("self_distillation", "self_distill_weight", on=0.1, off=0.0),
)
TECHNIQUES_BY_NAME = {technique.name: technique for technique in TECHNIQUES}


@dataclass
class Variant:
    """A model and trainer recipe: `dense` selects `LlamaForCausalLM` with a plain `Trainer`.

    The overrides apply on top of the library defaults of `GenesisTrainingArguments` and `GenesisConfig`.
    """

    name: str
    description: str
    dense: bool = False
    training_overrides: dict[str, Any] = field(default_factory=dict)
    config_overrides: dict[str, Any] = field(default_factory=dict)
    compile: bool = False

    def derive(
        self,
        name: str,
        description: str,
        training: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> "Variant":
        """Return a copy named `name` with `training` and `config` merged over this variant's overrides."""
        return dataclasses.replace(
            self,
            name=name,
            description=description,
            training_overrides={**self.training_overrides, **(training or {})},
            config_overrides={**self.config_overrides, **(config or {})},
        )


def _merge_switches(techniques: list[Technique], use_on: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    training, config = {}, {}
    for technique in techniques:
        part_training, part_config = technique.overrides(technique.on_value if use_on else technique.off)
        training.update(part_training)
        config.update(part_config)
    return training, config


def dense_adamw() -> Variant:
    """Return the dense baseline: `LlamaForCausalLM` of the same shape, plain `Trainer`, AdamW."""
    return Variant("dense-adamw", "dense LlamaForCausalLM, plain Trainer, AdamW", dense=True)


def ternary_adamw() -> Variant:
    """Return Genesis with every technique off: ternary layers trained like a plain `Trainer` with AdamW."""
    training, config = _merge_switches(list(TECHNIQUES), use_on=False)
    return Variant("ternary-adamw", "Genesis, every technique off (AdamW)", False, training, config)


def full_recipe() -> Variant:
    """Return Genesis with every library default."""
    return Variant("full", "Genesis, every library default")


def full_without(technique: Technique) -> Variant:
    """Return the full recipe with one default-on technique turned off."""
    training, config = technique.overrides(technique.off)
    return full_recipe().derive(
        f"full-no-{technique.name}", f"full recipe without {technique.name}", training, config
    )


def full_with(technique: Technique) -> Variant:
    """Return the full recipe with one default-off technique turned on."""
    training, config = technique.overrides(technique.on_value)
    return full_recipe().derive(
        f"full-plus-{technique.name}", f"full recipe plus {technique.name}", training, config
    )


def ternary_with(technique: Technique) -> Variant:
    """Return ternary AdamW with one technique turned on."""
    training, config = technique.overrides(technique.on_value)
    return ternary_adamw().derive(
        f"only-{technique.name}", f"ternary AdamW plus {technique.name} alone", training, config
    )


def ablation_variants() -> list[Variant]:
    """Return the ablation's rows: baselines, the full recipe, one technique removed or added, both STEs."""
    other_ste = "identity" if GenesisConfig().weight_ste == "clipped" else "clipped"
    variants = [dense_adamw(), ternary_adamw(), full_recipe()]
    variants += [full_without(technique) for technique in TECHNIQUES if technique.default_on]
    variants += [full_with(technique) for technique in TECHNIQUES if not technique.default_on]
    variants.append(
        full_recipe().derive(
            f"full-{other_ste}-ste",
            f"full recipe with the {other_ste} weight STE",
            config={"weight_ste": other_ste},
        )
    )
    return variants


def dense_config_for(config: GenesisConfig) -> LlamaConfig:
    """Return the `LlamaConfig` with the same shape as `config` (no MTP heads, loops or memory)."""
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        hidden_act=config.hidden_act,
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range,
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters=dict(config.rope_parameters),
        tie_word_embeddings=config.tie_word_embeddings,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )


def build_model(variant: Variant, config_kwargs: dict[str, Any], seed: int) -> nn.Module:
    """Build the variant's model with weights drawn from `seed`, compiled in place if `variant.compile` is set.

    Args:
        variant: the recipe; its `config_overrides` apply over `config_kwargs`.
        config_kwargs: `GenesisConfig` fields shared by every variant (shape, vocabulary, token ids).
        seed: seed of the weight initialisation.
    """
    config = GenesisConfig(**{**config_kwargs, **variant.config_overrides})
    transformers.set_seed(seed)
    model = LlamaForCausalLM(dense_config_for(config)) if variant.dense else GenesisForCausalLM(config)
    if variant.compile:
        model.compile()  # `nn.Module.compile`: the module keeps its class, so Trainer handles it as usual
    return model


def build_trainer(
    variant: Variant,
    model: nn.Module,
    train_dataset: torch.utils.data.Dataset,
    training_kwargs: dict[str, Any],
    callbacks: list[TrainerCallback] | None = None,
) -> Trainer:
    """Build a plain `Trainer` (dense) or a `GenesisTrainer` with the shared and the variant's arguments.

    The trainer does not print its logs (no `PrinterCallback`); they stay in `trainer.state.log_history`.
    """
    if variant.dense:
        arguments = TrainingArguments(**training_kwargs)
        trainer_class = Trainer
    else:
        arguments = GenesisTrainingArguments(**{**training_kwargs, **variant.training_overrides})
        trainer_class = GenesisTrainer
    trainer = trainer_class(
        model=model,
        args=arguments,
        train_dataset=train_dataset,
        data_collator=default_data_collator,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def shared_training_kwargs(
    output_dir: str, max_steps: int, batch_size: int, seed: int, **overrides: Any
) -> dict[str, Any]:
    """Return the `TrainingArguments` fields every variant shares.

    The LR schedule, clipping and weight decay are the same for dense and Genesis runs (Genesis's
    `max_grad_norm` default of 0.5 is used for both). `data_seed=seed` gives every variant of a seed the
    same order of training blocks.
    """
    kwargs = {
        "output_dir": output_dir,
        "max_steps": max_steps,
        "per_device_train_batch_size": batch_size,
        "learning_rate": 2e-3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": max(1, max_steps // 10),
        "weight_decay": 0.1,
        "max_grad_norm": 0.5,
        "seed": seed,
        "data_seed": seed,
        "logging_steps": max(1, max_steps // 10),
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": False,
        "use_cpu": not torch.cuda.is_available(),
    }
    return {**kwargs, **overrides}


@dataclass
class CorpusData:
    """A corpus tokenized for the ablation: shared by every variant and seed."""

    name: str
    tokenizer: PreTrainedTokenizerBase
    train_dataset: datasets.Dataset
    eval_input_ids: torch.Tensor  # (eval_blocks, block_size)
    byte_lengths: np.ndarray  # UTF-8 bytes of each token id


def prepare_corpus(
    name: str,
    train_files: list[str] | None,
    vocab_size: int,
    block_size: int,
    eval_blocks: int,
    cache_dir: Path,
    stdlib_root: Path | None = None,
) -> CorpusData:
    """Load, tokenize and pack a corpus, reusing the tokenizer and blocks cached in `cache_dir`.

    The byte-level BPE is trained once on the training split and saved, so a split or resumed ablation
    uses the same tokenizer for every run. The held-out set is `eval_blocks` evenly spaced blocks of the
    validation split: held-out files of the embedded corpus, or the last texts of `train_files`.

    Args:
        name: corpus name used in result paths and on the page.
        train_files: local text files, or `None` for the embedded corpus.
        vocab_size: vocabulary of the byte-level BPE trained on the training split.
        block_size: tokens per block.
        eval_blocks: number of held-out blocks every evaluation uses.
        cache_dir: folder for the tokenizer, the packed training blocks and their settings.
        stdlib_root: folder read as the embedded corpus instead of the whole standard library.

    Raises:
        ValueError: the cache was made with other data, vocabulary or block size, or the validation split
            yields fewer than `eval_blocks` blocks.
    """
    data_args = DataArguments(train_files=train_files, block_size=block_size)
    settings = {
        "train_files": train_files,
        "stdlib_root": None if stdlib_root is None else str(stdlib_root),
        "validation_fraction": data_args.validation_fraction,
        "vocab_size": vocab_size,
        "block_size": block_size,
    }
    settings_path = cache_dir / "corpus.json"
    if settings_path.is_file() and json.loads(settings_path.read_text()) != settings:
        raise ValueError(
            f"{cache_dir} contains a corpus prepared with {settings_path.read_text()}, not {settings}. "
            "Pass a new --output_dir or delete that folder."
        )
    if train_files is None and stdlib_root is not None:
        raw = load_stdlib_corpus(data_args.validation_fraction, root=stdlib_root)
    else:
        raw = load_raw_splits(data_args)
    tokenizer_dir = cache_dir / "tokenizer"
    if tokenizer_dir.is_dir():
        tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        tokenizer = load_or_train_tokenizer(None, iterate_texts(raw["train"], "text", 200_000), vocab_size)
        tokenizer.save_pretrained(tokenizer_dir)
    blocks_dir = cache_dir / "train_blocks"
    if blocks_dir.is_dir():
        train_dataset = datasets.load_from_disk(str(blocks_dir))
    else:
        train_dataset = pack_dataset(raw["train"], tokenizer, block_size)
        train_dataset.save_to_disk(str(blocks_dir))
    settings_path.write_text(json.dumps(settings))

    eval_dataset = pack_dataset(raw["validation"], tokenizer, block_size)
    if len(eval_dataset) < eval_blocks:
        raise ValueError(
            f"The validation split of {name} yields {len(eval_dataset)} blocks of {block_size} tokens, fewer "
            f"than --eval_blocks {eval_blocks}. Lower --eval_blocks or --block_size."
        )
    # Evenly spaced blocks, so every held-out file or stretch of text contributes, not just the first.
    indices = np.linspace(0, len(eval_dataset) - 1, eval_blocks).round().astype(int).tolist()
    eval_input_ids = torch.tensor(eval_dataset.select(indices)["input_ids"])
    return CorpusData(
        name=name,
        tokenizer=tokenizer,
        train_dataset=train_dataset.with_format("torch"),
        eval_input_ids=eval_input_ids,
        byte_lengths=token_byte_lengths(tokenizer, vocab_size),
    )


class HeldOutEvaluator:
    """Main-head cross-entropy and bits per byte of a model on fixed held-out blocks.

    Every variant is scored the same way: the logits of `model(input_ids)` without labels, so MTP heads
    are not run, at the loop count the model last trained with.
    """

    def __init__(self, input_ids: torch.Tensor, byte_lengths: np.ndarray, batch_size: int):
        self.input_ids = input_ids
        self.byte_lengths = byte_lengths
        self.batch_size = batch_size
        self.metric = evaluate.load(BITS_PER_BYTE_PATH, keep_in_memory=True)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Return `loss` (nats per token) and `bits_per_byte` of `model`, restoring its training mode."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        losses = []
        for batch in self.input_ids.split(self.batch_size):
            logits = model(input_ids=batch.to(device), use_cache=False).logits
            losses.append(
                nn.functional.cross_entropy(
                    logits[:, :-1].float().flatten(0, 1), batch[:, 1:].flatten().to(device), reduction="none"
                ).cpu()
            )
        model.train(was_training)
        targets = self.input_ids[:, 1:].flatten().numpy()
        result = self.metric.compute(
            predictions=torch.cat(losses).numpy(), references=self.byte_lengths[targets]
        )
        return {"loss": result["cross_entropy"], "bits_per_byte": result["bits_per_byte"]}


class HeldOutCurve(TrainerCallback):
    """Evaluate every `eval_steps` optimizer steps and at the last step, and time the evaluations."""

    def __init__(self, evaluator: HeldOutEvaluator, eval_steps: int, tokens_per_step: int):
        self.evaluator = evaluator
        self.eval_steps = eval_steps
        self.tokens_per_step = tokens_per_step
        self.points: list[dict[str, float]] = []
        self.eval_seconds = 0.0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.eval_steps != 0 and state.global_step != state.max_steps:
            return
        start = time.perf_counter()
        metrics = self.evaluator.evaluate(model)
        self.eval_seconds += time.perf_counter() - start
        self.points.append(
            {"step": state.global_step, "tokens": state.global_step * self.tokens_per_step, **metrics}
        )


@dataclass
class AblationSettings:
    """Settings shared by every run of an ablation; a stored result is reused only if they match."""

    model: dict[str, Any]
    block_size: int
    batch_size: int
    max_steps: int
    eval_steps: int
    eval_blocks: int
    learning_rate: float

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step."""
        return self.batch_size * self.block_size


def library_defaults() -> dict[str, Any]:
    """Return the defaults of the fields that `GenesisConfig` and `GenesisTrainingArguments` add."""
    defaults = {}
    for owner in (GenesisConfig, GenesisTrainingArguments):
        own_fields = owner.__annotations__
        for item in dataclasses.fields(owner):
            if item.name in own_fields and item.default is not dataclasses.MISSING:
                defaults[item.name] = item.default
    return defaults


def result_path(output_dir: Path, corpus: str, variant: str, seed: int) -> Path:
    """Return where the result of one (corpus, variant, seed) run is stored."""
    return output_dir / corpus / "results" / f"{variant}-seed{seed}.json"


def run_ablation_job(
    variant: Variant,
    seed: int,
    corpus: CorpusData,
    settings: AblationSettings,
    evaluator: HeldOutEvaluator,
    output_dir: Path,
) -> dict[str, Any]:
    """Train one variant with one seed, or load its stored result when the settings match.

    The settings include the library defaults a Genesis variant starts from, so a run stored before a
    default changed is trained again. The result is written as JSON as soon as the run finishes, so an
    interrupted ablation resumes there.
    """
    path = result_path(output_dir, corpus.name, variant.name, seed)
    fingerprint = {
        "settings": dataclasses.asdict(settings),
        "variant": dataclasses.asdict(variant),
        "library_defaults": {} if variant.dense else library_defaults(),
    }
    if path.is_file():
        stored = json.loads(path.read_text())
        if {key: stored.get(key) for key in fingerprint} == json.loads(json.dumps(fingerprint)):
            logger.info("Reusing %s", path)
            return stored
        logger.warning("Settings changed since %s was written; running it again.", path)

    config_kwargs = {
        **settings.model,
        "bos_token_id": corpus.tokenizer.bos_token_id,
        "eos_token_id": corpus.tokenizer.eos_token_id,
        "pad_token_id": corpus.tokenizer.pad_token_id,
    }
    model = build_model(variant, config_kwargs, seed)
    curve = HeldOutCurve(evaluator, settings.eval_steps, settings.tokens_per_step)
    training_kwargs = shared_training_kwargs(
        str(output_dir / "trainer"),
        settings.max_steps,
        settings.batch_size,
        seed,
        learning_rate=settings.learning_rate,
    )
    trainer = build_trainer(variant, model, corpus.train_dataset, training_kwargs, callbacks=[curve])
    start = time.perf_counter()
    trainer.train()
    wall_seconds = time.perf_counter() - start - curve.eval_seconds

    result = {
        **fingerprint,
        "corpus": corpus.name,
        "seed": seed,
        "curve": curve.points,
        "final": curve.points[-1],
        "train_tokens": settings.max_steps * settings.tokens_per_step,
        "train_seconds": wall_seconds,
        "events": _technique_events(trainer),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=1))
    temporary.replace(path)
    return result


def _technique_events(trainer: Trainer) -> dict[str, int]:
    """Count the events of techniques that act only on a trigger (bursts, skips, memory writes)."""
    events = {}
    for key, owner, attribute in (
        ("plateau_bursts", "plateau", "num_bursts"),
        ("skipped_steps", "nonfinite_guard", "skipped_steps"),
        ("memory_writes", "memory_writer", "num_writes"),
    ):
        component = getattr(trainer, owner, None)
        if component is not None:
            events[key] = int(getattr(component, attribute))
    return events
