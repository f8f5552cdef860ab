"""One optimizer object over several torch optimizers (e.g. SGD for the convolutional encoder, AdamW for the rest).

nnU-Net's trainer, its GradScaler path, its checkpoints and the LR scheduler all expect a single `self.optimizer`.
`JointOptimizer` exposes the parameter groups of its parts as its own (the very same dicts, so a scheduler that
writes `group["lr"]` reaches the part that uses it), steps and zeroes every part, and saves and restores each
part's state under its own name.
"""
from typing import Dict

import torch
from torch.optim import Optimizer


class JointOptimizer(Optimizer):
    """Parameter groups in the order of `parts` (dict order); every group belongs to exactly one part."""

    def __init__(self, parts: Dict[str, Optimizer]) -> None:
        if not parts:
            raise ValueError("JointOptimizer needs at least one optimizer")
        self.parts = dict(parts)
        groups = [g for part in self.parts.values() for g in part.param_groups]
        super().__init__([{"params": g["params"]} for g in groups], defaults={})
        self.param_groups = groups  # the parts' own group dicts: rates written here reach the parts

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for part in self.parts.values():
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts.values():
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state_dict: dict) -> None:
        if set(state_dict) != set(self.parts):
            raise ValueError(f"optimizer state holds parts {sorted(state_dict)}, this optimizer has "
                             f"{sorted(self.parts)} (a checkpoint of another optimizer setting?)")
        for name, part in self.parts.items():
            part.load_state_dict(state_dict[name])
