# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Benchmark training throughput and memory of Genesis against a dense Llama baseline of the same shape.

All variants run in this one process and take turns window by window (see `trainer_genesis.benchmarking`).
They are dense `LlamaForCausalLM` with a plain `Trainer` and AdamW, Genesis with every library default,
Genesis with every technique off and with each technique alone, and compiled copies of some of them. The
results go to a Markdown page (default `docs/BENCHMARKS.md`).

    .venv/bin/python scripts/benchmark.py              # the measurement behind docs/BENCHMARKS.md
    .venv/bin/python scripts/benchmark.py --smoke      # a few seconds, tiny model, page in a temp folder
"""

import argparse
import logging
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

from modeling_genesis import GenesisConfig
from trainer_genesis.ablation import (
    TECHNIQUES,
    TECHNIQUES_BY_NAME,
    Variant,
    dense_adamw,
    full_recipe,
    full_without,
    shared_training_kwargs,
    ternary_adamw,
    ternary_with,
)
from trainer_genesis.benchmarking import (
    RandomTokenDataset,
    VariantMeasurement,
    measure_variants,
    return_freed_memory_to_os,
)
from trainer_genesis.model_card import describe_hardware
from trainer_genesis.presets import parse_config_overrides
from trainer_genesis.pretrain import git_revision, software_versions

logger = logging.getLogger("benchmark")

REPO_ROOT = Path(__file__).resolve().parent.parent
BASELINE = "dense-adamw"
# The shape of the dense and the Genesis models; the other GenesisConfig fields keep their library defaults
# (two MTP heads, no memory slots). With it the default run took about 12 minutes, 7 of them compiling, with
# one torch thread on a shared 2-core AMD EPYC (docs/BENCHMARKS.md).
DEFAULT_SHAPE = (
    "hidden_size=128,intermediate_size=352,num_hidden_layers=4,num_attention_heads=4,vocab_size=4096,"
    "max_position_embeddings=128"
)
SMOKE_SHAPE = (
    "hidden_size=32,intermediate_size=64,num_hidden_layers=2,num_attention_heads=2,vocab_size=128,"
    "max_position_embeddings=16"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config_overrides",
        default=DEFAULT_SHAPE,
        help="GenesisConfig fields as key=value,...; the dense model copies the shape. Default: %(default)s.",
    )
    parser.add_argument("--block_size", type=int, default=128, help="Tokens per training block.")
    parser.add_argument("--batch_size", type=int, default=8, help="Blocks per optimizer step.")
    parser.add_argument(
        "--window_steps",
        type=int,
        default=3,
        help="Optimizer steps per window; a multiple of 3 gives the default loop schedule's mix of 1, 2 and 3 "
        "loops in every window.",
    )
    parser.add_argument(
        "--windows", type=int, default=3, help="Timed windows per variant, after one warm-up."
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        default=None,
        help="Measure only these variants (names as in the page); the dense baseline is always measured.",
    )
    parser.add_argument(
        "--compile",
        nargs="*",
        default=[BASELINE, "full"],
        help="Variants also measured with torch.compile (nn.Module.compile).",
    )
    parser.add_argument(
        "--num_threads", type=int, default=None, help="torch intra-op threads (default: torch's)."
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "docs" / "BENCHMARKS.md", help="Page to write."
    )
    parser.add_argument("--note", default="", help="Sentence on the page about the conditions of the run.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the weights and the random tokens.")
    parser.add_argument(
        "--smoke", action="store_true", help="Tiny model, 1 window, no compilation; page in a temp folder."
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.config_overrides, args.block_size, args.batch_size = SMOKE_SHAPE, 16, 2
        args.windows, args.compile = 1, []
        if args.output == parser.get_default("output"):
            args.output = Path(tempfile.mkdtemp(prefix="genesis-benchmark-")) / "BENCHMARKS.md"
    if args.window_steps < 1 or args.windows < 1:
        parser.error("--window_steps and --windows must be at least 1.")
    return args


def benchmark_variants(selected: list[str] | None, compiled: list[str]) -> list[Variant]:
    """Return the variants to time: baselines, the full recipe with and without Muon, each technique alone.

    Args:
        selected: names of the eager variants to keep (the dense baseline and the eager twins of
            `compiled` always stay); `None` keeps all.
        compiled: names of variants to measure a second time under `torch.compile`.
    """
    variants = [
        dense_adamw(),
        ternary_adamw(),
        full_recipe(),
        full_without(TECHNIQUES_BY_NAME["muon"]),
        *(ternary_with(technique) for technique in TECHNIQUES),
    ]
    by_name = {variant.name: variant for variant in variants}
    for option, names in (("--variants", selected or []), ("--compile", compiled)):
        unknown = sorted(set(names) - set(by_name))
        if unknown:
            raise ValueError(f"{option} names unknown variants {unknown}; choose from {sorted(by_name)}.")
    if selected is not None:
        # A compiled variant's eager twin stays, so the compile table can compare the two.
        variants = [variant for variant in variants if variant.name in {BASELINE, *selected, *compiled}]
    for name in compiled:
        variant = by_name[name].derive(f"{name}+compile", f"{by_name[name].description}, torch.compile")
        variant.compile = True
        variants.append(variant)
    return variants


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stdout)
    transformers.utils.logging.set_verbosity_warning()
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    return_freed_memory_to_os()

    config_kwargs = parse_config_overrides(args.config_overrides)
    vocab_size = GenesisConfig(**config_kwargs).vocab_size
    blocks = args.batch_size * args.window_steps
    dataset = RandomTokenDataset(blocks, args.block_size, vocab_size, args.seed)
    previous_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="genesis-benchmark-run-") as output_dir:
        # An empty TorchInductor cache, so the compile time is that of a first compilation.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(output_dir) / "inductor-cache")
        training_kwargs = shared_training_kwargs(
            output_dir, args.window_steps, args.batch_size, args.seed, logging_steps=args.window_steps
        )
        load_before = os.getloadavg()
        start = time.perf_counter()
        try:
            measurements = measure_variants(
                benchmark_variants(args.variants, args.compile),
                config_kwargs,
                dataset,
                training_kwargs,
                args.windows,
                args.seed,
            )
        finally:
            if previous_cache is None:
                del os.environ["TORCHINDUCTOR_CACHE_DIR"]
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous_cache
        elapsed = time.perf_counter() - start
    page = render_page(args, argv, config_kwargs, measurements, elapsed, (load_before, os.getloadavg()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page)
    logger.info("Wrote %s after %.0f s of measurement.", args.output, elapsed)
    return args.output


def _mib(num_bytes: float) -> str:
    return f"{num_bytes / 2**20:.0f}"


def render_table(measurements: list[VariantMeasurement]) -> list[str]:
    """Return the Markdown rows of the main table, one per variant."""
    baseline = next(m for m in measurements if m.variant.name == BASELINE).tokens_per_second
    lines = [
        "| variant | what it trains | tokens/s | window range | vs dense | step peak MiB | resident MiB "
        "| warm-up extra s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for measurement in measurements:
        windows = measurement.window_tokens_per_second
        lines.append(
            f"| `{measurement.variant.name}` | {measurement.variant.description} "
            f"| {measurement.tokens_per_second:,.0f} | {min(windows):,.0f}-{max(windows):,.0f} "
            f"| {measurement.tokens_per_second / baseline:.2f}x "
            f"| {_mib(statistics.median(measurement.window_peak_bytes))} | {_mib(measurement.resident_bytes)} "
            f"| {measurement.warmup_overhead_seconds:.1f} |"
        )
    return lines


def render_compile_table(measurements: list[VariantMeasurement]) -> list[str]:
    """Return the Markdown rows comparing each compiled variant with its eager twin."""
    by_name = {m.variant.name: m for m in measurements}
    lines = [
        "| variant | eager tokens/s | compiled tokens/s | speed-up | compile and warm-up s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for measurement in measurements:
        if not measurement.variant.compile:
            continue
        eager = by_name[measurement.variant.name.removesuffix("+compile")]
        lines.append(
            f"| `{eager.variant.name}` | {eager.tokens_per_second:,.0f} | {measurement.tokens_per_second:,.0f} "
            f"| {measurement.tokens_per_second / eager.tokens_per_second:.2f}x "
            f"| {measurement.warmup_overhead_seconds:.0f} |"
        )
    return lines if len(lines) > 2 else []


def render_page(
    args: argparse.Namespace,
    argv: list[str] | None,
    config_kwargs: dict,
    measurements: list[VariantMeasurement],
    elapsed: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    """Return the Markdown page with the command, the machine, the settings and the tables."""
    command_args = sys.argv[1:] if argv is None else argv
    versions = ", ".join(f"{k.removesuffix('_version')} {v}" for k, v in software_versions().items())
    shape = ", ".join(f"{key}={value}" for key, value in config_kwargs.items())
    tokens = args.batch_size * args.block_size * args.window_steps
    lines = [
        "# Training throughput",
        "",
        "Generated by `scripts/benchmark.py`; rerun this to regenerate the page:",
        "",
        "```bash",
        f".venv/bin/python scripts/benchmark.py {shlex.join(command_args)}".rstrip(),
        "```",
        "",
        f"- Machine: {describe_hardware()}; torch threads: {torch.get_num_threads()}.",
        f"- Software: {versions}; git revision {git_revision()}.",
        f"- Load average (1, 5, 15 min) before: {_load(load[0])}; after: {_load(load[1])}.",
        f"- Measurement time: {elapsed:.0f} s. {args.note}".rstrip(),
        f"- Shape, shared by the dense and the Genesis models: {shape}; other GenesisConfig fields at their "
        "defaults.",
        f"- A window is {args.window_steps} optimizer steps of {args.batch_size} blocks of {args.block_size} "
        f"random tokens ({tokens:,} tokens). Each variant runs one warm-up window, then {args.windows} timed "
        "windows; the variants take turns window by window.",
        "",
        *render_table(measurements),
        "",
        *_column_notes(),
        *_muon_note(),
    ]
    compile_lines = render_compile_table(measurements)
    if compile_lines:
        lines += ["", "## torch.compile", "", *compile_lines, "", *_compile_notes()]
    return "\n".join(lines) + "\n"


def _load(values: tuple[float, ...]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _column_notes() -> list[str]:
    return [
        "Columns: *tokens/s* counts training tokens over all timed windows; *window range* is the slowest "
        "and fastest window; *vs dense* divides by `dense-adamw`. *Step peak* is the median over windows of the "
        "peak memory increase during a window over the memory at its start (activations, gradients, "
        "temporaries). On CPU it comes from the process RSS, sampled every 5 ms with glibc set to return freed "
        "blocks to the system. *Resident* is the memory added by building the variant and running its warm-up window "
        "(weights, optimizer state, EMA copies, compiled code). *Warm-up extra* is the warm-up window's time "
        "beyond a timed window's median.",
        "",
        "Every window restarts the LR schedule and the loop schedule (1, 2, then 3 passes over the decoder "
        "stack for a third of the steps each), so `full` and `only-loop_schedule` run their average depth of "
        "2 passes. `only-progressive_unfreezing` freezes blocks early in each window, as a short run would.",
    ]


def cpu_has_bfloat16_matmul() -> bool | None:
    """Return whether `/proc/cpuinfo` lists AVX512-BF16 or AMX-BF16, or `None` when it cannot be read."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _muon_note() -> list[str]:
    if torch.cuda.is_available():
        return []
    has_bfloat16 = cpu_has_bfloat16_matmul()
    listed = {True: "lists", False: "does not list", None: "could not be read for"}[has_bfloat16]
    return [
        "",
        "`torch.optim.Muon` (torch 2.13) runs its Newton-Schulz iteration in bfloat16, so on CPU its step "
        f"depends on bfloat16 matrix instructions; this CPU's `/proc/cpuinfo` {listed} `avx512_bf16` or "
        "`amx_bf16`. Compare `full` with `full-no-muon` and `only-muon` with `ternary-adamw`.",
    ]


def _compile_notes() -> list[str]:
    return [
        "Compiled with `nn.Module.compile()` (TorchInductor) before the trainer is built. *Compile and "
        "warm-up* is the warm-up window's time beyond a timed window's median. It starts from an empty "
        "TorchInductor cache (a fresh `TORCHINDUCTOR_CACHE_DIR`), so it includes building every kernel; with "
        "the loop schedule the forward and backward are compiled once per loop count.",
    ]


if __name__ == "__main__":
    main()
