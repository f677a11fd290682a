import torch
from conftest import TINY_CONFIG, make_tiny_model
from transformers import TrainerControl, TrainerState, TrainingArguments

from trainer_genesis.surprise_memory import SurpriseMemoryWriter

HIDDEN = TINY_CONFIG["hidden_size"]


def tiny_model(memory_slots=4):
    return make_tiny_model(memory_slots=memory_slots)


def run_steps(writer, model, step_losses, spike_hidden=None):
    """Feed one micro-batch of two sequences per step; the second sequence carries the step's loss."""
    args = TrainingArguments(output_dir="unused", report_to=[])
    state, control = TrainerState(), TrainerControl()
    for step, loss in enumerate(step_losses):
        state.global_step = step + 1
        hidden = torch.randn(2, 5, HIDDEN)
        if spike_hidden is not None:
            hidden[1] = spike_hidden
        tokens = torch.tensor([5.0, 5.0])
        writer.record(torch.tensor([0.5 * loss, loss]) * tokens, tokens, hidden, torch.ones(2, 5))
        writer.on_step_end(args, state, control, model=model)


def test_flat_loss_writes_nothing():
    model = tiny_model()
    writer = SurpriseMemoryWriter(threshold=3.0, warmup_steps=5)
    run_steps(writer, model, [2.0] * 40)
    assert int(writer.num_writes) == 0
    assert (model.model.memory == 0).all()
    assert (model.model.memory_write_step == 0).all()


def test_loss_spike_writes_exactly_one_slot():
    model = tiny_model()
    writer = SurpriseMemoryWriter(threshold=3.0, warmup_steps=5)
    generator = torch.Generator().manual_seed(0)
    losses = (2.0 + 0.01 * torch.randn(40, generator=generator)).tolist()
    losses[30] = 5.0
    spike = torch.full((HIDDEN,), 0.25)
    run_steps(writer, model, losses, spike_hidden=spike)
    written = (model.model.memory.abs().sum(-1) > 0).nonzero().flatten().tolist()
    assert written == [0]
    assert int(model.model.memory_write_step[0]) == 31  # the spike is step 31
    torch.testing.assert_close(model.model.memory[0], spike)
    assert int(writer.num_writes) == 1


def test_least_recently_written_slot_is_replaced():
    model = tiny_model(memory_slots=2)
    writer = SurpriseMemoryWriter(blend=0.5)
    trunk = model.model
    first, second, third = torch.ones(HIDDEN), 2 * torch.ones(HIDDEN), 4 * torch.ones(HIDDEN)
    with torch.no_grad():
        writer._write(trunk, first, step=1)
        writer._write(trunk, second, step=2)
        writer._write(trunk, third, step=3)
    torch.testing.assert_close(trunk.memory[0], 0.5 * third + 0.5 * first)
    torch.testing.assert_close(trunk.memory[1], second)
    assert trunk.memory_write_step.tolist() == [3, 2]


def test_state_round_trip():
    writer = SurpriseMemoryWriter()
    model = tiny_model()
    run_steps(writer, model, [2.0, 2.5, 1.5])
    restored = SurpriseMemoryWriter()
    restored.load_state_dict(writer.state_dict())
    for name, value in writer.state_dict().items():
        assert torch.equal(getattr(restored, name), value), name
