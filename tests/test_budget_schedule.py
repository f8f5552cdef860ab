"""The equal-budget rule is the same for every trainer: compile off, the same kinds of time charged, the learning-rate
schedule (warm-up included) scaled to the budget, the run order rotated by fold.

Every expectation below is worked out by hand from a fake clock: training steps, validation steps and hooks advance
it by exact binary fractions, so the charged times are exact."""
import os
import subprocess
from pathlib import Path

import pytest
import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from nnunetv2_scarnet.benchmark import equal_budget
from nnunetv2_scarnet.benchmark.budget_schedule import budgeted, check_compile_setting, trainer_env
from nnunetv2_scarnet.trainers.lr_schedule import GroupPolyLRScheduler


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def stock_schedule(optimizer):
    """nnU-Net's own: poly over 1000 epochs from 1e-2, no warm-up."""
    return PolyLRScheduler(optimizer, 1e-2, 1000)


def scarnet_schedule(optimizer):
    """ScarNet's configure_optimizers with nnU-Net's 1000 epochs: decoder 1e-3, encoder 1e-4, warm-up
    min(10, 1000 // 10) = 10 epochs."""
    return GroupPolyLRScheduler(optimizer, [1e-3, 1e-4], 1000, warmup_steps=10)


def fake_trainer_class(clock, step_s, first_step_s=None, val_step_s=0.0, iterations=8, val_iterations=1,
                       hook_s=0.25, epoch_end_s=5.0, schedule=stock_schedule):
    """A trainer whose training step number i (counted over the whole run) takes step_s(i) seconds (a number: every
    step; the first takes first_step_s if given), a validation step val_step_s, every epoch hook hook_s and
    on_epoch_end (checkpoint, plot) epoch_end_s; set-up 10 s, on_train_end 3 s. It records every step's start time
    and learning rates, and the learning rate nnU-Net's on_train_epoch_start logs."""
    duration = step_s if callable(step_s) else (lambda i: first_step_s if i == 0 and first_step_s else step_s)

    class Fake:
        num_epochs = 1000
        num_iterations_per_epoch = iterations
        num_val_iterations_per_epoch = val_iterations
        warmup_epochs = 10  # ScarNet's attribute (the rule before this one read it)
        device = torch.device("cpu")

        def __init__(self):
            self.current_epoch = 0
            params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
            self.optimizer = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=1.0)
            self.lr_scheduler = schedule(self.optimizer)
            self.dataloader_train = self.dataloader_val = iter(int, 1)  # endless zeros
            self.steps, self.logged_lrs, self.log = [], [], []

        def on_train_start(self):
            clock.now += 10.0

        def on_train_epoch_start(self):  # as nnU-Net's: step the scheduler with the epoch, log the rate
            self.lr_scheduler.step(self.current_epoch)
            self.logged_lrs.append(self.optimizer.param_groups[0]["lr"])
            clock.now += hook_s

        def train_step(self, batch):
            self.steps.append((clock.now, [g["lr"] for g in self.optimizer.param_groups]))
            clock.now += duration(len(self.steps) - 1)
            return {"loss": 0.0}

        def validation_step(self, batch):
            clock.now += val_step_s
            return {}

        def on_epoch_end(self):
            clock.now += epoch_end_s
            self.current_epoch += 1

        def on_train_end(self):
            clock.now += 3.0

        def print_to_log_file(self, *text):
            self.log.append(" ".join(map(str, text)))

        def _do_i_compile(self):
            import os
            return os.environ.get("nnUNet_compile", "t").lower() in ("true", "1", "t")

    def hook(self, *args):
        clock.now += hook_s

    for name in ("on_epoch_start", "on_train_epoch_end", "on_validation_epoch_start", "on_validation_epoch_end"):
        setattr(Fake, name, hook)
    return Fake


def trained(budget_s, **fake):
    clock = FakeClock()
    trainer = budgeted(fake_trainer_class(clock, **fake), budget_s, clock=clock)()
    trainer.run_training()
    return trainer


@pytest.mark.parametrize("epoch_end_s", [5.0, 50.0])
def test_only_training_and_validation_steps_are_charged(epoch_end_s):
    # 20-s budget; 0.5-s steps (the run's first takes 3 s: start-up, not charged); 2 validation steps of 0.25 s;
    # 8 iterations a nominal epoch; hooks 0.25 s each, on_epoch_end 5 s or 50 s (checkpoint, plot), never charged.
    # Epoch 0: 7 charged steps (3.5 s) + validation 0.5 s = 4 s. Pace 0.5 s/step, 0.5 s/validation: 16 s left,
    # nominal epoch 8 x 0.5 + 0.5 = 4.5 s -> round(3.56) = 4 epochs of (16 / 4 - 0.5) / 0.5 = 7 iterations; after
    # them 12, 8, 4 s left -> 3, 2, 1 epochs of 7; then 0 s left: stop. 5 epochs, 20 s charged exactly.
    trainer = trained(20.0, step_s=0.5, first_step_s=3.0, val_step_s=0.25, val_iterations=2,
                      epoch_end_s=epoch_end_s)
    assert trainer.epoch_iterations == [8, 7, 7, 7, 7]
    assert trainer.training_seconds == 20.0 and trainer.startup_seconds == 3.0
    assert trainer.epoch_seconds == [4.0] * 5
    # wall: set-up 10 + first step 3 + charged 20 + 5 epochs x (4 hooks x 0.25 + logging hook 0.25 + epoch end)
    # + on_train_end 3; charged as wall-clock time, one epoch's end alone (5 s) would have cost more than an epoch
    assert trainer.wall_training_seconds == 10 + 3 + 20 + 5 * (1.25 + epoch_end_s) + 3
    assert trainer.current_epoch == 5 and trainer.num_epochs == 5


def test_trainers_differing_only_in_start_up_get_the_same_training():
    # same 0.5-s steps; a first step of 0.5 s or of 30 s (cuDNN autotuning, lazy kernel loading): both train the
    # same charged 20 s in the same epochs (see the test above, without validation time: 7 x 0.5 = 3.5 s, then
    # round(16.5 / 4) = 4 epochs of round(8.25) = 8, ...), and the start-up is recorded, not charged
    fast, slow = trained(20.0, step_s=0.5), trained(20.0, step_s=0.5, first_step_s=30.0)
    assert fast.epoch_iterations == slow.epoch_iterations
    assert fast.training_seconds == slow.training_seconds == 20.0
    assert (fast.startup_seconds, slow.startup_seconds) == (0.5, 30.0)


def test_no_training_step_starts_after_the_budget():
    # 0.5-s steps for the first 16 steps, then 2 s (the device slows down). Epoch 0: 7 charged steps = 3.5 s, 16.5 s
    # left -> round(16.5 / 4) = 4 epochs of round(8.25) = 8. Epoch 1: 8 x 0.5 -> 7.5 s charged, 12.5 left -> 3 epochs
    # of round(8.33) = 8. Epoch 2: steps start at 7.5, 9.5, ..., 19.5 s (7 steps); the 8th would start at 21.5 s,
    # past the budget, so it does not run: 21.5 s charged, less than one step over; nothing left, so training stops.
    trainer = trained(20.0, step_s=lambda i: 0.5 if i < 16 else 2.0)
    assert trainer.epoch_iterations == [8, 8, 7]
    assert trainer.training_seconds == 21.5


def test_stock_poly_decay_ends_with_the_budget():
    # nnU-Net's PolyLRScheduler (1e-2, 1000 epochs) under a 10-s budget of 0.25-s steps, 40 a nominal epoch. The
    # rate before a step is 1e-2 * (1 - p) ** 0.9, p = charged seconds / 10. Step 0 (start-up) and step 1 start at
    # p = 0; step k >= 1 at p = (k - 1) * 0.25 / 10 = (k - 1) / 40. Epoch 0 charges 39 x 0.25 = 9.75 s; 0.25 s left
    # -> one epoch of one step, at p = 39 / 40: 1e-2 * 0.025 ** 0.9 = 3.6e-4. So the decay reaches its end with the
    # budget, and the rate is 1e-2 * 0.5 ** 0.9 = 5.36e-3 half-way (step 21), as at nnU-Net's epoch 500 of 1000.
    trainer = trained(10.0, step_s=0.25, iterations=40)
    assert trainer.epoch_iterations == [40, 1] and trainer.training_seconds == 10.0
    lrs = [group_lrs[0] for _, group_lrs in trainer.steps]
    assert lrs[0] == lrs[1] == 1e-2
    assert lrs[21] == pytest.approx(1e-2 * 0.5 ** 0.9) == pytest.approx(5.3589e-3, rel=1e-4)
    assert lrs[-1] == pytest.approx(1e-2 * (1 / 40) ** 0.9) == pytest.approx(3.6153e-4, rel=1e-4)
    expected = [1e-2] + [1e-2 * (1 - (k - 1) / 40) ** 0.9 for k in range(1, 41)]
    assert lrs == pytest.approx(expected)
    # the rate nnU-Net logs at an epoch's start is the budget's, not epoch 1 of 1000 (1e-2 * 0.999 ** 0.9)
    assert trainer.logged_lrs[1] == pytest.approx(1e-2 * (1 - 9.75 / 10) ** 0.9)
    assert trainer.lr_schedule == {"scheduler": "PolyLRScheduler", "nominal_steps": 1000, "exponent": 0.9,
                                   "warmup_fraction_of_budget": 0.0}


@pytest.mark.parametrize("budget_s", [100.0, 200.0])
def test_scarnet_warm_up_is_the_same_share_of_every_budget(budget_s):
    # ScarNet's schedule: 10 warm-up epochs of 1000 -> the first 1% of the budget; the factor at fraction p is
    # (1000 p + 1) / 11 * (1 - p) ** 0.9 while 1000 p < 10, then (1 - p) ** 0.9; decoder 1e-3, encoder 1e-4.
    # With 0.25-s steps the first steps start at p = 0 (start-up), 0, then every 0.25 / budget:
    #   budget 100 s: p = 0.0025, 0.005, 0.0075, 0.01 -> 1000 p = 2.5, 5, 7.5, 10
    #   budget 200 s: p = 0.00125, 0.0025, ...      -> the same factors at every other step, warm-up over 2 s
    # factors: p = 0: 1/11 = 0.0909; 0.0025: 3.5/11 * 0.9975 ** 0.9 = 0.3175; 0.005: 6/11 * 0.995 ** 0.9 = 0.5430;
    # 0.0075: 8.5/11 * 0.9925 ** 0.9 = 0.7675; 0.01: 0.99 ** 0.9 = 0.9910 (warm-up over).
    trainer = trained(budget_s, step_s=0.25, iterations=int(budget_s * 4), schedule=scarnet_schedule)
    every = int(budget_s // 100)  # steps per 0.25% of the budget
    factors = [lrs[0] / 1e-3 for _, lrs in trainer.steps]
    assert [lrs[1] / lrs[0] for _, lrs in trainer.steps] == pytest.approx([0.1] * len(trainer.steps))
    assert factors[0] == factors[1] == pytest.approx(1 / 11)
    hand = [3.5 / 11 * 0.9975 ** 0.9, 6 / 11 * 0.995 ** 0.9, 8.5 / 11 * 0.9925 ** 0.9, 0.99 ** 0.9]
    assert hand == pytest.approx([0.3175, 0.5430, 0.7675, 0.9910], abs=1e-4)
    assert [factors[1 + every * j] for j in (1, 2, 3, 4)] == pytest.approx(hand)
    # the budget's end: the last step starts 0.25 s before it, p = 1 - 0.25 / budget
    assert factors[-1] == pytest.approx((0.25 / budget_s) ** 0.9)
    assert trainer.training_seconds == budget_s
    assert trainer.lr_schedule["warmup_fraction_of_budget"] == 0.01


def test_a_schedule_the_rule_cannot_scale_is_refused():
    def cosine(optimizer):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 1000)

    with pytest.raises(TypeError, match="Fake uses CosineAnnealingLR"):
        trained(10.0, step_s=0.25, schedule=cosine)
    with pytest.raises(ValueError, match="at least 2"):
        trained(10.0, step_s=0.25, iterations=1)


def test_run_order_rotates_by_fold():
    arms = ["nnUNetTrainer", "Recipe", "ScarNetTrainerLiteHybrid"]
    assert equal_budget.run_order(arms, 0) == arms
    assert equal_budget.run_order(arms, 1) == ["Recipe", "ScarNetTrainerLiteHybrid", "nnUNetTrainer"]
    assert equal_budget.run_order(arms, 2) == ["ScarNetTrainerLiteHybrid", "nnUNetTrainer", "Recipe"]
    assert equal_budget.run_order(arms, 4) == equal_budget.run_order(arms, 1)
    assert equal_budget.run_order(arms[::2], 1) == ["ScarNetTrainerLiteHybrid", "nnUNetTrainer"]


def test_every_table_says_it_measures_early_training():
    # stock: 9 epochs of 250 + one of 20 = 2270 iterations = 9.08 of nnU-Net's 250-iteration epochs
    rows = [{"trainer": "nnUNetTrainer", "epoch_iterations": [250] * 9 + [20]},
            {"trainer": "ScarNetTrainerLiteHybrid", "epoch_iterations": [250, 270]}]
    note = equal_budget.early_training_note(rows, 100.0)
    assert note == ("Early training, not convergence: 100 s of charged time per trainer; in nnU-Net's 1000 epochs "
                    "of 250 iterations: nnUNetTrainer 9.1 epochs (2270 iterations); ScarNetTrainerLiteHybrid 2.1 "
                    "epochs (520 iterations).")


def test_device_script_refuses_arms_and_budgets_that_do_not_fit_its_deadline(tmp_path):
    # the script's estimate: n arms x (budget x 1.12 + 45 s) + 45 s of preparation, against DEADLINE_S = 575 s.
    # Three arms at 220 s: 3 x (246.4 + 45) + 45 = 919.2 -> ~920 s, refused before anything runs (no results folder);
    # at 100 s: 3 x (112 + 45) + 45 = 516 s, which fits.
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "run_on_device.sh"

    def device_script(**knobs):
        env = dict(os.environ, RESULTS=str(tmp_path / "results"), OUT=str(tmp_path), **knobs)
        return subprocess.run(["bash", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)

    refused = device_script(ARMS="nnUNetTrainer Recipe ScarNetTrainerLiteHybrid", BUDGETS="220")
    assert refused.returncode == 2 and "needs ~920 s, more than DEADLINE_S=575" in refused.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "gpu_results.tar.gz").exists()
    plan = device_script(ARMS="nnUNetTrainer Recipe ScarNetTrainerLiteHybrid", BUDGETS="100 220", FOLD="1",
                         PLAN_ONLY="1")
    assert plan.returncode == 0 and "first budget ~516 s of the 575-s deadline" in plan.stdout
    assert "reference nnUNetTrainer; run order rotated by fold 1" in plan.stdout
    assert device_script(BUDGETS="1.5", PLAN_ONLY="1").returncode == 2


def test_schedule_column_shows_refitted_iteration_counts():
    from nnunetv2_scarnet.benchmark.budget_table import schedule_text

    assert schedule_text({"epochs": 5, "epoch_iterations": [250, 250, 240, 252, 251]}) == "2 x 250 + 3 x 240-252"
    assert schedule_text({"epochs": 4, "epoch_iterations": [250, 250, 205, 205]}) == "2 x 250 + 2 x 205"
    assert schedule_text({"epochs": 2, "epoch_iterations": [2, 2]}) == "2 x 2"
    # rows of the first verdict (before per-epoch counts were recorded)
    assert schedule_text({"epochs": 19, "iterations_first_two_epochs": 250, "iterations_per_epoch": 249}) == \
        "2 x 250 + 17 x 249"


def test_schedule_column_describes_the_epochs_the_rule_produces():
    # The rule keeps nnU-Net's 250 iterations for the first epoch only and refits every later one, so a row may
    # have one epoch of 250 before the refitted ones, or two epochs of different counts (the hybrid at 100 s:
    # 250 + 258). schedule_text counts the leading epochs instead of assuming two (it printed "2 x 250 + 2 x
    # 174-262" for the first row, the second epoch counted as 250, and raised IndexError for the second).
    from nnunetv2_scarnet.benchmark.budget_table import schedule_text

    assert schedule_text({"epochs": 4, "epoch_iterations": [250, 262, 262, 174]}) == "1 x 250 + 3 x 174-262"
    assert schedule_text({"epochs": 2, "epoch_iterations": [250, 258]}) == "1 x 250 + 1 x 258"


def test_a_table_that_cannot_be_formatted_does_not_stop_the_run(tmp_path, monkeypatch, capsys):
    from nnunetv2_scarnet.benchmark import budget_table

    report = {"date": "2026-12-05", "hardware": "test", "budget_s": 100.0, "fold": 1, "rows": [],
              "paired_comparison": None, "cpu_check_overrides": [], "run_order": ["B", "A"],
              "order_rule": equal_budget.ORDER_RULE, "schedule_rule": "s"}

    def broken(*args):
        raise IndexError("list index out of range")

    monkeypatch.setattr(budget_table, "markdown", broken)
    equal_budget.write_report(report, str(tmp_path))
    assert (tmp_path / "equal_budget.json").read_text().count('"run_order"') == 1
    assert "tables not formatted: IndexError" in (tmp_path / "equal_budget.md").read_text()
    assert "rewrite_tables" in capsys.readouterr().err
    monkeypatch.undo()
    equal_budget.rewrite_tables(str(tmp_path))  # from the JSON alone, once the table code is fixed
    table = (tmp_path / "equal_budget.md").read_text()
    assert "Budget 100 s of training per trainer, fold 1" in table and "1. B, 2. A" in table


def test_every_trainer_process_gets_the_same_compile_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("nnUNet_compile", "t")  # a user who compiles by default
    envs = {name: equal_budget.trainer_command(name, ["--budget-s", "1"], {"nnUNet_compile": "t", "X": "1"})[1]
            for name in ("nnUNetTrainer", "ScarNetTrainerLiteHybrid")}
    assert {env["nnUNet_compile"] for env in envs.values()} == {"f"} and envs["nnUNetTrainer"]["X"] == "1"
    assert trainer_env({"nnUNet_compile": "true"})["nnUNet_compile"] == "f"
    # the trainer's process refuses to run under another setting
    trainer = fake_trainer_class(FakeClock(), 1.0)()
    with pytest.raises(RuntimeError, match="nnUNet_compile='t'"):
        check_compile_setting(trainer, {"nnUNet_compile": "t"})
    monkeypatch.setenv("nnUNet_compile", "f")
    assert check_compile_setting(trainer, {"nnUNet_compile": "f"}) is False
