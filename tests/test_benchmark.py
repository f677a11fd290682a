# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Tests of the benchmark variants, the memory monitor and a smoke run of `scripts/benchmark.py`."""

import importlib.util
import os
import re
import time
from pathlib import Path

import pytest
import torch

from trainer_genesis.ablation import (
    TECHNIQUES,
    dense_adamw,
    full_recipe,
    ternary_adamw,
    ternary_with,
)
from trainer_genesis.benchmarking import (
    PeakMemoryMonitor,
    RandomTokenDataset,
    VariantMeasurement,
    return_freed_memory_to_os,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str):
    """Import `scripts/<name>.py` as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ternary_adamw_turns_every_technique_off():
    variant = ternary_adamw()
    for technique in TECHNIQUES:
        overrides = variant.config_overrides if technique.model_field else variant.training_overrides
        assert overrides[technique.switch] == technique.off, technique.name


def test_full_recipe_keeps_library_defaults():
    variant = full_recipe()
    assert variant.training_overrides == {}
    assert variant.config_overrides == {}
    assert not variant.dense


@pytest.mark.parametrize("technique", TECHNIQUES, ids=lambda technique: technique.name)
def test_single_technique_variant_changes_one_switch(technique):
    base, variant = ternary_adamw(), ternary_with(technique)
    changed = {
        key
        for key in {**base.training_overrides, **variant.training_overrides}
        if base.training_overrides.get(key) != variant.training_overrides.get(key)
    } | {
        key
        for key in {**base.config_overrides, **variant.config_overrides}
        if base.config_overrides.get(key) != variant.config_overrides.get(key)
    }
    assert changed == {technique.switch}
    assert technique.on_value != technique.off


def test_benchmark_variants_rejects_unknown_name():
    benchmark = load_script("benchmark")
    with pytest.raises(ValueError, match="only-nothing"):
        benchmark.benchmark_variants(["only-nothing"], [])
    with pytest.raises(ValueError, match="--compile"):
        benchmark.benchmark_variants(None, ["fast"])


def test_benchmark_variants_keeps_baseline_and_twins():
    benchmark = load_script("benchmark")
    names = [variant.name for variant in benchmark.benchmark_variants(["only-mtp"], ["full"])]
    assert names == ["dense-adamw", "full", "only-mtp", "full+compile"]


def test_peak_memory_monitor_sees_large_allocation():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU RSS sampler")
    return_freed_memory_to_os()
    with PeakMemoryMonitor(interval=0.001) as monitor:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written so the pages are resident
        time.sleep(0.05)
        del block
    assert monitor.peak_increase >= 48 * 2**20


def test_variant_measurement_throughput():
    measurement = VariantMeasurement(dense_adamw(), tokens_per_window=1000, warmup_seconds=5.0)
    measurement.window_seconds = [1.0, 2.0, 1.0]
    assert measurement.tokens_per_second == pytest.approx(750.0)
    assert measurement.window_tokens_per_second == [1000.0, 500.0, 1000.0]
    assert measurement.warmup_overhead_seconds == pytest.approx(4.0)


def test_random_token_dataset_labels_equal_inputs():
    dataset = RandomTokenDataset(num_blocks=4, block_size=8, vocab_size=10, seed=3)
    item = dataset[2]
    assert len(dataset) == 4
    assert torch.equal(item["input_ids"], item["labels"])
    assert int(item["input_ids"].max()) < 10


def test_benchmark_smoke_writes_page(tmp_path):
    benchmark = load_script("benchmark")
    page = tmp_path / "BENCHMARKS.md"
    cache_before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    written = benchmark.main(["--smoke", "--variants", "ternary-adamw", "full", "--output", str(page)])
    text = page.read_text()
    assert written == page
    assert ".venv/bin/python scripts/benchmark.py --smoke" in text
    rows = {match[0]: match[1] for match in re.findall(r"^\| `([\w+-]+)` \|.*?\| ([\d.]+)x \|", text, re.M)}
    assert set(rows) == {"dense-adamw", "ternary-adamw", "full"}
    assert rows["dense-adamw"] == "1.00"
    assert all(float(ratio) > 0 for ratio in rows.values())
    assert "## torch.compile" not in text
    assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") == cache_before
