# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Progressive depth: raise the model's `num_loops` (weight-shared passes over the decoder stack) during training.

The schedule is data: a list of `(start_fraction, num_loops)` stages, written on the command line as
`"1@0,2@1/3,3@2/3"` (1 loop from the start, 2 from a third of `max_steps`, 3 from two thirds).
Fractions are exact (`fractions.Fraction`), so "2@1/3" starts at step 3 of 9, not at step 4.
The loop count depends only on the optimizer step, so a resumed run picks the same count as the
uninterrupted one. The model's config always contains the current count, so a saved model or checkpoint
records the count it was last trained with.
"""

from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)


@dataclass(frozen=True)
class LoopStage:
    """From `start_fraction` of `max_steps` on, the decoder stack runs `num_loops` times."""

    start_fraction: Fraction
    num_loops: int


def parse_loop_schedule(text: str) -> list[LoopStage]:
    """Parse `"loops@fraction,..."` into stages, or an empty list for `""` (schedule off).

    Raises:
        ValueError: on a malformed stage, a first stage not at 0, fractions not strictly increasing
            or outside [0, 1), or a loop count below 1.
    """
    text = text.strip()
    if not text:
        return []
    stages = []
    for item in text.split(","):
        loops, separator, fraction = item.strip().partition("@")
        try:
            stage = LoopStage(start_fraction=Fraction(fraction), num_loops=int(loops))
        except (ValueError, ZeroDivisionError):
            separator = ""
        if not separator:
            raise ValueError(
                f"Invalid `loop_schedule` stage {item!r} in {text!r}: write each stage as LOOPS@FRACTION, "
                "for example '1@0,2@1/3,3@2/3'."
            )
        stages.append(stage)
    if stages[0].start_fraction != 0.0:
        raise ValueError(f"`loop_schedule` {text!r} must start at fraction 0, e.g. '1@0,2@0.5'.")
    for previous, stage in pairwise(stages):
        if not previous.start_fraction < stage.start_fraction < 1.0:
            raise ValueError(
                f"`loop_schedule` fractions in {text!r} must increase strictly and stay below 1."
            )
    if any(stage.num_loops < 1 for stage in stages):
        raise ValueError(f"Every loop count in `loop_schedule` {text!r} must be at least 1.")
    return stages


def loops_at(stages: list[LoopStage], step: int, max_steps: int) -> int:
    """Return the loop count of the last stage that has started at optimizer step `step`."""
    progress = Fraction(step, max(max_steps, 1))
    return [stage.num_loops for stage in stages if stage.start_fraction <= progress][-1]


class LoopScheduleCallback(TrainerCallback):
    """Set `model.config.num_loops` from the schedule before every optimizer step.

    Under `torch.compile` the forward is traced again once for each new loop count, since the
    count is a Python integer the graph depends on.
    """

    def __init__(self, stages: list[LoopStage]):
        if not stages:
            raise ValueError("LoopScheduleCallback needs at least one stage.")
        self.stages = stages
        self.num_loops = stages[0].num_loops

    def _apply(self, state, model) -> None:
        target = loops_at(self.stages, state.global_step, state.max_steps)
        if model is not None and model.config.num_loops != target:
            logger.info(
                f"Step {state.global_step}: decoder stack now runs {target} times (was {model.config.num_loops})."
            )
            model.config.num_loops = target
        self.num_loops = target

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.max_steps <= 0:
            raise ValueError("The loop schedule is given in fractions of `max_steps`: set `max_steps` > 0.")
        self._apply(state, model)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._apply(state, model)

    def metrics(self) -> dict[str, float]:
        """Return the values to log under the `train/` namespace."""
        return {"train/num_loops": float(self.num_loops)}
