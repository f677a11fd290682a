import torch
from conftest import make_tiny_model
from transformers import TrainerControl, TrainerState, TrainingArguments

from trainer_genesis.unfreezing import ProgressiveUnfreezingCallback, num_trainable_blocks


def test_blocks_unfreeze_bottom_up():
    # 12 steps, 4 blocks, all training after half the run: block i starts at step ceil(1.5 * i).
    assert [num_trainable_blocks(step, 12, 4, 0.5) for step in range(8)] == [1, 1, 2, 3, 3, 4, 4, 4]
    assert num_trainable_blocks(0, 12, 4, 0.0) == 4


def test_frozen_blocks_get_no_update():
    model = make_tiny_model()
    callback = ProgressiveUnfreezingCallback(fraction=1.0)
    state = TrainerState(global_step=0, max_steps=10)
    callback.on_step_begin(
        TrainingArguments(output_dir="unused", report_to=[]), state, TrainerControl(), model=model
    )

    frozen = {
        name: p.detach().clone() for name, p in model.named_parameters() if name.startswith("model.layers.1.")
    }
    trained = {
        name: p.detach().clone() for name, p in model.named_parameters() if name.startswith("model.layers.0.")
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    input_ids = torch.randint(3, 99, (2, 8))
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    optimizer.step()

    for name, before in frozen.items():
        assert torch.equal(dict(model.named_parameters())[name], before), name
    assert any(
        not torch.equal(dict(model.named_parameters())[name], before) for name, before in trained.items()
    )
    assert callback.metrics() == {"train/trainable_blocks": 1.0}
