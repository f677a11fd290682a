# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tiny fixtures for the trainer tests: a 2-layer Genesis model, a random token dataset, training args."""

import pytest
import torch

from modeling_genesis import GenesisConfig, GenesisForCausalLM

# The tiny models here run about 10x faster single-threaded: with several OpenMP threads on a loaded 2-core
# machine, every small matmul waits on thread synchronisation.
torch.set_num_threads(1)

TINY_CONFIG = {
    "vocab_size": 99,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    "mtp_num_heads": 2,
}

# Every GenesisTrainer technique off and AdamW for every parameter: a plain Trainer run.
TECHNIQUES_OFF = {
    "use_muon": False,
    "layerwise_lr_decay": 1.0,
    "use_grokfast": False,
    "use_token_triage": False,
    "use_batch_metabolism": False,
    "skip_nonfinite_steps": False,
    "use_plateau_burst": False,
    "loop_schedule": "",
}


def make_tiny_model(seed: int = 0, **overrides) -> GenesisForCausalLM:
    """Build the tiny model with weights drawn from `seed`."""
    torch.manual_seed(seed)
    return GenesisForCausalLM(GenesisConfig(**{**TINY_CONFIG, **overrides}))


class TokenDataset(torch.utils.data.Dataset):
    """Random token sequences with `labels = input_ids`; every third one has its last 5 labels set to -100."""

    def __init__(self, num_samples: int = 32, seq_len: int = 16, vocab_size: int = 99, seed: int = 1):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(0, vocab_size, (num_samples, seq_len), generator=generator)
        self.labels = self.input_ids.clone()
        self.labels[::3, -5:] = -100

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


def make_training_args(output_dir: str, args_class=None, **overrides):
    """Build `GenesisTrainingArguments` (or `args_class`) for a short, quiet CPU run."""
    if args_class is None:
        from trainer_genesis import GenesisTrainingArguments as args_class
    defaults = {
        "output_dir": output_dir,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "max_steps": 3,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 1,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": 0,
        "use_cpu": True,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    return args_class(**{**defaults, **overrides})


class StepRecorder:
    """Callback that snapshots gradients, parameters and group LRs just before each optimizer step."""

    def __init__(self):
        from transformers import TrainerCallback

        recorder = self

        class _Callback(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
                recorder.gradients.append(
                    {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
                )
                recorder.parameters_before.append(
                    {n: p.detach().clone() for n, p in model.named_parameters()}
                )
                recorder.group_lrs.append([group["lr"] for group in optimizer.param_groups])

            def on_step_end(self, args, state, control, model=None, **kwargs):
                recorder.parameters_after.append({n: p.detach().clone() for n, p in model.named_parameters()})

        self.callback = _Callback()
        self.gradients: list[dict[str, torch.Tensor]] = []
        self.parameters_before: list[dict[str, torch.Tensor]] = []
        self.parameters_after: list[dict[str, torch.Tensor]] = []
        self.group_lrs: list[list[float]] = []


def training_logs(trainer) -> list[dict]:
    """Return the per-step training log entries (those with a `loss`)."""
    return [entry for entry in trainer.state.log_history if "loss" in entry]


@pytest.fixture
def tiny_model():
    return make_tiny_model()


@pytest.fixture
def token_dataset():
    return TokenDataset()
