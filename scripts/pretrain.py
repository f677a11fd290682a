# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Pretrain a ternary Genesis model: `accelerate launch scripts/pretrain.py [--option value ...]`.

Without options it trains the `tiny` preset on the Python standard library source of this interpreter,
evaluates on held-out files and writes a loadable model folder with a model card to `outputs/genesis-tiny`.
Run with `--help` for every option (model, data, run and `GenesisTrainingArguments` fields).
"""

import logging
import os
import sys

# Idle OpenMP threads sleep instead of spinning. With another process busy on one of 2 cores, a training step
# of the tiny preset took 11 s with spinning threads, 1.6 s with sleeping ones and 1.9 s with one thread.
# It must be set before torch loads its OpenMP runtime; an explicit OMP_WAIT_POLICY is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import datasets  # noqa: E402
import transformers  # noqa: E402

from trainer_genesis.pretrain import build_trainer, finish_run, make_parser, set_cpu_threads


def setup_logging(log_level: int) -> None:
    """Log to stdout at `log_level` (lower on the main process than on the others)."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    for name in ("trainer_genesis", "modeling_genesis", "__main__"):
        logging.getLogger(name).setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    datasets.utils.logging.set_verbosity(max(log_level, logging.WARNING))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = make_parser()
    model_args, data_args, run_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    setup_logging(training_args.get_process_log_level())
    set_cpu_threads(run_args, training_args)

    run = build_trainer(model_args, data_args, run_args, training_args)
    run.train_metrics = run.trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint).metrics
    run.trainer.log_metrics("train", run.train_metrics)
    return finish_run(run)


if __name__ == "__main__":
    main()
