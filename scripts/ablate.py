# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Ablate every Genesis technique at a fixed token budget and write the results page.

The variants are dense AdamW, ternary AdamW, the full recipe, the full recipe without or with one technique,
and the other weight STE. Each trains once per seed with the same tokenizer, block order, token budget and
LR schedule, and is scored on the same held-out blocks. Each (corpus, variant, seed) result is stored as JSON under
`--output_dir` as soon as it finishes and reused on a rerun with the same settings, so a long ablation can be
split into several commands. The page (default `docs/ABLATION.md`) is rebuilt from every stored result.

    .venv/bin/python scripts/ablate.py                                       # embedded corpus
    .venv/bin/python scripts/ablate.py --train_files ../shared/data/tinyshakespeare.txt
    .venv/bin/python scripts/ablate.py --smoke                               # seconds, temp folder
"""

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import shlex
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from modeling_genesis import GenesisConfig
from trainer_genesis.ablation import (
    TECHNIQUES,
    AblationSettings,
    HeldOutEvaluator,
    ablation_variants,
    prepare_corpus,
    run_ablation_job,
)
from trainer_genesis.model_card import describe_hardware
from trainer_genesis.presets import parse_config_overrides
from trainer_genesis.pretrain import git_revision, software_versions

logger = logging.getLogger("ablate")

REPO_ROOT = Path(__file__).resolve().parent.parent
# The shape of every model; other GenesisConfig fields keep their library defaults. With the default budget,
# the whole ablation (16 variants, 2 seeds, 2 corpora) took about 20 minutes with one torch thread on a
# shared 2-core AMD EPYC (docs/ABLATION.md).
DEFAULT_SHAPE = (
    "hidden_size=64,intermediate_size=176,num_hidden_layers=2,num_attention_heads=4,vocab_size=1024,"
    "max_position_embeddings=128"
)
SMOKE_SHAPE = (
    "hidden_size=32,intermediate_size=64,num_hidden_layers=2,num_attention_heads=2,vocab_size=300,"
    "max_position_embeddings=32"
)
SMOKE_VARIANTS = ["dense-adamw", "ternary-adamw", "full", "full-no-mtp"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--train_files", nargs="*", default=None, help="Text files to ablate on (default: embedded corpus)."
    )
    parser.add_argument("--output_dir", type=Path, default=REPO_ROOT / "outputs" / "ablation")
    parser.add_argument(
        "--page", type=Path, default=REPO_ROOT / "docs" / "ABLATION.md", help="Page to write."
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="Seeds of weights and block order."
    )
    parser.add_argument("--variants", nargs="*", default=None, help="Run only these variants (default: all).")
    parser.add_argument(
        "--config_overrides",
        default=DEFAULT_SHAPE,
        help="GenesisConfig fields as key=value,... for every model.",
    )
    parser.add_argument("--block_size", type=int, default=128, help="Tokens per block.")
    parser.add_argument("--batch_size", type=int, default=8, help="Blocks per optimizer step.")
    parser.add_argument("--max_steps", type=int, default=60, help="Optimizer steps of every run.")
    parser.add_argument(
        "--eval_steps", type=int, default=10, help="Evaluate every this many steps and at the end."
    )
    parser.add_argument(
        "--eval_blocks", type=int, default=48, help="Held-out blocks scored at each evaluation."
    )
    parser.add_argument(
        "--learning_rate", type=float, default=2e-3, help="Peak AdamW LR (cosine, 10%% warm-up)."
    )
    parser.add_argument(
        "--num_threads", type=int, default=None, help="torch intra-op threads (default: torch's)."
    )
    parser.add_argument(
        "--note", default="", help="Sentence on the page about the conditions of this command."
    )
    parser.add_argument(
        "--render_only", action="store_true", help="Rebuild the page from stored results only."
    )
    parser.add_argument("--smoke", action="store_true", help="Tiny model, 6 steps, 4 variants, temp folders.")
    args = parser.parse_args(argv)
    if args.smoke:
        apply_smoke_settings(args, parser)
    if args.block_size > parse_config_overrides(args.config_overrides).get("max_position_embeddings", 2048):
        parser.error("--block_size is larger than max_position_embeddings in --config_overrides.")
    if args.eval_steps < 1 or args.max_steps < 1:
        parser.error("--max_steps and --eval_steps must be at least 1.")
    return args


def apply_smoke_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Shrink everything for a test run on the standard library's `json` package, in temp folders."""
    args.config_overrides, args.block_size, args.batch_size = SMOKE_SHAPE, 32, 2
    args.max_steps, args.eval_steps, args.eval_blocks = 6, 3, 2
    args.variants = args.variants or SMOKE_VARIANTS
    temporary = Path(tempfile.mkdtemp(prefix="genesis-ablation-"))
    if args.output_dir == parser.get_default("output_dir"):
        args.output_dir = temporary / "runs"
    if args.page == parser.get_default("page"):
        args.page = temporary / "ABLATION.md"


def corpus_name(train_files: list[str] | None, smoke: bool) -> str:
    """Return the corpus's name in result paths: `stdlib`, or the first file's stem."""
    if train_files:
        return Path(train_files[0]).stem
    return "stdlib-json" if smoke else "stdlib"


def run_corpus(args: argparse.Namespace, argv: list[str]) -> None:
    """Train every missing (variant, seed) of this command's corpus and log the command's conditions."""
    name = corpus_name(args.train_files, args.smoke)
    model_shape = parse_config_overrides(args.config_overrides)
    corpus = prepare_corpus(
        name,
        args.train_files,
        model_shape.get("vocab_size", 8192),
        args.block_size,
        args.eval_blocks,
        args.output_dir / name,
        stdlib_root=Path(sysconfig.get_paths()["stdlib"]) / "json" if args.smoke else None,
    )
    settings = AblationSettings(
        model=model_shape,
        block_size=args.block_size,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        eval_steps=args.eval_steps,
        eval_blocks=args.eval_blocks,
        learning_rate=args.learning_rate,
    )
    evaluator = HeldOutEvaluator(corpus.eval_input_ids, corpus.byte_lengths, batch_size=16)
    variants = select_variants(args.variants)
    load_before, start = os.getloadavg(), time.perf_counter()
    for index, variant in enumerate(variants, start=1):
        for seed in args.seeds:
            result = run_ablation_job(variant, seed, corpus, settings, evaluator, args.output_dir)
            logger.info(
                "[%d/%d] %s seed %d: held-out loss %.4f, %.0f s",
                index,
                len(variants),
                variant.name,
                seed,
                result["final"]["loss"],
                result["train_seconds"],
            )
    record = {
        "corpus": name,
        "command": ".venv/bin/python scripts/ablate.py " + shlex.join(command_with_file_names(argv)),
        "data_files": [describe_file(path) for path in args.train_files or []],
        "hardware": describe_hardware(),
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "seconds": round(time.perf_counter() - start),
        "note": args.note,
        "settings": dataclasses.asdict(settings),
    }
    with open(args.output_dir / "commands.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")


def command_with_file_names(argv: list[str]) -> list[str]:
    """Return `argv` with each --train_files path cut to its file name, which the page identifies by hash."""
    shown, in_files = [], False
    for item in argv:
        if item.startswith("--"):
            in_files = item == "--train_files"
            shown.append(item)
        else:
            shown.append(Path(item).name if in_files else item)
    return shown


def describe_file(path: str) -> str:
    """Return a file's name, size and SHA-256, so a reader can check they ablate on the same data."""
    content = Path(path).read_bytes()
    return f"`{Path(path).name}`: {len(content):,} bytes, SHA-256 {hashlib.sha256(content).hexdigest()}"


def select_variants(names: list[str] | None) -> list:
    """Return the ablation variants named in `names` (all when `None`), in the page's order."""
    variants = ablation_variants()
    if names is None:
        return variants
    unknown = sorted(set(names) - {variant.name for variant in variants})
    if unknown:
        raise ValueError(
            f"--variants names unknown variants {unknown}; choose from {[v.name for v in variants]}."
        )
    return [variant for variant in variants if variant.name in names]


@dataclass
class RowSummary:
    """Mean and range over seeds of one variant on one corpus."""

    variant: str
    description: str
    seeds: list[int]
    loss: list[float]
    bits_per_byte: list[float]
    tokens_to_dense: list[int | None]
    train_seconds: list[float]
    train_tokens: int
    events: dict[str, int]


def tokens_to_reach(curve: list[dict[str, float]], target: float) -> int | None:
    """Return the training tokens at the first evaluation whose loss is at most `target`, or None."""
    for point in curve:
        if point["loss"] <= target:
            return int(point["tokens"])
    return None


def summarise(results: list[dict[str, Any]], dense_name: str) -> list[RowSummary]:
    """Group one corpus's results by variant; a seed's target is the dense run's final loss of that seed.

    Rows keep the order in which their variants first appear in `results`.
    """
    dense_final = {r["seed"]: r["final"]["loss"] for r in results if r["variant"]["name"] == dense_name}
    rows: dict[str, RowSummary] = {}
    for result in sorted(results, key=lambda r: r["seed"]):
        variant = result["variant"]
        row = rows.setdefault(
            variant["name"],
            RowSummary(
                variant["name"], variant["description"], [], [], [], [], [], result["train_tokens"], {}
            ),
        )
        row.seeds.append(result["seed"])
        row.loss.append(result["final"]["loss"])
        row.bits_per_byte.append(result["final"]["bits_per_byte"])
        target = dense_final.get(result["seed"])
        row.tokens_to_dense.append(None if target is None else tokens_to_reach(result["curve"], target))
        row.train_seconds.append(result["train_seconds"])
        for key, count in result["events"].items():
            row.events[key] = row.events.get(key, 0) + count
    return list(rows.values())


@dataclass
class PairedEffect:
    """Difference loss(with) - loss(without) over runs that share corpus and seed."""

    mean: float
    standard_error: float  # of the mean, from the spread of the pairs; NaN for one pair
    pairs: int
    lowered: int  # pairs whose difference is below 0


def paired_effect(results: list[dict[str, Any]], with_name: str, without_name: str) -> PairedEffect | None:
    """Return the mean paired difference of final held-out loss between two variants, or None without pairs.

    Runs pair up when they share corpus and seed, so both saw the same initial weights and block order.
    """
    final = {(r["corpus"], r["variant"]["name"], r["seed"]): r["final"]["loss"] for r in results}
    differences = [
        final[(corpus, with_name, seed)] - loss
        for (corpus, name, seed), loss in final.items()
        if name == without_name and (corpus, with_name, seed) in final
    ]
    if not differences:
        return None
    count = len(differences)
    mean = sum(differences) / count
    if count > 1:
        variance = sum((difference - mean) ** 2 for difference in differences) / (count - 1)
        standard_error = math.sqrt(variance / count)
    else:
        standard_error = math.nan
    return PairedEffect(mean, standard_error, count, sum(difference < 0 for difference in differences))


def spread(values: list[float]) -> float:
    """Half the range of `values`: the ± of a mean over two seeds."""
    return (max(values) - min(values)) / 2 if values else math.nan


def load_results(output_dir: Path) -> dict[str, list[dict]]:
    """Return, by corpus, the stored results made with the settings of that corpus's newest result.

    Results made with other settings (an older budget or shape) stay on disk but are left off the page.
    """
    paths = sorted(output_dir.glob("*/results/*.json"), key=lambda path: path.stat().st_mtime)
    newest_first: dict[str, list[dict]] = {}
    for path in reversed(paths):
        result = json.loads(path.read_text())
        newest_first.setdefault(result["corpus"], []).append(result)
    order = {variant.name: index for index, variant in enumerate(ablation_variants())}
    by_corpus = {}
    for corpus, results in sorted(newest_first.items()):
        current = [result for result in results if result["settings"] == results[0]["settings"]]
        if len(current) < len(results):
            logger.warning(
                "Leaving %d stored %s results made with other settings off the page.",
                len(results) - len(current),
                corpus,
            )
        by_corpus[corpus] = sorted(
            current, key=lambda r: (order.get(r["variant"]["name"], len(order)), r["seed"])
        )
    return by_corpus


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _with_spread(values: list[float]) -> str:
    return f"{_mean(values):.3f} ± {spread(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _tokens_to_dense(row: RowSummary) -> str:
    reached = [tokens for tokens in row.tokens_to_dense if tokens is not None]
    if len(reached) == len(row.tokens_to_dense):
        return f"{_mean(reached):,.0f}"
    if not reached:
        return "not reached"
    return f"{len(reached)} of {len(row.tokens_to_dense)} seeds: {', '.join(f'{t:,}' for t in reached)}"


def render_corpus_table(rows: list[RowSummary]) -> list[str]:
    """Return the Markdown table of one corpus, one row per variant."""
    full = next((row for row in rows if row.variant == "full"), None)
    lines = [
        "| variant | what changes | held-out loss | bits per byte | loss vs full | tokens to dense loss "
        "| train s | tokens/s | triggers |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        difference = "" if full is None else f"{_mean(row.loss) - _mean(full.loss):+.3f}"
        seconds = _mean(row.train_seconds)
        triggers = ", ".join(f"{key.replace('_', ' ')} {count}" for key, count in row.events.items())
        lines.append(
            f"| `{row.variant}` | {row.description} | {_with_spread(row.loss)} | {_with_spread(row.bits_per_byte)} "
            f"| {difference} | {_tokens_to_dense(row)} | {seconds:.0f} | {row.train_tokens / seconds:,.0f} "
            f"| {triggers} |"
        )
    return lines


def render_headline(corpus: str, rows: list[RowSummary]) -> str:
    """Return one sentence comparing the full recipe with ternary and dense AdamW at equal tokens."""
    by_name = {row.variant: row for row in rows}
    if not {"full", "ternary-adamw", "dense-adamw"} <= set(by_name):
        return f"- {corpus}: the full recipe, ternary AdamW or dense AdamW has no result yet."
    full, ternary, dense = (_mean(by_name[name].loss) for name in ("full", "ternary-adamw", "dense-adamw"))
    return (
        f"- {corpus}, {by_name['full'].train_tokens:,} training tokens: full recipe {full:.3f}, ternary AdamW "
        f"{ternary:.3f} (full recipe {full - ternary:+.3f}), dense AdamW {dense:.3f} (full recipe "
        f"{full - dense:+.3f}) nats per token held out."
    )


@dataclass
class Comparison:
    """One row of the effects table: a change, the variants with and without it, and what each sign means."""

    change: str
    default: str
    with_variant: str
    without_variant: str
    if_lower: str
    if_higher: str


def technique_comparisons() -> list[Comparison]:
    """Return the effect rows: each technique against its absence, and the other weight STE against the default."""
    comparisons = []
    for technique in TECHNIQUES:
        if technique.default_on:
            comparisons.append(
                Comparison(
                    technique.name, "on", "full", f"full-no-{technique.name}", "keep on", "default off"
                )
            )
        else:
            comparisons.append(
                Comparison(
                    technique.name, "off", f"full-plus-{technique.name}", "full", "turn on", "keep off"
                )
            )
    default_ste = GenesisConfig().weight_ste
    for variant in ablation_variants():
        if variant.name.endswith("-ste"):
            ste = variant.config_overrides["weight_ste"]
            comparisons.append(
                Comparison(
                    f"`weight_ste={ste}`",
                    f"`{default_ste}`",
                    variant.name,
                    "full",
                    f"make `{ste}` the default",
                    f"keep `{default_ste}`",
                )
            )
    return comparisons


def render_effects(all_results: list[dict]) -> list[str]:
    """Return the table of each technique's paired effect on held-out loss, over every corpus and seed."""
    lines = [
        "| change | library default | loss with - without (± standard error) | pairs where it lowered the loss "
        "| measured verdict |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for row in technique_comparisons():
        effect = paired_effect(all_results, row.with_variant, row.without_variant)
        if effect is None:
            lines.append(f"| {row.change} | {row.default} | | | not measured |")
            continue
        if effect.mean == 0:
            verdict = "no effect on loss"
        elif effect.mean < 0:
            verdict = f"lowered the loss: {row.if_lower}"
        else:
            verdict = f"raised the loss: {row.if_higher}"
        if abs(effect.mean) < 2 * effect.standard_error:
            verdict += " (within 2 standard errors)"
        lines.append(
            f"| {row.change} | {row.default} | {effect.mean:+.4f} ± {effect.standard_error:.4f} "
            f"| {effect.lowered} of {effect.pairs} | {verdict} |"
        )
    return lines


def render_settings(results: list[dict], commands: list[dict]) -> list[str]:
    """Return the lines describing one corpus's settings and every command that added its results."""
    settings = results[0]["settings"]
    tokens = settings["max_steps"] * settings["batch_size"] * settings["block_size"]
    shape = ", ".join(f"{key}={value}" for key, value in settings["model"].items())
    seeds = sorted({result["seed"] for result in results})
    lines = [
        f"- Model shape (dense and Genesis): {shape}; other GenesisConfig fields at their defaults.",
        f"- Budget: {settings['max_steps']} optimizer steps of {settings['batch_size']} blocks of "
        f"{settings['block_size']} tokens = {tokens:,} training tokens per run; AdamW peak LR "
        f"{settings['learning_rate']}, cosine schedule with 10% warm-up, weight decay 0.1, gradient clipping "
        "0.5 for every variant (Muon groups use Genesis's `muon_learning_rate`).",
        f"- Held-out set: {settings['eval_blocks']} evenly spaced blocks of the validation split, scored every "
        f"{settings['eval_steps']} steps and at the end. Seeds: {', '.join(map(str, seeds))}.",
    ]
    for command in commands:
        if command["corpus"] != results[0]["corpus"] or command.get("settings") != settings:
            continue
        load = ", ".join(f"{value:.2f}" for value in command["load_before"])
        lines.append(
            f"- Command: `{command['command']}` ({command['hardware']}; {command['threads']} torch thread(s); "
            f"load average before {load}; {command['seconds']} s). {command['note']}".rstrip()
        )
        for data_file in command.get("data_files", []):
            lines.append(f"  - `--train_files` is shown by file name; pass the path of {data_file}.")
    return lines


def render_page(output_dir: Path) -> str:
    """Return the ablation page built from every result and command log stored under `output_dir`."""
    by_corpus = load_results(output_dir)
    if not by_corpus:
        raise FileNotFoundError(f"No stored ablation result under {output_dir}; run without --render_only.")
    log_path = output_dir / "commands.jsonl"
    commands = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.is_file() else []
    summaries = {corpus: summarise(results, "dense-adamw") for corpus, results in by_corpus.items()}
    all_results = [result for results in by_corpus.values() for result in results]
    versions = ", ".join(f"{k.removesuffix('_version')} {v}" for k, v in software_versions().items())
    lines = [
        "# Ablation",
        "",
        "Generated by `scripts/ablate.py` from the results stored under its `--output_dir`; rerun the commands "
        "listed under each corpus to regenerate it (stored results are reused).",
        "",
        f"Software: {versions}; page built at git revision {git_revision()}.",
        "",
        "## Headline: held-out loss at equal training tokens",
        "",
        *(render_headline(corpus, rows) for corpus, rows in summaries.items()),
    ]
    for corpus, rows in summaries.items():
        settings = render_settings(by_corpus[corpus], commands)
        lines += ["", f"## {corpus}", "", *settings, "", *render_corpus_table(rows)]
    lines += ["", "## Effect of each technique", "", *render_effects(all_results), "", *_page_notes()]
    return "\n".join(lines) + "\n"


def _page_notes() -> list[str]:
    return [
        "Held-out loss is the main head's cross-entropy in nats per token, as mean ± half the range over seeds. "
        "*Loss vs full* subtracts the full recipe's mean. *Tokens to dense loss* is the training tokens at the "
        "first evaluation whose loss is at or below the dense run's final loss of the same seed. *Train s* is "
        "the mean wall time of a run without its evaluations, on a machine that other jobs may share; "
        "`docs/BENCHMARKS.md` measures throughput with the variants alternating. *Triggers* sums, over seeds, "
        "the plateau bursts, skipped steps and memory writes.",
        "",
        "Effects pair runs with the same corpus and seed (same initial weights, same block order). A technique "
        "that is on by default is compared as `full` against `full-no-<technique>`, one that is off as "
        "`full-plus-<technique>` against `full`; a negative difference means the technique lowered the loss. "
        "The standard error comes from the spread of the paired differences, so with few pairs it is itself "
        "uncertain.",
        "",
        "The default budget and shape were sized so that both corpora fit in about 20 minutes of a shared "
        "2-core CPU (the durations of the commands above); `--max_steps` and `--config_overrides` set a longer "
        "or larger ablation. Such a budget covers only the start of training, so an effect measured here may "
        "change sign in longer runs. Plateau bursts, NaN/Inf skipping and surprise memory (which masks out unwritten slots) act only "
        "on a trigger: without a burst, a skipped step or a memory write in the *triggers* column, their rows "
        "differ from `full` only in cost.",
    ]


def main(argv: list[str] | None = None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stdout)
    transformers.utils.logging.set_verbosity_warning()
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        run_corpus(args, argv)

    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(render_page(args.output_dir))
    logger.info("Wrote %s", args.page)
    return args.page


if __name__ == "__main__":
    main()
