from fractions import Fraction

import pytest
import torch
from conftest import make_tiny_model
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from modeling_genesis import GenesisConfig
from trainer_genesis.loop_schedule import LoopScheduleCallback, LoopStage, loops_at, parse_loop_schedule


class RandomTokens(Dataset):
    def __init__(self, size: int = 64, length: int = 12):
        generator = torch.Generator().manual_seed(0)
        self.data = torch.randint(3, 99, (size, length), generator=generator)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return {"input_ids": self.data[index], "labels": self.data[index]}


class RecordLoops(TrainerCallback):
    def __init__(self):
        self.loops_per_step = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.loops_per_step.append(model.config.num_loops)


def tiny_model():
    return make_tiny_model(mtp_num_heads=0)


def train(tmp_path, max_steps, resume=False):
    recorder = RecordLoops()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        save_steps=3,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(
        model=tiny_model(),
        args=args,
        train_dataset=RandomTokens(),
        callbacks=[LoopScheduleCallback(parse_loop_schedule("1@0,2@1/3,3@2/3")), recorder],
    )
    trainer.train(resume_from_checkpoint=resume or None)
    return trainer, recorder.loops_per_step


def test_parse_default_schedule():
    stages = parse_loop_schedule("1@0,2@1/3,3@2/3")
    assert stages == [LoopStage(Fraction(0), 1), LoopStage(Fraction(1, 3), 2), LoopStage(Fraction(2, 3), 3)]
    assert parse_loop_schedule("1@0,2@0.5")[1].start_fraction == Fraction(1, 2)
    assert parse_loop_schedule("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1@0,2", "write each stage as LOOPS@FRACTION"),
        ("two@0", "write each stage as LOOPS@FRACTION"),
        ("1@0,2@1/0", "write each stage as LOOPS@FRACTION"),
        ("1@0.1", "must start at fraction 0"),
        ("1@0,2@0.5,3@0.4", "must increase strictly"),
        ("1@0,2@1.0", "must increase strictly and stay below 1"),
        ("0@0", "at least 1"),
    ],
)
def test_invalid_schedule_raises(text, message):
    with pytest.raises(ValueError, match=message):
        parse_loop_schedule(text)


def test_loops_at_stage_boundaries():
    stages = parse_loop_schedule("1@0,2@1/3,3@2/3")
    assert [loops_at(stages, step, 9) for step in range(9)] == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_schedule_changes_loops_at_the_right_steps(tmp_path):
    trainer, loops = train(tmp_path, max_steps=9)
    # The count is set before each step: steps 1-3 run 1 loop, 4-6 run 2, 7-9 run 3.
    assert loops == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert trainer.model.config.num_loops == 3
    trainer.save_model(tmp_path / "final")
    assert GenesisConfig.from_pretrained(tmp_path / "final").num_loops == 3


def test_schedule_survives_resume(tmp_path):
    _, straight = train(tmp_path / "straight", max_steps=9)
    train(tmp_path / "split", max_steps=9)
    # Resume from the step-3 checkpoint after dropping the later ones.
    for step in (6, 9):
        checkpoint = tmp_path / "split" / f"checkpoint-{step}"
        for file in checkpoint.iterdir():
            file.unlink()
        checkpoint.rmdir()
    assert GenesisConfig.from_pretrained(tmp_path / "split" / "checkpoint-3").num_loops == 1
    _, resumed = train(tmp_path / "split", max_steps=9, resume=True)
    assert resumed == straight[3:]


def test_compiled_model_traces_once_per_loop_count():
    from torch._dynamo.testing import CompileCounter

    model = tiny_model().eval()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter)
    input_ids = torch.randint(3, 99, (2, 8))
    with torch.no_grad():
        for loops in (1, 1, 2, 2, 3, 3):
            model.config.num_loops = loops
            compiled(input_ids=input_ids)
    assert counter.frame_count == 3
