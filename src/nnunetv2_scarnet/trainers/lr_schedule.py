"""Polynomial learning-rate decay with a linear warm-up, keeping each parameter group's own base rate."""
from typing import Optional, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler


def poly_warmup_factor(step: float, max_steps: int, exponent: float = 0.9, warmup_steps: int = 0) -> float:
    """(1 - step / max_steps) ** exponent, multiplied during the first `warmup_steps` steps by (step + 1) /
    (warmup_steps + 1). From step `warmup_steps` on it is exactly nnU-Net's poly factor.

    `step` may be fractional: the equal-budget rule (benchmark/budget_schedule.py) evaluates the schedule at
    p * max_steps, p the fraction of the time budget used, so the warm-up ramps linearly from 1 / (warmup_steps + 1)
    over the first warmup_steps / max_steps of the budget."""
    factor = max(0.0, 1 - step / max_steps) ** exponent
    if step < warmup_steps:
        factor *= (step + 1) / (warmup_steps + 1)
    return factor


class GroupPolyLRScheduler(_LRScheduler):
    """lr_g = base_g * poly_warmup_factor(step) for every group g.

    nnU-Net's PolyLRScheduler writes one rate into all groups, which would erase a lower encoder rate. The base rates
    are fixed at construction (from the trainer's settings) and the rate is a function of the step (nnU-Net steps
    once per epoch, with the epoch number; the equal-budget rule with a fractional step before every training
    step), so resuming from a checkpoint restores every group's rate.

    The short linear warm-up keeps the first updates small while the randomly initialised decoder still sends large,
    poorly directed gradients into the pretrained encoder.
    """

    def __init__(self, optimizer: Optimizer, base_lrs: Sequence[float], max_steps: int, exponent: float = 0.9,
                 current_step: Optional[int] = None, warmup_steps: int = 0) -> None:
        if len(base_lrs) != len(optimizer.param_groups):
            raise ValueError("one base learning rate per parameter group is needed")
        self.group_base_lrs = [float(lr) for lr in base_lrs]
        self.max_steps = max_steps
        self.exponent = exponent
        self.warmup_steps = int(warmup_steps)
        self.ctr = 0
        super().__init__(optimizer, current_step if current_step is not None else -1)

    def step(self, current_step: Optional[int] = None) -> None:
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        factor = poly_warmup_factor(current_step, self.max_steps, self.exponent, self.warmup_steps)
        for group, base in zip(self.optimizer.param_groups, self.group_base_lrs):
            group["lr"] = base * factor
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return self._last_lr
