"""What ScarNet asks of an encoder beyond `forward`: to run as consecutive stages.

An encoder has `num_stages` and `run_stages(x, features, start, stop, recompute)`: stages [start, stop) on `x` (the
image for start 0, else what stage `start - 1` returned), appending its taps to `features`. ScarNet uses it to run
a leading part of the encoder frozen, without autograd, and the rest fine-tuned, and to checkpoint the fine-tuned
part. `stage_modules(stage)` and `stage_parameters(stage)` name what each stage uses.
"""
from typing import Callable, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def run_module(module: nn.Module, x: torch.Tensor, recompute: bool,
               forward: Optional[Callable[[nn.Module, torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """`module(x)` (or `forward(module, x)`), or with activation checkpointing (`recompute`): nothing inside
    `module` is kept for the backward pass, it is recomputed then (PyTorch's non-reentrant checkpoint; the encoders
    have no dropout and their BatchNorms always use running statistics, so the recomputation is exact)."""
    if forward is None:
        forward = type(module).__call__
    if recompute and torch.is_grad_enabled():
        return checkpoint(forward, module, x, use_reentrant=False)
    return forward(module, x)
