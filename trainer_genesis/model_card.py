# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Model card and loss curve of a pretraining run, written into the output folder."""

import math
import os
import platform
import string
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display is needed to render the PNG
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from transformers.utils import logging  # noqa: E402

logger = logging.get_logger(__name__)

# The repository-level template. It is not part of the installed package, so an installation without the
# repository passes its own template path to `write_model_card`.
MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "model_card.md"
LOSS_CURVE_FILE = "loss_curve.png"


def describe_hardware() -> str:
    """Return the accelerator or CPU model and the number of CPU cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())})
        return f"{torch.cuda.device_count()} x {', '.join(names)}, {cores} CPU cores"
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU only: {cpu}, {cores} cores"


def plot_loss_curve(log_history: list[dict[str, Any]], path: str | Path) -> bool:
    """Plot training loss and held-out cross-entropy against the step from `trainer.state.log_history`.

    Returns:
        Whether a plot was written; `False` when the history has no loss entry.
    """
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    held_out = [
        (entry["step"], entry["eval_cross_entropy"])
        for entry in log_history
        if "eval_cross_entropy" in entry and "step" in entry
    ]
    if not train and not held_out:
        logger.warning("No loss in the log history, so no loss curve is written.")
        return False
    figure, axis = plt.subplots(figsize=(7, 4))
    if train:
        axis.plot(*zip(*train, strict=True), label="training loss (main + weighted MTP)")
    if held_out:
        axis.plot(*zip(*held_out, strict=True), marker="o", label="held-out cross-entropy (main head)")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("nats per token")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def format_value(value: Any) -> str:
    """Format numbers for the card: 4 significant digits for floats, thousands separators for integers."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def render_model_card(values: dict[str, Any], template_path: str | Path = MODEL_CARD_TEMPLATE) -> str:
    """Fill the template's `$name` placeholders with `values`.

    Raises:
        FileNotFoundError: the template does not exist.
        KeyError: the template names a placeholder missing from `values`.
    """
    template = string.Template(Path(template_path).read_text(encoding="utf-8"))
    return template.substitute({key: format_value(value) for key, value in values.items()})


def write_model_card(
    output_dir: str | Path, values: dict[str, Any], template_path: str | Path = MODEL_CARD_TEMPLATE
) -> Path:
    """Write `README.md` (the model card) into `output_dir` and return its path."""
    path = Path(output_dir) / "README.md"
    path.write_text(render_model_card(values, template_path), encoding="utf-8")
    logger.info("Wrote the model card to %s.", path)
    return path
