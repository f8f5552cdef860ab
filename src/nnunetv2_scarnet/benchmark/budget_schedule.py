"""The equal-budget rule: the same compile setting, the same charged time and the same schedule scaling for all.

Compile: off for every trainer (`nnUNet_compile=f` in each trainer's environment, checked in the trainer's process).
nnU-Net compiles by default on CUDA; compilation time would land in the first epoch and differs per architecture
(the ViT hybrid compiles longer than stock), and ScarNet's compiled training has not been exercised on a GPU yet.

Charged time (what the budget measures): only the training-step loops (each batch fetched from the data loader and
its `train_step`) and the validation-step loops (fetch and `validation_step`), each span closed after the device
has finished its queued work (`torch.cuda.synchronize` on CUDA). Not charged, for every trainer alike: the
trainer's set-up and `on_train_start` (data-loader workers, unpacking, plan printing), every epoch's hooks
(`on_epoch_start`, learning-rate logging, loss and pseudo-Dice aggregation, and `on_epoch_end`'s logging,
checkpointing and progress plot: ~1.3 s an epoch for stock on an H200, 12% of its 220-s budget over 19 epochs and
3% of the hybrid's over 5 in the first run), `on_train_end`; and the run's first training step (start-up: CUDA's
lazy kernel loading and cuDNN's autotuning of the patch shape fall into it), which is timed and recorded instead.

Epochs: the first epoch has the trainer's own iteration count (nnU-Net's 250). After every epoch the epochs still
to come are planned from the charged time left and the pace measured so far (seconds per charged training step and
per validation loop, from the epochs after the first once there are any): round(left / nominal epoch) epochs, at
least one while one step and a validation still fit, with the iteration count that fills the time left. No
training step starts once the budget is used; so every trainer trains for the budget to within about half an
iteration and one validation loop.

Schedule: the learning rate is set before every training step from the fraction p of the budget charged so far:
the trainer's own poly schedule (nnU-Net's `PolyLRScheduler`, ScarNet's `GroupPolyLRScheduler` with its linear
warm-up) evaluated at the fractional step p * max_steps, so the budget takes the place of the schedule's
`max_steps` epochs (nnU-Net's 1000): every trainer's decay ends at the end of its budget, and a warm-up keeps its
share of the schedule (ScarNet: 10 of 1000 epochs, the first 1% of the budget). Per step, not per epoch: a
trainer with a handful of long epochs in the budget could not otherwise follow a 1% warm-up or a smooth decay.
"""
import time
from typing import Callable, Dict, List, Tuple

COMPILE_ENV = {"nnUNet_compile": "f"}
COMPILE_RULE = "off for every trainer (nnUNet_compile=f in each trainer's environment)"
TIMING_RULE = ("budget = charged time: training- and validation-step loops only (batch fetch + step, device "
               "synchronised), the same for every trainer; not charged: set-up, data-loader start-up, the run's "
               "first training step (start-up, recorded), epoch hooks (logging, checkpoints, plots); epochs after "
               "the first refitted to the time left; no step starts after the budget")
SCHEDULE_RULE = ("learning rate set before every training step from the fraction p of the budget charged: the "
                 "trainer's own poly schedule at step p x max_steps (decay ends with the budget; ScarNet's warm-up "
                 "keeps its 10/1000 = 1% share)")
#: nnU-Net's default training, against which a budget is read as "early training"
NNUNET_EPOCHS, NNUNET_ITERATIONS_PER_EPOCH = 1000, 250


def plan_remaining(left_s: float, nominal_iterations: int, per_iteration_s: float,
                   validation_s: float) -> Tuple[int, int]:
    """(epochs still to train, training iterations each) that fill `left_s` of charged time.

    An epoch costs its iterations at `per_iteration_s` plus one validation loop (`validation_s`). The epoch count is
    round(left / nominal epoch), at least one while one iteration and a validation fit (else (0, 0): stop); the
    iteration count then fills the time left."""
    if per_iteration_s <= 0 or validation_s < 0 or nominal_iterations < 1:
        raise ValueError(f"cannot plan from a pace of {per_iteration_s} s per iteration, {validation_s} s per "
                         f"validation and {nominal_iterations} nominal iterations")
    if left_s < per_iteration_s + validation_s:
        return 0, 0
    epochs = max(1, round(left_s / (nominal_iterations * per_iteration_s + validation_s)))
    return epochs, max(1, round((left_s / epochs - validation_s) / per_iteration_s))


class ChargedTime:
    """Seconds charged to the budget: only inside start()/stop() spans, each opened and closed on a finished device
    (`sync`), so queued GPU work is charged to the span that queued it."""

    def __init__(self, clock: Callable[[], float], sync: Callable[[], None]) -> None:
        self.clock, self.sync = clock, sync
        self.charged = self.startup = 0.0
        self._since = None

    def start(self) -> None:
        self.sync()
        self._since = self.clock()

    def stop(self, charge: bool = True) -> float:
        """Close the span; its seconds go to the budget, or to `startup` with charge=False."""
        self.sync()
        seconds = self.clock() - self._since
        self._since = None
        if charge:
            self.charged += seconds
        else:
            self.startup += seconds
        return seconds

    def used(self) -> float:
        """Charged seconds so far, the open span included (host clock, without waiting for the device)."""
        return self.charged + (self.clock() - self._since if self._since is not None else 0.0)


def poly_schedule_classes() -> tuple:
    """The schedulers whose rate is a function of (step / max_steps) that the rule can evaluate at any fraction."""
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    from nnunetv2_scarnet.trainers.lr_schedule import GroupPolyLRScheduler

    return PolyLRScheduler, GroupPolyLRScheduler


class BudgetFractionLR:
    """A trainer's own poly scheduler driven by the fraction of the budget charged instead of by the epoch.

    `step()` (nnU-Net calls it with the epoch, which is ignored) sets the rates the schedule gives at the fractional
    step p * max_steps, p = fraction() clipped to [0, 1]."""

    def __init__(self, scheduler, fraction: Callable[[], float], trainer_name: str) -> None:
        if not isinstance(scheduler, poly_schedule_classes()):
            raise TypeError(f"equal-budget rule: {trainer_name} uses {type(scheduler).__name__}; the rule scales "
                            f"nnU-Net's PolyLRScheduler and ScarNet's GroupPolyLRScheduler to the budget and "
                            f"cannot scale another schedule")
        self.scheduler, self.fraction = scheduler, fraction
        self.max_steps = scheduler.max_steps
        self.exponent = scheduler.exponent
        self.warmup_fraction = getattr(scheduler, "warmup_steps", 0) / scheduler.max_steps
        self.last_fraction = 0.0

    def step(self, epoch=None) -> None:
        self.last_fraction = min(1.0, max(0.0, self.fraction()))
        self.scheduler.step(self.last_fraction * self.max_steps)

    def get_last_lr(self):
        return self.scheduler.get_last_lr()

    def description(self) -> Dict:
        return {"scheduler": type(self.scheduler).__name__, "nominal_steps": self.max_steps,
                "exponent": self.exponent, "warmup_fraction_of_budget": self.warmup_fraction}


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


def device_sync(device) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA); nothing to wait for on the CPU."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def pace(epochs: List[Dict]) -> Tuple[float, float]:
    """(seconds per charged training step, seconds per validation step) over the epochs after the first when there
    are any (the first may still fill the data loaders' queues), else over the first."""
    measured = epochs[1:] or epochs
    steps = sum(e["charged_steps"] for e in measured)
    val_steps = sum(e["validation_steps"] for e in measured)
    return (sum(e["train_s"] for e in measured) / steps,
            sum(e["validation_s"] for e in measured) / val_steps if val_steps else 0.0)


def budgeted(trainer_class, budget_s: float, clock: Callable[[], float] = time.perf_counter):
    """The same trainer class (same name, so results land in the usual folder) trained for `budget_s` of charged time.

    Records on the trainer: `budget_epochs` (per epoch: iterations, charged training and validation seconds, wall
    seconds, learning rate of the first group at the first and last step and the budget fraction at the last),
    `epoch_iterations`, `epoch_seconds` (charged per epoch), `training_seconds` (charged in all), `startup_seconds`
    (the first step), `wall_training_seconds` and `lr_schedule` (the schedule scaled to the budget)."""
    import torch

    def run_training(self):
        if self.num_iterations_per_epoch < 2:
            raise ValueError(f"equal-budget rule: {type(self).__name__} has {self.num_iterations_per_epoch} training "
                             f"iteration(s) per epoch; the run's first step is start-up, so at least 2 are needed")
        wall_start = clock()
        self.on_train_start()
        meter = ChargedTime(clock, device_sync(self.device))
        schedule = BudgetFractionLR(self.lr_scheduler, lambda: meter.used() / budget_s, type(self).__name__)
        self.lr_scheduler = schedule  # nnU-Net's on_train_epoch_start steps and logs it
        self.lr_schedule = schedule.description()
        self.budget_epochs = []
        nominal = iterations = self.num_iterations_per_epoch
        first_step = True
        while iterations:
            epoch_start = clock()
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs, lrs, charged_steps = [], [], 0
            meter.start()
            for _ in range(iterations):
                if charged_steps and meter.used() >= budget_s:
                    break  # no step starts after the budget
                schedule.step()
                lrs.append(self.optimizer.param_groups[0]["lr"])
                outputs.append(self.train_step(next(self.dataloader_train)))
                if first_step:  # start-up: timed, not charged
                    meter.stop(charge=False)
                    meter.start()
                    first_step = False
                else:
                    charged_steps += 1
            train_s = meter.stop()
            record = {"iterations": len(outputs), "charged_steps": charged_steps, "train_s": train_s,
                      "lr_first": lrs[0], "lr_last": lrs[-1], "fraction_last_step": schedule.last_fraction}
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                meter.start()
                val = [self.validation_step(next(self.dataloader_val))
                       for _ in range(self.num_val_iterations_per_epoch)]
                record.update(validation_s=meter.stop(), validation_steps=len(val))
                self.on_validation_epoch_end(val)
            self.budget_epochs.append(record)
            per_step, per_val = pace(self.budget_epochs)
            remaining, iterations = plan_remaining(budget_s - meter.charged, nominal, per_step,
                                                   per_val * self.num_val_iterations_per_epoch)
            self.num_epochs = self.current_epoch + 1 + remaining
            self.num_iterations_per_epoch = iterations or self.num_iterations_per_epoch
            self.on_epoch_end()  # increments current_epoch
            record["wall_s"] = clock() - epoch_start
            self.print_to_log_file(f"budget {budget_s:.0f} s: {meter.charged:.1f} s charged, lr {lrs[0]:.3g} -> "
                                   f"{lrs[-1]:.3g}; {remaining} more epoch(s) of {iterations} iterations")
        self.epoch_iterations = [e["iterations"] for e in self.budget_epochs]
        self.epoch_seconds = [e["train_s"] + e["validation_s"] for e in self.budget_epochs]
        self.training_seconds, self.startup_seconds = meter.charged, meter.startup
        self.num_iterations_per_epoch = nominal
        self.on_train_end()
        self.wall_training_seconds = clock() - wall_start

    return type(trainer_class.__name__, (trainer_class,), {"run_training": run_training})
