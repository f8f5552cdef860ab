"""Polynomial learning-rate decay that keeps each parameter group's own base rate."""
from typing import Optional, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler


class GroupPolyLRScheduler(_LRScheduler):
    """lr_g = base_g * (1 - step / max_steps) ** exponent for every group g.

    nnU-Net's PolyLRScheduler writes one rate into all groups, which would erase a lower encoder rate. The base rates
    are fixed at construction (from the trainer's settings), so resuming from a checkpoint keeps them.
    """

    def __init__(self, optimizer: Optimizer, base_lrs: Sequence[float], max_steps: int, exponent: float = 0.9,
                 current_step: Optional[int] = None) -> None:
        if len(base_lrs) != len(optimizer.param_groups):
            raise ValueError("one base learning rate per parameter group is needed")
        self.group_base_lrs = [float(lr) for lr in base_lrs]
        self.max_steps = max_steps
        self.exponent = exponent
        self.ctr = 0
        super().__init__(optimizer, current_step if current_step is not None else -1)

    def step(self, current_step: Optional[int] = None) -> None:
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        factor = max(0.0, 1 - current_step / self.max_steps) ** self.exponent
        for group, base in zip(self.optimizer.param_groups, self.group_base_lrs):
            group["lr"] = base * factor
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return self._last_lr
