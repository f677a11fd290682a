# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Two-process CPU (gloo) runs: a NaN loss on one process must skip the step on both without a hang, and the
weighted loss must give the same gradients as one process with the same batch.

Run as a script, this file is the worker that `torch.distributed.run` starts on each process.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import StepRecorder, TokenDataset, make_tiny_model, make_training_args, training_logs
from transformers import TrainerCallback

from trainer_genesis import GenesisTrainer

# Optimizer step -> (rank whose loss becomes NaN, micro-batch index). Micro-batch 0 runs no gradient
# all-reduce and micro-batch 1 (the last of two) runs one, so the test covers both paths of the agreement.
NAN_INJECTIONS = {1: (1, 0), 2: (0, 1)}
MAX_STEPS = 4


# Two steps: the second is the first with non-uniform weights. Later steps would compare parameters that went
# through two differently rounded updates, and one flipped ternary value changes the loss visibly.
WEIGHTED_SETTINGS = {
    "max_steps": 2,
    "max_grad_norm": 0.0,
    "token_triage_max_weight": 1.5,
    "use_plateau_burst": False,
}


def run_nan_skip_worker(output_dir: str) -> None:
    rank = int(os.environ["RANK"])
    model = make_tiny_model()
    position = {"step": 0, "micro_batch": 0}

    class TrackMicroBatch(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            position["step"], position["micro_batch"] = state.global_step, 0

        def on_substep_end(self, args, state, control, **kwargs):
            position["micro_batch"] += 1

    def inject_nan(module, args, output):
        if module.training and NAN_INJECTIONS.get(position["step"]) == (rank, position["micro_batch"]):
            output.logits = output.logits * float("nan")
        return output

    model.register_forward_hook(inject_nan)
    trainer = GenesisTrainer(
        model=model,
        args=make_training_args(
            output_dir,
            max_steps=MAX_STEPS,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            use_plateau_burst=False,
            ddp_backend="gloo",
        ),
        train_dataset=TokenDataset(64),
        callbacks=[TrackMicroBatch()],
    )
    trainer.train()

    torch.save(
        {name: parameter.detach() for name, parameter in trainer.model.named_parameters()},
        Path(output_dir) / f"parameters_rank{rank}.pt",
    )
    summary = {
        "world_size": trainer.args.world_size,
        "skipped_steps": trainer.nonfinite_guard.skipped_steps,
        "logged_skips": [entry["train/skipped_steps"] for entry in training_logs(trainer)],
    }
    (Path(output_dir) / f"summary_rank{rank}.json").write_text(json.dumps(summary))


def run_weighted_worker(output_dir: str) -> None:
    recorder = StepRecorder()
    trainer = GenesisTrainer(
        model=make_tiny_model(),
        args=make_training_args(
            output_dir,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            ddp_backend="gloo",
            **WEIGHTED_SETTINGS,
        ),
        train_dataset=TokenDataset(64),
        callbacks=[recorder.callback],
    )
    trainer.train()
    if int(os.environ["RANK"]) == 0:
        torch.save(
            {"gradients": recorder.gradients, "logs": training_logs(trainer)},
            Path(output_dir) / "weighted.pt",
        )


def launch_two_processes(mode: str, output_dir: Path) -> None:
    """Run this file as the worker on two gloo processes and fail on an error or after 300 s."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(Path(__file__).resolve()),
        mode,
        str(output_dir),
    ]
    # A new session lets a timeout stop the launcher together with its two workers.
    launcher = subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = launcher.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.communicate()
        pytest.fail("the two-process run did not finish within 300 s (a collective is probably waiting)")
    assert launcher.returncode == 0, output[-6000:]


@pytest.mark.slow
def test_nan_on_one_process_skips_on_both(tmp_path):
    launch_two_processes("nan_skip", tmp_path)

    summaries = [json.loads((tmp_path / f"summary_rank{rank}.json").read_text()) for rank in (0, 1)]
    for summary in summaries:
        assert summary["world_size"] == 2
        assert summary["skipped_steps"] == len(NAN_INJECTIONS)
        assert summary["logged_skips"] == [0, 1, 2, 2]
    parameters = [torch.load(tmp_path / f"parameters_rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for name, value in parameters[0].items():
        assert torch.equal(value, parameters[1][name]), name


@pytest.mark.slow
def test_weighted_loss_same_on_two_processes(tmp_path):
    launch_two_processes("weighted", tmp_path / "two")
    two_processes = torch.load(tmp_path / "two" / "weighted.pt", weights_only=True)

    # One process with the same 8 sequences per optimizer step.
    recorder = StepRecorder()
    single_process = GenesisTrainer(
        model=make_tiny_model(),
        args=make_training_args(
            str(tmp_path / "one"),
            per_device_train_batch_size=4,
            gradient_accumulation_steps=2,
            **WEIGHTED_SETTINGS,
        ),
        train_dataset=TokenDataset(64),
        callbacks=[recorder.callback],
    )
    single_process.train()

    single_logs = training_logs(single_process)
    assert single_logs[1]["train/token_weight_max"] > 1.0, "weights must be non-uniform for the test to bite"
    for key in ("loss", "train/loss_main", "train/loss_mtp_2", "train/token_weight_max"):
        assert [entry[key] for entry in two_processes["logs"]] == pytest.approx(
            [entry[key] for entry in single_logs], rel=1e-5
        )
    for step, (two_process_grads, single_grads) in enumerate(
        zip(two_processes["gradients"], recorder.gradients, strict=True)
    ):
        for name, gradient in single_grads.items():
            torch.testing.assert_close(
                two_process_grads[name], gradient, rtol=1e-4, atol=1e-6, msg=f"step {step} {name}"
            )


if __name__ == "__main__":
    workers = {"nan_skip": run_nan_skip_worker, "weighted": run_weighted_worker}
    workers[sys.argv[1]](sys.argv[2])
