# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""End-to-end GenesisTrainer runs on the tiny model (a few optimizer steps each, CPU)."""

import copy

import pytest
import torch
from conftest import (
    TECHNIQUES_OFF,
    StepRecorder,
    TokenDataset,
    make_tiny_model,
    make_training_args,
    training_logs,
)
from transformers import Trainer, TrainerCallback, TrainingArguments

from trainer_genesis import GenesisTrainer
from trainer_genesis.optimizer import ADAMW, MUON


def run_genesis(tmp_path, callbacks=(), model=None, dataset=None, **overrides) -> GenesisTrainer:
    trainer = GenesisTrainer(
        model=model if model is not None else make_tiny_model(),
        args=make_training_args(str(tmp_path), **overrides),
        train_dataset=dataset if dataset is not None else TokenDataset(),
        callbacks=list(callbacks),
    )
    trainer.train()
    return trainer


def losses(trainer) -> list[float]:
    return [entry["loss"] for entry in training_logs(trainer)]


def assert_same_parameters(model_a, model_b, **tolerance):
    for (name, a), (_, b) in zip(model_a.named_parameters(), model_b.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=lambda message, name=name: f"{name}: {message}", **tolerance)


def test_techniques_off_matches_plain_trainer(tmp_path):
    settings = {"max_steps": 3, "gradient_accumulation_steps": 2, "max_grad_norm": 0.5, "weight_decay": 0.1}
    genesis = run_genesis(tmp_path / "genesis", **TECHNIQUES_OFF, **settings)

    plain = Trainer(
        model=make_tiny_model(),
        args=make_training_args(str(tmp_path / "plain"), args_class=TrainingArguments, **settings),
        train_dataset=TokenDataset(),
    )
    plain.train()

    assert losses(genesis) == pytest.approx(losses(plain), rel=1e-6)
    assert_same_parameters(genesis.model, plain.model, rtol=1e-6, atol=1e-7)
    assert all(group["optimizer"] == ADAMW for group in genesis.optimizer.param_groups)


def test_weighted_loss_is_split_invariant(tmp_path):
    weighting = {
        "max_steps": 3,
        "max_grad_norm": 0.0,
        "token_triage_max_weight": 1.5,
        "batch_metabolism_max_weight": 1.2,
        "use_plateau_burst": False,
    }
    whole_recorder, split_recorder = StepRecorder(), StepRecorder()
    whole = run_genesis(
        tmp_path / "whole", [whole_recorder.callback], per_device_train_batch_size=8, **weighting
    )
    split = run_genesis(
        tmp_path / "split",
        [split_recorder.callback],
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        **weighting,
    )

    whole_logs, split_logs = training_logs(whole), training_logs(split)
    assert whole_logs[1]["train/token_weight_max"] > 1.0, "weights must be non-uniform for the test to bite"
    for key in ("loss", "train/loss_main", "train/loss_mtp_1", "train/token_weight_max"):
        assert [e[key] for e in whole_logs] == pytest.approx([e[key] for e in split_logs], rel=1e-5), key
    for step, (whole_grads, split_grads) in enumerate(
        zip(whole_recorder.gradients, split_recorder.gradients, strict=True)
    ):
        assert whole_grads.keys() == split_grads.keys()
        for name in whole_grads:
            torch.testing.assert_close(
                whole_grads[name], split_grads[name], rtol=1e-4, atol=1e-6, msg=f"step {step} {name}"
            )


def test_logs_namespaced_metrics(tmp_path):
    trainer = run_genesis(tmp_path, max_steps=2)
    entry = training_logs(trainer)[-1]
    for key in (
        "train/loss_main",
        "train/loss_mtp_1",
        "train/loss_mtp_2",
        "train/token_weight_mean",
        "train/token_weight_max",
        "train/skipped_steps",
        "train/lr_burst",
        "train/lr_muon",
        "train/lr_adamw",
    ):
        assert key in entry, key
    assert entry["train/token_weight_mean"] == pytest.approx(1.0)


class NanLogitsHook:
    """Forward hook that turns the logits into NaN on the chosen training forward calls (0-based)."""

    def __init__(self, model, calls):
        self.calls = set(calls)
        self.count = 0
        model.register_forward_hook(self)

    def __call__(self, module, args, output):
        if module.training:
            if self.count in self.calls:
                output.logits = output.logits * float("nan")
            self.count += 1
        return output


class OptimizerStateRecorder(TrainerCallback):
    """Snapshots the full optimizer state (per-parameter and extra state) before and after each step."""

    def __init__(self):
        self.before, self.after = [], []

    @staticmethod
    def snapshot(optimizer):
        state = optimizer.state_dict()
        return copy.deepcopy({"state": state["state"], "extra_state": state["extra_state"]})

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.before.append(self.snapshot(optimizer))

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.after.append(self.snapshot(optimizer))


def assert_nested_equal(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_nested_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def assert_step_skipped(recorder, state_recorder, step):
    assert recorder.gradients[step] == {}, "gradients must be cleared on a skipped step"
    for name, before in recorder.parameters_before[step].items():
        assert torch.equal(before, recorder.parameters_after[step][name]), name
    assert_nested_equal(state_recorder.before[step], state_recorder.after[step])


def test_nan_loss_in_one_micro_batch_skips_step(tmp_path):
    model = make_tiny_model()
    NanLogitsHook(model, calls=[2])  # step 2, first of its two micro-batches
    recorder, state_recorder = StepRecorder(), OptimizerStateRecorder()
    trainer = run_genesis(
        tmp_path,
        [recorder.callback, state_recorder],
        model=model,
        max_steps=3,
        gradient_accumulation_steps=2,
        use_plateau_burst=False,
    )

    assert_step_skipped(recorder, state_recorder, step=1)
    assert trainer.nonfinite_guard.skipped_steps == 1
    assert [entry["train/skipped_steps"] for entry in training_logs(trainer)] == [0, 1, 1]
    moved = any(
        not torch.equal(recorder.parameters_after[2][n], p) for n, p in recorder.parameters_before[2].items()
    )
    assert moved, "the step after a skipped one must update the parameters"


def test_infinite_gradient_skips_step(tmp_path):
    model = make_tiny_model()
    poison = {"active": False}
    model.lm_head.weight.register_hook(
        lambda grad: torch.full_like(grad, float("inf")) if poison["active"] else grad
    )

    class PoisonSecondStep(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            poison["active"] = state.global_step == 1

    recorder, state_recorder = StepRecorder(), OptimizerStateRecorder()
    trainer = run_genesis(
        tmp_path, [recorder.callback, state_recorder, PoisonSecondStep()], model=model, max_steps=3
    )

    assert_step_skipped(recorder, state_recorder, step=1)
    assert trainer.nonfinite_guard.skipped_steps == 1
    assert trainer.nonfinite_guard.consecutive_skips == 0


def test_consecutive_skips_raise(tmp_path):
    model = make_tiny_model()
    NanLogitsHook(model, calls=range(100))
    with pytest.raises(RuntimeError, match="max_consecutive_skipped_steps"):
        run_genesis(tmp_path, model=model, max_steps=5, max_consecutive_skipped_steps=2)


def test_nan_loss_without_skipping_keeps_statistics_finite(tmp_path):
    model = make_tiny_model()
    NanLogitsHook(model, calls=[1])
    trainer = run_genesis(tmp_path, model=model, max_steps=3, skip_nonfinite_steps=False)
    # Without skipping, the NaN reaches the parameters, so only the first step's loss is usable.
    assert trainer.loss_statistics.num_updates == 1
    assert trainer.plateau.best_loss == pytest.approx(trainer.loss_statistics.mean)


def test_grokfast_changes_only_adamw_gradients(tmp_path):
    settings = {**TECHNIQUES_OFF, "use_muon": True, "max_steps": 1, "max_grad_norm": 0.0}
    on_recorder, off_recorder = StepRecorder(), StepRecorder()
    on = run_genesis(tmp_path / "on", [on_recorder.callback], **{**settings, "use_grokfast": True})
    run_genesis(tmp_path / "off", [off_recorder.callback], **settings)

    names = {
        kind: {n for g in on.genesis_optimizer.groups_of(kind) for n in g["param_names"]}
        for kind in (MUON, ADAMW)
    }
    assert names[MUON]
    assert names[ADAMW]
    with_filter, without_filter = on_recorder.gradients[0], off_recorder.gradients[0]
    for name in names[MUON]:
        assert torch.equal(with_filter[name], without_filter[name]), name
    for name in names[ADAMW]:
        # First step: the EMA equals the gradient, so g + 2.0 * ema = 3 g.
        torch.testing.assert_close(with_filter[name], 3.0 * without_filter[name], msg=name)


class ScheduleRecorder(TrainerCallback):
    def __init__(self):
        self.used, self.scheduled = [], []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        self.used.append([group["lr"] for group in optimizer.param_groups])
        self.scheduled.append(list(lr_scheduler.get_last_lr()))


def test_plateau_burst_doubles_then_restores_lrs(tmp_path):
    recorder = ScheduleRecorder()
    # A 99% relative improvement never happens, so the loss counts as flat.
    trainer = run_genesis(
        tmp_path,
        [recorder],
        max_steps=8,
        plateau_patience=1,
        plateau_threshold=0.99,
        plateau_burst_steps=2,
        plateau_cooldown_steps=1,
    )
    # Step 0 sets the best loss and step 1 misses it, so a burst covers steps 2-3. Step 4 is the cooldown,
    # step 5 misses the best loss again, and the second burst covers steps 6-7.
    burst_steps = {2, 3, 6, 7}
    for step, (used, scheduled) in enumerate(zip(recorder.used, recorder.scheduled, strict=True)):
        factor = 2.0 if step in burst_steps else 1.0
        for used_lr, scheduled_lr in zip(used, scheduled, strict=True):
            assert used_lr == factor * scheduled_lr, f"step {step}"
    burst_log = [entry["train/lr_burst"] for entry in training_logs(trainer)]
    assert burst_log == [2.0 if step in burst_steps else 1.0 for step in range(8)]
    assert len(set(recorder.scheduled[1])) > 2, "layer-wise decay should give groups different LRs"


def test_resume_matches_uninterrupted_run(tmp_path):
    settings = {
        "max_steps": 6,
        "gradient_accumulation_steps": 2,
        # Techniques that default off, turned on so the resumed run restores their state too.
        "use_token_triage": True,
        "loop_schedule": "1@0,2@1/3,3@2/3",
        "plateau_patience": 1,
        "plateau_threshold": 0.99,
        "plateau_burst_steps": 3,
        "plateau_cooldown_steps": 0,
        "save_strategy": "steps",
        "save_steps": 3,
    }

    def make_model_with_nan_at_step_one():
        model = make_tiny_model()
        trainer_box = {}

        def hook(module, args, output):
            if module.training and trainer_box["trainer"].state.global_step == 1:
                output.logits = output.logits * float("nan")
            return output

        model.register_forward_hook(hook)
        return model, trainer_box

    model, box = make_model_with_nan_at_step_one()
    straight = GenesisTrainer(
        model=model,
        args=make_training_args(str(tmp_path / "run"), **settings),
        train_dataset=TokenDataset(48),
    )
    box["trainer"] = straight
    straight.train()

    model, box = make_model_with_nan_at_step_one()
    resumed = GenesisTrainer(
        model=model,
        args=make_training_args(str(tmp_path / "resumed"), **settings),
        train_dataset=TokenDataset(48),
    )
    box["trainer"] = resumed
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))

    # The resumed run's log history starts with the checkpoint's three entries.
    straight_logs = training_logs(straight)[3:]
    resumed_logs = training_logs(resumed)[3:]
    assert [entry["step"] for entry in resumed_logs] == [4, 5, 6]
    assert straight.plateau.num_bursts >= 1
    assert straight.nonfinite_guard.skipped_steps == 1
    for straight_entry, resumed_entry in zip(straight_logs, resumed_logs, strict=True):
        for key, value in straight_entry.items():
            assert resumed_entry[key] == pytest.approx(value, rel=1e-6), key
    assert_same_parameters(straight.model, resumed.model, rtol=1e-6, atol=1e-7)
    assert resumed.nonfinite_guard.skipped_steps == 1
    assert resumed.plateau.state_dict() == pytest.approx(straight.plateau.state_dict())
    assert resumed.loss_statistics.state_dict() == pytest.approx(straight.loss_statistics.state_dict())
    for name, ema in straight.grokfast.ema.items():
        torch.testing.assert_close(resumed.grokfast.ema[name], ema, rtol=1e-6, atol=1e-8, msg=name)


def test_eval_loss_is_model_loss(tmp_path):
    trainer = GenesisTrainer(model=make_tiny_model(), args=make_training_args(str(tmp_path)))
    batch = TokenDataset(4)[0]
    inputs = {key: value[None] for key, value in batch.items()}
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(**inputs).loss
        loss = trainer.compute_loss(trainer.model, inputs)
    torch.testing.assert_close(loss, expected)


def test_missing_labels_raise(tmp_path):
    trainer = GenesisTrainer(model=make_tiny_model(), args=make_training_args(str(tmp_path)))
    trainer.model.train()
    with pytest.raises(ValueError, match="labels"):
        trainer.compute_loss(trainer.model, {"input_ids": torch.zeros(1, 8, dtype=torch.long)})


def test_foreign_optimizer_rejected_with_nan_skip(tmp_path):
    model = make_tiny_model()
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(ValueError, match="GenesisOptimizer"):
        GenesisTrainer(model=model, args=make_training_args(str(tmp_path)), optimizers=(optimizer, None))
