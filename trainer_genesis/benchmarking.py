# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Training throughput and peak memory of several variants measured side by side in one process.

Each variant keeps one model and one trainer for the whole benchmark. A measurement window is one
`trainer.train()` call of `window_steps` optimizer steps: the optimizer (and its state) and the model
weights carry over from window to window, while the LR schedule, the loop schedule and the step counter
start again. Variants take turns window by window, so a change in machine load shows up in every
variant instead of in one.
"""

import ctypes
import ctypes.util
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.utils import logging

from .ablation import Variant, build_model, build_trainer

logger = logging.get_logger(__name__)

# glibc `mallopt` parameters, from <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def return_freed_memory_to_os(threshold_bytes: int = 128 * 1024) -> bool:
    """Make glibc serve allocations of `threshold_bytes` or more with `mmap` and unmap them on free.

    By default glibc raises its `mmap` threshold after large blocks are freed and keeps later ones in the
    heap, so the process RSS stays high after a variant's step and hides the next variant's peak. Setting
    the thresholds explicitly turns that adjustment off (see `man mallopt`). It costs page faults on each
    large allocation, the same for every variant.

    Returns:
        Whether the thresholds were set; `False` where the C library is not glibc.
    """
    library = ctypes.util.find_library("c")
    if library is None:
        return False
    libc = ctypes.CDLL(library)
    if not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, threshold_bytes)
    )


def resident_set_bytes() -> int:
    """Return this process's resident set size in bytes, read from `/proc/self/statm`."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def current_memory_bytes() -> int:
    """Return the memory a variant's state occupies: CUDA allocations on GPU, the process RSS on CPU."""
    if torch.cuda.is_available():
        return torch.cuda.memory_allocated()
    return resident_set_bytes()


class PeakMemoryMonitor:
    """Peak memory increase over a `with` block, relative to its start.

    On GPU it reads `torch.cuda.max_memory_allocated`. On CPU a thread samples the process RSS every
    `interval` seconds, so a peak shorter than the interval can be missed.

    NOTE: the CUDA branch has not been run; the published figures come from CPU-only machines.
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_increase = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMemoryMonitor":
        self._baseline = current_memory_bytes()
        self._peak = self._baseline
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        else:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, resident_set_bytes())

    def __exit__(self, *exc_info: Any) -> None:
        if torch.cuda.is_available():
            self._peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, resident_set_bytes())
        self.peak_increase = self._peak - self._baseline


class StepWindowTimer(TrainerCallback):
    """Wall time from the first optimizer step's start to the last step's end of a `train()` call."""

    def __init__(self):
        self.start: float | None = None
        self.end: float | None = None

    def reset(self) -> None:
        """Forget the last window."""
        self.start = self.end = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.start is None:
            self.start = _synchronized_time()

    def on_step_end(self, args, state, control, **kwargs):
        self.end = _synchronized_time()

    @property
    def seconds(self) -> float:
        """Length of the last window."""
        if self.start is None or self.end is None:
            raise RuntimeError("The window ran no optimizer step; check max_steps and the dataset length.")
        return self.end - self.start


def _synchronized_time() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


@dataclass
class VariantMeasurement:
    """Windows measured for one variant: seconds and peak memory increase of each."""

    variant: Variant
    tokens_per_window: int
    warmup_seconds: float = 0.0
    resident_bytes: int = 0
    window_seconds: list[float] = field(default_factory=list)
    window_peak_bytes: list[int] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        """Training tokens per second over all timed windows."""
        return self.tokens_per_window * len(self.window_seconds) / sum(self.window_seconds)

    @property
    def window_tokens_per_second(self) -> list[float]:
        """Training tokens per second of each timed window."""
        return [self.tokens_per_window / seconds for seconds in self.window_seconds]

    @property
    def warmup_overhead_seconds(self) -> float:
        """Warm-up window time beyond a timed window's median: compilation, lazy state, first-call costs."""
        return self.warmup_seconds - statistics.median(self.window_seconds)


class VariantRunner:
    """One variant's model, trainer and window timer, built once and trained window by window."""

    def __init__(
        self,
        variant: Variant,
        config_kwargs: dict[str, Any],
        train_dataset: torch.utils.data.Dataset,
        training_kwargs: dict[str, Any],
        seed: int,
    ):
        self.timer = StepWindowTimer()
        self.model: nn.Module = build_model(variant, config_kwargs, seed)
        self.trainer: Trainer = build_trainer(
            variant, self.model, train_dataset, training_kwargs, callbacks=[self.timer]
        )
        args = self.trainer.args
        self.measurement = VariantMeasurement(
            variant, args.max_steps * args.per_device_train_batch_size * train_dataset[0]["input_ids"].numel()
        )

    def run_window(self) -> tuple[float, int]:
        """Train one window and return its seconds and peak memory increase in bytes."""
        self.timer.reset()
        with PeakMemoryMonitor() as monitor:
            self.trainer.train()
        return self.timer.seconds, monitor.peak_increase


def measure_variants(
    variants: list[Variant],
    config_kwargs: dict[str, Any],
    train_dataset: torch.utils.data.Dataset,
    training_kwargs: dict[str, Any],
    windows: int,
    seed: int = 0,
) -> list[VariantMeasurement]:
    """Warm each variant up with one window, then time `windows` windows per variant in turn.

    The warm-up window of a compiled variant includes its compilation. A variant's resident memory is the
    memory increase from before its model was built to the end of its warm-up window (weights, optimizer
    state and other state kept between steps).
    """
    runners = []
    for variant in variants:
        before = current_memory_bytes()
        runner = VariantRunner(variant, config_kwargs, train_dataset, training_kwargs, seed)
        runner.measurement.warmup_seconds, _ = runner.run_window()
        runner.measurement.resident_bytes = current_memory_bytes() - before
        logger.info("Warmed up %s in %.1f s.", variant.name, runner.measurement.warmup_seconds)
        runners.append(runner)
    for window in range(windows):
        for runner in runners:
            seconds, peak = runner.run_window()
            runner.measurement.window_seconds.append(seconds)
            runner.measurement.window_peak_bytes.append(peak)
        logger.info("Timed window %d of %d for every variant.", window + 1, windows)
    return [runner.measurement for runner in runners]


class RandomTokenDataset(torch.utils.data.Dataset):
    """Uniformly random token blocks with `labels = input_ids`; the compute per step does not depend on the text."""

    def __init__(self, num_blocks: int, block_size: int, vocab_size: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(0, vocab_size, (num_blocks, block_size), generator=generator)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.input_ids[index]}
