# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""GenesisTrainer runs with the loop schedule, surprise memory, progressive unfreezing and self-distillation."""

import pytest
import torch
from conftest import TECHNIQUES_OFF, TokenDataset, make_tiny_model, make_training_args, training_logs
from transformers import TrainerCallback

from modeling_genesis import GenesisConfig
from trainer_genesis import GenesisTrainer, GenesisTrainingArguments


class RecordLoops(TrainerCallback):
    def __init__(self):
        self.loops = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.loops.append(model.config.num_loops)


class RepeatedSequence(torch.utils.data.Dataset):
    """The same sequence everywhere, except random tokens at `spike_index` (with sequential sampling, one step)."""

    def __init__(self, num_samples: int, spike_index: int, seq_len: int = 16):
        generator = torch.Generator().manual_seed(0)
        self.input_ids = torch.randint(3, 99, (1, seq_len), generator=generator).repeat(num_samples, 1)
        self.input_ids[spike_index] = torch.randint(3, 99, (seq_len,), generator=generator)

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, index):
        return {"input_ids": self.input_ids[index], "labels": self.input_ids[index]}


def test_depth_and_memory_techniques_default_off():
    args = GenesisTrainingArguments(output_dir="unused", report_to="none")
    assert args.loop_schedule == ""
    assert args.unfreeze_fraction == 0.0
    assert args.self_distill_weight == 0.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("loop_schedule", "2@0.5", "`loop_schedule` '2@0.5' must start at fraction 0"),
        ("unfreeze_fraction", 1.5, "unfreeze_fraction"),
        ("self_distill_decay", 1.0, "self_distill_decay"),
        ("surprise_threshold", 0.0, "surprise_threshold"),
    ],
)
def test_invalid_depth_and_memory_arguments_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        GenesisTrainingArguments(output_dir="unused", report_to="none", **{field: value})


def test_loop_schedule_raises_loops_and_is_saved(tmp_path):
    recorder = RecordLoops()
    trainer = GenesisTrainer(
        model=make_tiny_model(),
        args=make_training_args(str(tmp_path), max_steps=6, loop_schedule="1@0,2@1/3,3@2/3"),
        train_dataset=TokenDataset(),
        callbacks=[recorder],
    )
    trainer.train()
    assert recorder.loops == [1, 1, 2, 2, 3, 3]
    assert [entry["train/num_loops"] for entry in training_logs(trainer)] == [1, 1, 2, 2, 3, 3]
    trainer.save_model(str(tmp_path / "final"))
    assert GenesisConfig.from_pretrained(tmp_path / "final").num_loops == 3


def test_loss_spike_writes_one_memory_slot(tmp_path):
    model = make_tiny_model(memory_slots=3)
    trainer = GenesisTrainer(
        model=model,
        args=make_training_args(
            str(tmp_path),
            **TECHNIQUES_OFF,
            max_steps=30,
            per_device_train_batch_size=1,
            lr_scheduler_type="constant",
            train_sampling_strategy="sequential",
            surprise_memory_warmup_steps=5,
            # The loss falls fast on a repeated sequence; a short memory keeps the statistics up with it.
            surprise_memory_decay=0.8,
        ),
        train_dataset=RepeatedSequence(num_samples=30, spike_index=24),
    )
    trainer.train()
    assert model.model.memory_write_step.tolist() == [25, 0, 0]
    assert (model.model.memory[0] != 0).any()
    assert (model.model.memory[1:] == 0).all()
    assert training_logs(trainer)[-1]["train/memory_writes"] == 1.0


def test_flat_loss_writes_no_memory(tmp_path):
    model = make_tiny_model(memory_slots=3)
    trainer = GenesisTrainer(
        model=model,
        args=make_training_args(
            str(tmp_path),
            **TECHNIQUES_OFF,
            max_steps=20,
            per_device_train_batch_size=1,
            learning_rate=1e-9,
            surprise_memory_warmup_steps=5,
            train_sampling_strategy="sequential",
        ),
        train_dataset=RepeatedSequence(num_samples=20, spike_index=0),
    )
    trainer.train()
    assert (model.model.memory_write_step == 0).all()


def test_unfreezing_keeps_top_block_fixed_until_its_step(tmp_path):
    model = make_tiny_model()
    initial = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    trainer = GenesisTrainer(
        model=model,
        args=make_training_args(
            str(tmp_path), max_steps=1, warmup_steps=0, unfreeze_fraction=1.0, loop_schedule=""
        ),
        train_dataset=TokenDataset(),
    )
    trainer.train()
    for name, parameter in model.named_parameters():
        changed = not torch.equal(parameter, initial[name])
        if name.startswith("model.layers.1."):
            assert not changed, name
            assert parameter not in trainer.optimizer.state or not trainer.optimizer.state[parameter], name
        elif name.startswith("model.layers.0.") and name.endswith("proj.weight"):
            assert changed, name
    assert training_logs(trainer)[0]["train/trainable_blocks"] == 1.0
    assert all(parameter.requires_grad for parameter in model.parameters())


def test_self_distillation_term_is_in_logged_loss(tmp_path):
    trainer = GenesisTrainer(
        model=make_tiny_model(),
        args=make_training_args(
            str(tmp_path),
            **TECHNIQUES_OFF,
            max_steps=4,
            warmup_steps=0,
            self_distill_weight=2.0,
            self_distill_decay=0.5,
        ),
        train_dataset=RepeatedSequence(num_samples=32, spike_index=0),
    )
    trainer.train()
    logs = training_logs(trainer)
    # The teacher starts as a copy of the model, so the first step's KL term is 0.
    assert logs[0]["train/loss_distill"] == pytest.approx(0.0, abs=1e-6)
    for entry in logs[1:]:
        assert entry["train/loss_distill"] > 0
        # With `num_items_in_batch`, each head's summed loss is divided by the main head's 15 targets per
        # sequence of 16 tokens; MTP heads 1 and 2 have 14 and 13.
        mtp = (entry["train/loss_mtp_1"] * 14 / 15 + entry["train/loss_mtp_2"] * 13 / 15) / 2
        cross_entropy = entry["train/loss_main"] + 0.3 * mtp
        assert entry["loss"] == pytest.approx(cross_entropy + 2.0 * entry["train/loss_distill"], abs=1e-3)


def test_self_distillation_state_survives_resume(tmp_path):
    settings = {"max_steps": 4, "self_distill_weight": 1.0, "save_strategy": "steps", "save_steps": 2}
    straight = GenesisTrainer(
        model=make_tiny_model(),
        args=make_training_args(str(tmp_path / "run"), **settings),
        train_dataset=TokenDataset(),
    )
    straight.train()
    resumed = GenesisTrainer(
        model=make_tiny_model(),
        args=make_training_args(str(tmp_path / "resumed"), **settings),
        train_dataset=TokenDataset(),
    )
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    for (name, a), (_, b) in zip(
        straight.teacher.teacher.named_parameters(), resumed.teacher.teacher.named_parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    assert [entry["loss"] for entry in training_logs(resumed)[2:]] == pytest.approx(
        [entry["loss"] for entry in training_logs(straight)[2:]], rel=1e-6
    )
