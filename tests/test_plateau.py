# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
import pytest
import torch
from transformers import get_scheduler

from trainer_genesis import PlateauBurst


def make_optimizer():
    parameters = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    # Three groups with layer-wise factors, as GenesisOptimizer builds them.
    groups = [
        {"params": [p], "lr": 0.01 * factor}
        for p, factor in zip(parameters, (1.0, 0.85, 0.7225), strict=True)
    ]
    optimizer = torch.optim.SGD(groups, lr=0.01)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=2, num_training_steps=40)
    return optimizer, scheduler


def run_steps(plateau, optimizer, scheduler, losses):
    """Drive the plateau like Trainer: step, on_optimizer_step, scheduler step, on_step_end."""
    used, scheduled = [], []
    for loss in losses:
        scheduled.append(list(scheduler.get_last_lr()))
        used.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        plateau.record_loss(loss)
        plateau.remove_factor(optimizer.param_groups)
        scheduler.step()
        plateau.end_step(optimizer.param_groups)
    return used, scheduled


def test_flat_loss_triggers_exact_burst():
    optimizer, scheduler = make_optimizer()
    plateau = PlateauBurst(patience=3, threshold=0.01, factor=2.0, burst_steps=4, cooldown_steps=5)
    used, scheduled = run_steps(plateau, optimizer, scheduler, [2.0] * 20)

    # Step 0 sets the best loss and steps 1-3 do not improve, so the burst covers steps 4-7.
    # The cooldown covers steps 8-12 and the patience count restarts at 13, so the next burst starts at 16.
    burst_steps = {4, 5, 6, 7, 16, 17, 18, 19}
    for step, (used_lrs, scheduled_lrs) in enumerate(zip(used, scheduled, strict=True)):
        factor = 2.0 if step in burst_steps else 1.0
        for used_lr, scheduled_lr in zip(used_lrs, scheduled_lrs, strict=True):
            assert used_lr == factor * scheduled_lr, f"step {step}"
    assert plateau.num_bursts == 2


def test_improving_loss_never_bursts():
    optimizer, scheduler = make_optimizer()
    plateau = PlateauBurst(patience=2, threshold=0.01, burst_steps=3, cooldown_steps=0, smoothing=0.0)
    losses = [3.0 * 0.9**step for step in range(15)]
    used, scheduled = run_steps(plateau, optimizer, scheduler, losses)
    assert used == scheduled
    assert plateau.num_bursts == 0


def test_skipped_steps_do_not_count_toward_patience():
    optimizer, scheduler = make_optimizer()
    plateau = PlateauBurst(patience=2, burst_steps=1, cooldown_steps=0)
    run_steps(plateau, optimizer, scheduler, [1.0, None, None, None, None])
    assert plateau.num_bursts == 0
    assert plateau.steps_without_improvement == 0


def test_plateau_state_round_trip_resumes_burst():
    optimizer, scheduler = make_optimizer()
    plateau = PlateauBurst(patience=1, burst_steps=3, cooldown_steps=0)
    run_steps(plateau, optimizer, scheduler, [1.0, 1.0])
    assert plateau.applied_factor == 2.0
    restored = PlateauBurst(patience=1, burst_steps=3, cooldown_steps=0)
    restored.load_state_dict(plateau.state_dict())
    assert restored.state_dict() == plateau.state_dict()


def test_burst_exact_with_chainable_scheduler():
    # ExponentialLR computes each LR from the group's current LR, so a factor left in place would compound.
    parameters = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(parameters, (0.1, 0.03), strict=True)]
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    plateau = PlateauBurst(patience=1, threshold=0.5, burst_steps=2, cooldown_steps=0)
    used, _ = run_steps(plateau, optimizer, scheduler, [1.0] * 6)
    # Step 0 sets the best loss, step 1 misses it, the burst covers steps 2-3, step 4 misses, step 5 bursts.
    for step, used_lrs in enumerate(used):
        factor = 2.0 if step in {2, 3, 5} else 1.0
        for used_lr, base in zip(used_lrs, (0.1, 0.03), strict=True):
            assert used_lr == pytest.approx(factor * base * 0.9**step, rel=1e-12), f"step {step}"
