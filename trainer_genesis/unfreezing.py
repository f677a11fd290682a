# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""Progressive unfreezing, bottom-up: decoder blocks start frozen and join training from the bottom.

Block i of L (0 = bottom) trains from optimizer step ceil(i * fraction * max_steps / L) on, so all
blocks train after `fraction` of `max_steps`. Embeddings, the final norm, `lm_head` and the MTP heads
always train. A frozen block's parameters have `requires_grad=False`, so they get no gradient and the
optimizers skip them entirely (no momentum, no weight decay). The direction is the reverse of the
top-down gradual unfreezing of ULMFiT (arXiv 1801.06146), which fine-tunes a pretrained model.
"""

import math

from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)


def num_trainable_blocks(step: int, max_steps: int, num_blocks: int, fraction: float) -> int:
    """Return how many bottom blocks train at optimizer step `step`."""
    if fraction <= 0:
        return num_blocks
    steps_per_block = fraction * max_steps / num_blocks
    return min(num_blocks, math.floor(step / steps_per_block) + 1)


class ProgressiveUnfreezingCallback(TrainerCallback):
    """Set `requires_grad` of each decoder block from the unfreezing schedule before every step.

    NOTE: under DistributedDataParallel, frozen blocks need `ddp_find_unused_parameters=True`.
    """

    def __init__(self, fraction: float):
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"`unfreeze_fraction` must be in (0, 1], got {fraction}.")
        self.fraction = fraction
        self.num_trainable = None

    def _apply(self, state, model) -> None:
        blocks = model.model.layers
        target = num_trainable_blocks(state.global_step, state.max_steps, len(blocks), self.fraction)
        if target == self.num_trainable:
            return
        for index, block in enumerate(blocks):
            block.requires_grad_(index < target)
        logger.info(f"Step {state.global_step}: {target} of {len(blocks)} decoder blocks train.")
        self.num_trainable = target

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._apply(state, model)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._apply(state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.model.layers.requires_grad_(True)

    def metrics(self) -> dict[str, float]:
        """Return the values to log under the `train/` namespace."""
        return {"train/trainable_blocks": float(self.num_trainable or 0)}
