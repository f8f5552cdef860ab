"""The equal-budget rule is the same for every trainer: compile off, one-off first-epoch costs charged once."""
import pytest

from nnunetv2_scarnet.benchmark import equal_budget
from nnunetv2_scarnet.benchmark.budget_schedule import budgeted, check_compile_setting, trainer_env


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeScheduler:
    def __init__(self, max_steps):
        self.max_steps = max_steps


def fake_trainer_class(clock, first_epoch_s, epoch_s, iterations=4, val_s=0.0):  # exact binary fractions
    """A trainer whose training iterations take `first_epoch_s` (start-up, compilation) in the first epoch and then
    `epoch_s` per `iterations` of fake time; every epoch's validation takes `val_s`."""

    class Fake:
        num_epochs = 1000
        num_iterations_per_epoch = iterations
        num_val_iterations_per_epoch = 1

        def __init__(self):
            self.current_epoch = 0
            self.lr_scheduler = FakeScheduler(self.num_epochs)
            self.dataloader_train = self.dataloader_val = iter(int, 1)  # endless zeros
            self.log = []

        def train_step(self, batch):
            clock.now += (first_epoch_s if self.current_epoch == 0 else epoch_s) / iterations  # fixed cost each

        def validation_step(self, batch):
            clock.now += val_s

        def on_epoch_end(self):
            self.current_epoch += 1

        def print_to_log_file(self, *text):
            self.log.append(" ".join(map(str, text)))

        def _do_i_compile(self):
            import os
            return os.environ.get("nnUNet_compile", "t").lower() in ("true", "1", "t")

    for hook in ("on_train_start", "on_train_end", "on_epoch_start", "on_train_epoch_start", "on_train_epoch_end",
                 "on_validation_epoch_start", "on_validation_epoch_end"):
        setattr(Fake, hook, lambda self, *args: None)
    return Fake


def trained(first_epoch_s, epoch_s, budget_s, val_s=0.0):
    clock = FakeClock()
    trainer = budgeted(fake_trainer_class(clock, first_epoch_s, epoch_s, val_s=val_s), budget_s, clock=clock)()
    trainer.run_training()
    return trainer


def test_one_off_first_epoch_cost_is_charged_once_not_per_epoch():
    # 30 s of compilation/start-up in the first epoch, then 2 s epochs, 40 s budget: 1 + (40 - 32) / 2 = 5 epochs.
    # Extrapolating the first epoch (32 s) would give 40 // 32 = 1 epoch.
    trainer = trained(32.0, 2.0, 40.0)
    assert trainer.num_epochs == 5 and trainer.current_epoch == 5
    assert trainer.lr_scheduler.max_steps == 5
    assert trainer.training_seconds == pytest.approx(40.0) and trainer.epoch_seconds[:2] == [32.0, 2.0]


def test_trainers_differing_only_in_start_up_cost_train_at_the_same_pace():
    # same 3 s epochs, first epochs of 4 s (stock) and 25 s (slow compile): each is charged its own start-up once
    # and both end within the 100 s budget; steady-state epochs: (100 - 4) // 3 = 32 and (100 - 25) // 3 = 25
    fast, slow = trained(4.0, 3.0, 100.0), trained(25.0, 3.0, 100.0)
    assert (fast.num_epochs, slow.num_epochs) == (33, 26)
    assert fast.training_seconds <= 100 and slow.training_seconds <= 100
    # a budget below the first two epochs: still two epochs (the second one sets the pace)
    assert trained(50.0, 3.0, 10.0).num_epochs == 2


def test_the_epochs_after_the_second_fill_the_budget_instead_of_leaving_an_epoch_unused():
    # 10 s first epoch, 4 s epochs of 4 iterations (1 s each), 20 s budget: 6 s left = 1.5 epochs. Whole epochs
    # would train 18 s (floor) or 22 s; two epochs of 3 iterations train exactly 20 s.
    trainer = trained(10.0, 4.0, 20.0)
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.iterations_first_epochs) == (4, 3, 4)
    assert trainer.training_seconds == pytest.approx(20.0) and trainer.epoch_seconds == [10.0, 4.0, 3.0, 3.0]
    # with 1 s of validation per epoch (a fixed cost): 14 s left after 11 + 5 s -> 3 epochs of (14/3 - 1) s of
    # training = 3.67 iterations -> 4: within half an iteration per epoch of the budget
    trainer = trained(10.0, 4.0, 30.0, val_s=1.0)
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch) == (5, 4)
    assert abs(trainer.training_seconds - 30.0) <= 3 * 0.5


def test_every_trainer_process_gets_the_same_compile_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("nnUNet_compile", "t")  # a user who compiles by default
    envs = {name: equal_budget.trainer_command(name, ["--budget-s", "1"], {"nnUNet_compile": "t", "X": "1"})[1]
            for name in ("nnUNetTrainer", "ScarNetTrainerLiteHybrid")}
    assert {env["nnUNet_compile"] for env in envs.values()} == {"f"} and envs["nnUNetTrainer"]["X"] == "1"
    assert trainer_env({"nnUNet_compile": "true"})["nnUNet_compile"] == "f"
    # the trainer's process refuses to run under another setting
    trainer = fake_trainer_class(FakeClock(), 1, 1)()
    with pytest.raises(RuntimeError, match="nnUNet_compile='t'"):
        check_compile_setting(trainer, {"nnUNet_compile": "t"})
    monkeypatch.setenv("nnUNet_compile", "f")
    assert check_compile_setting(trainer, {"nnUNet_compile": "f"}) is False
