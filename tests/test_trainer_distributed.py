# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Two-process CPU (gloo) run: a NaN loss on one process must skip the step on both, without a hang.

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

# Optimizer step -> (rank whose loss becomes NaN, micro-batch index). Micro-batch 0 runs no gradient all-reduce and
# micro-batch 1 (the last of two) runs one, so the test covers both paths of the agreement.
NAN_INJECTIONS = {1: (1, 0), 2: (0, 1)}
MAX_STEPS = 4


def run_worker(output_dir: str) -> None:
    from conftest import TokenDataset, make_tiny_model, make_training_args, training_logs
    from transformers import TrainerCallback

    from trainer_genesis import GenesisTrainer

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


@pytest.mark.slow
def test_nan_on_one_process_skips_on_both(tmp_path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(Path(__file__).resolve()),
        str(tmp_path),
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

    summaries = [json.loads((tmp_path / f"summary_rank{rank}.json").read_text()) for rank in (0, 1)]
    for summary in summaries:
        assert summary["world_size"] == 2
        assert summary["skipped_steps"] == len(NAN_INJECTIONS)
        assert summary["logged_skips"] == [0, 1, 2, 2]
    parameters = [torch.load(tmp_path / f"parameters_rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for name, value in parameters[0].items():
        assert torch.equal(value, parameters[1][name]), name


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run_worker(sys.argv[1])
