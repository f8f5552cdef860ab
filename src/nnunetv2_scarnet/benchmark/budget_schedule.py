"""The equal-budget rule: the same compile setting and the same epoch-count rule for every trainer.

Compile: off for every trainer (`nnUNet_compile=f` in each trainer's environment, checked in the trainer's process).
nnU-Net compiles by default on CUDA; compilation time would land in the first epoch and differs per architecture
(the ViT hybrid compiles longer than stock), and ScarNet's compiled training has not been exercised on a GPU yet.

Timing: the budget is the wall-clock time of the whole training, first epoch included. The first epoch carries the
one-off costs (CUDA context, cuDNN autotuning, data-loader workers, compilation where it is on); it is charged once,
not extrapolated. The second epoch is the timed, steady-state one: its training iterations give the time per
iteration, the rest (validation iterations, checkpointing) the fixed cost per epoch. The time left after two
epochs is filled by round(left / second epoch) further epochs whose iteration count is set so that they fill it
(close to nnU-Net's 250 when epochs are short next to the budget; with few long epochs, whole epochs alone would
leave up to one epoch of the budget unused, which would penalise the slower trainer). After every later epoch the
iteration count of the epochs still to come is fitted again to the time left, at the mean pace of the epochs after
the second: a second epoch slower than the steady state (seen on an H200: stock 11.5 s, then 10.5 s on average,
which left 17 s of a 220-s budget unused in the first verdict) no longer shortens the training. Every trainer thus
trains for the budget to within about half an iteration per epoch, unless its first two epochs already exceed it
(then it trains two) or its pace slows so much that one iteration per remaining epoch no longer fits (the epoch
count, and with it the learning-rate schedule, is never changed after the second epoch). Trainers start from
scratch under this rule (no --c resume).
The schedule (poly learning rate, and ScarNet's warm-up rescaled as `min(warmup_epochs, epochs // 10)`) is set
to the final number of epochs after the second epoch; the first two run under the trainer's default schedule.
"""
import time
from typing import Callable, Dict, Tuple

COMPILE_ENV = {"nnUNet_compile": "f"}
COMPILE_RULE = "off for every trainer (nnUNet_compile=f in each trainer's environment)"
TIMING_RULE = ("budget = wall-clock time of the whole training, first epoch included (its one-off costs charged "
               "once); the second epoch sets the pace: the time left after two epochs is filled by round(left / "
               "second epoch) epochs whose iteration count fills it, refitted to the time left after every later "
               "epoch at the mean pace of the epochs after the second; schedule set after the second epoch")


def epochs_for_budget(budget_s: float, first_epoch_s: float, second_epoch_s: float, second_train_s: float,
                      iterations: int) -> Tuple[int, int]:
    """(epochs, iterations per epoch from the third on) that fill the budget after two measured epochs.

    `second_train_s` is the part of the second epoch spent in its `iterations` training iterations; the rest of
    that epoch is a fixed cost per epoch."""
    if not 0 < second_train_s <= second_epoch_s or first_epoch_s < 0 or iterations < 1:
        raise ValueError(f"inconsistent epoch times: first {first_epoch_s} s, second {second_epoch_s} s of which "
                         f"{second_train_s} s in {iterations} training iterations")
    left = budget_s - first_epoch_s - second_epoch_s
    further = round(left / second_epoch_s)
    if further < 1:
        return 2, iterations
    per_iteration, fixed = second_train_s / iterations, second_epoch_s - second_train_s
    return 2 + further, max(1, round((left / further - fixed) / per_iteration))


def iterations_to_fill(left_s: float, epochs_left: int, per_iteration_s: float, fixed_s: float) -> int:
    """Training iterations per epoch so that `epochs_left` epochs, each with `fixed_s` of validation and
    checkpointing, fill `left_s` at `per_iteration_s` (at least one)."""
    if epochs_left < 1 or per_iteration_s <= 0:
        raise ValueError(f"no epochs left ({epochs_left}) or a non-positive pace ({per_iteration_s} s/iteration)")
    return max(1, round((left_s / epochs_left - fixed_s) / per_iteration_s))


def trainer_env(base_env: Dict[str, str]) -> Dict[str, str]:
    """The environment of every trainer's process: `base_env` with the protocol's compile setting."""
    return dict(base_env, **COMPILE_ENV)


def check_compile_setting(trainer, environ: Dict[str, str]) -> bool:
    """Refuse a trainer process that would not follow the compile rule; returns whether the trainer compiles."""
    for key, value in COMPILE_ENV.items():
        if environ.get(key) != value:
            raise RuntimeError(f"equal-budget protocol: {key}={environ.get(key)!r} in this trainer's environment, "
                               f"the protocol needs {value!r} for every trainer")
    compiles = bool(trainer._do_i_compile())
    if compiles:
        raise RuntimeError(f"{type(trainer).__name__} would compile although {COMPILE_ENV} is set")
    return compiles


def budgeted(trainer_class, budget_s: float, clock: Callable[[], float] = time.monotonic):
    """The same trainer class (same name, so results land in the usual folder) whose schedule fits the budget.

    Records `epoch_seconds` (every epoch's wall time), `epoch_iterations` (every epoch's training iterations),
    `iterations_first_epochs` and `training_seconds` on the trainer; from the third epoch on,
    `num_iterations_per_epoch` is the one that fills the budget."""
    import torch

    def run_training(self):
        self.on_train_start()
        start = clock()
        self.epoch_seconds = []
        self.iterations_first_epochs = self.num_iterations_per_epoch
        self.epoch_iterations = []
        paces = []  # (seconds per training iteration, fixed seconds) of the epochs after the second
        while self.current_epoch < self.num_epochs:
            epoch_start = clock()
            iterations = self.num_iterations_per_epoch
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = [self.train_step(next(self.dataloader_train)) for _ in range(self.num_iterations_per_epoch)]
            self.on_train_epoch_end(outputs)
            train_s = clock() - epoch_start
            with torch.no_grad():
                self.on_validation_epoch_start()
                val = [self.validation_step(next(self.dataloader_val))
                       for _ in range(self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(val)
            self.on_epoch_end()  # increments current_epoch
            self.epoch_seconds.append(clock() - epoch_start)
            self.epoch_iterations.append(iterations)
            if self.current_epoch > 2:  # not the second: it may be slower than the steady state
                paces.append((train_s / iterations, self.epoch_seconds[-1] - train_s))
            if 2 < self.current_epoch < self.num_epochs:  # refit the epochs still to come to the time left
                self.num_iterations_per_epoch = iterations_to_fill(
                    budget_s - (clock() - start), self.num_epochs - self.current_epoch,
                    sum(p for p, _ in paces) / len(paces), sum(f for _, f in paces) / len(paces))
            if self.current_epoch == 2:
                first, second = self.epoch_seconds
                self.num_epochs, self.num_iterations_per_epoch = epochs_for_budget(
                    budget_s, first, second, train_s, self.num_iterations_per_epoch)
                self.lr_scheduler.max_steps = self.num_epochs
                if hasattr(self.lr_scheduler, "warmup_steps"):  # ScarNet: warm-up scaled to the new schedule
                    self.lr_scheduler.warmup_steps = min(self.warmup_epochs, self.num_epochs // 10)
                self.print_to_log_file(f"budget {budget_s:.0f} s, first epoch {first:.1f} s, second {second:.1f} s "
                                       f"-> {self.num_epochs} epochs, {self.num_iterations_per_epoch} iterations "
                                       f"each from the third")
        self.training_seconds = clock() - start
        self.on_train_end()

    return type(trainer_class.__name__, (trainer_class,), {"run_training": run_training})
