"""Pieces of the learning-curve trainers (benchmark only): an iterator with its own random stream, so that every
trainer draws the same batches whatever its network consumes, and a loss wrapper that also records stock nnU-Net's
Dice + CE loss, so that training losses compare across trainers whose own objectives differ."""
import hashlib
import random
from typing import Iterator, List

import numpy as np
import torch
from torch import nn


def _global_rng_state() -> tuple:
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _set_global_rng_state(state: tuple) -> None:
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


def seeded_rng_state(seed: int) -> tuple:
    """The (python, numpy, torch CPU) generator states that seeding all three with `seed` gives; globals untouched."""
    outer = _global_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    state = _global_rng_state()
    _set_global_rng_state(outer)
    return state


class SeparateRngIterator:
    """Draws from `source` with python's, numpy's and torch's CPU generators set to a private state seeded with
    `seed`, and restores the caller's state afterwards: the sequence of items depends on the seed alone, not on
    what the rest of the program draws between items (nnU-Net's data loader and augmentations use the global
    generators; with nnUNet_n_proc_DA=0 they run in this process)."""

    def __init__(self, source: Iterator, seed: int):
        self.source = source
        self.state = seeded_rng_state(seed)

    def __iter__(self):
        return self

    def __next__(self):
        outer = _global_rng_state()
        _set_global_rng_state(self.state)
        try:
            item = next(self.source)
        finally:
            self.state = _global_rng_state()
            _set_global_rng_state(outer)
        return item


def batch_fingerprint(batch: dict) -> str:
    """Short SHA-1 of a batch's image data (equal fingerprints: the same patches with the same augmentation)."""
    data = batch["data"]
    array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


class ReferenceLossRecorder(nn.Module):
    """Wraps a trainer's loss: returns it unchanged, and while gradients are enabled (training steps, not nnU-Net's
    validation under no_grad) appends `reference(output, target)` at full resolution, without gradient, to
    `records`."""

    def __init__(self, loss: nn.Module, reference: nn.Module, records: List[float]):
        super().__init__()
        self.loss = loss
        self.reference = reference
        self.records = records

    def forward(self, output, target):
        value = self.loss(output, target)
        if torch.is_grad_enabled():
            full_output = output[0] if isinstance(output, (list, tuple)) else output
            full_target = target[0] if isinstance(target, (list, tuple)) else target
            with torch.no_grad():
                self.records.append(float(self.reference(full_output.float(), full_target)))
        return value
