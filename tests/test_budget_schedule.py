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


def fake_trainer_class(clock, first_epoch_s, epoch_s, iterations=4, val_s=0.0, second_epoch_s=None):
    """A trainer whose training iterations take `first_epoch_s` (start-up, compilation) in the first epoch,
    `second_epoch_s` (default `epoch_s`) in the second, then `epoch_s` per `iterations` of fake time; every epoch's
    validation takes `val_s`. Exact binary fractions keep the fake clock exact."""
    second_epoch_s = epoch_s if second_epoch_s is None else second_epoch_s

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
            clock.now += (first_epoch_s, second_epoch_s, epoch_s)[min(self.current_epoch, 2)] / iterations

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


def trained(first_epoch_s, epoch_s, budget_s, val_s=0.0, second_epoch_s=None):
    clock = FakeClock()
    trainer = budgeted(fake_trainer_class(clock, first_epoch_s, epoch_s, val_s=val_s, second_epoch_s=second_epoch_s),
                       budget_s, clock=clock)()
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
    # training = 3.67 iterations -> 4; refitted after the third epoch (9 s left for 2: 3.5 -> 4) and the fourth
    # (4 s left for 1: 3), the last epoch takes up the rounding and the budget is filled exactly
    trainer = trained(10.0, 4.0, 30.0, val_s=1.0)
    assert trainer.num_epochs == 5 and trainer.epoch_iterations == [4, 4, 4, 4, 3]
    assert trainer.training_seconds == pytest.approx(30.0)


def test_a_second_epoch_slower_than_the_steady_state_does_not_leave_the_budget_unused():
    # The first GPU verdict: stock's second epoch (11.5 s) was slower than its later ones (10.5 s on average), so
    # the epochs fitted to the second left 17 s of 220 s unused. Here: 10 s first epoch, a 6 s second epoch of 4
    # iterations, then 1 s per iteration, 40 s budget. Fitted to the second epoch alone: round(24 / 6) = 4 epochs
    # of round(6 / 1.5) = 4 iterations = 16 s at the real pace, 32 s in all (8 s unused). Refitted after every
    # later epoch at the pace of the epochs after the second (1 s per iteration): 4, then round(20 / 3) = 7,
    # round(13 / 2) = 6, 7 iterations: 10 + 6 + 4 + 7 + 6 + 7 = 40 s.
    trainer = trained(10.0, 4.0, 40.0, second_epoch_s=6.0)
    assert trainer.num_epochs == 6 and trainer.lr_scheduler.max_steps == 6  # the schedule is not changed again
    assert trainer.epoch_iterations == [4, 4, 4, 7, 6, 7]
    assert trainer.training_seconds == pytest.approx(40.0)
    # with 1 s of validation per epoch the refit keeps that fixed cost out of the iteration time
    trainer = trained(10.0, 4.0, 40.0, val_s=1.0, second_epoch_s=6.0)
    assert abs(trainer.training_seconds - 40.0) <= 0.5 * (trainer.num_epochs - 2)
    # a steady pace from the second epoch on is left as it was fitted
    assert trained(10.0, 4.0, 20.0).epoch_iterations == [4, 4, 3, 3]


def test_schedule_column_shows_refitted_iteration_counts():
    from nnunetv2_scarnet.benchmark.budget_table import schedule_text

    assert schedule_text({"epochs": 5, "epoch_iterations": [250, 250, 240, 252, 251]}) == "2 x 250 + 3 x 240-252"
    assert schedule_text({"epochs": 4, "epoch_iterations": [250, 250, 205, 205]}) == "2 x 250 + 2 x 205"
    assert schedule_text({"epochs": 2, "epoch_iterations": [2, 2]}) == "2 x 2"
    # rows of the first verdict (before per-epoch counts were recorded)
    assert schedule_text({"epochs": 19, "iterations_first_two_epochs": 250, "iterations_per_epoch": 249}) == \
        "2 x 250 + 17 x 249"


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
