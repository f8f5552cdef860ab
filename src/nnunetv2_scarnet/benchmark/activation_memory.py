"""Activation memory of a training step: the bytes autograd keeps from the forward pass for the backward pass.

Counted exactly (each saved tensor's storage once, parameters excluded) with
`torch.autograd.graph.saved_tensors_hooks` on one image, independent of the machine's load and of the allocator;
it grows linearly with the batch. With the parameters, gradients and optimiser state it is what a training step's
peak memory is made of, and the part that frozen encoder stages (no autograd) and activation checkpointing
(recomputed instead of kept) reduce.
"""
from typing import Sequence

import torch
from torch import nn


def saved_activation_bytes(network: nn.Module, patch_size: Sequence[int], in_channels: int) -> int:
    """Bytes saved for the backward pass by one training forward of `network` on one image (train mode)."""
    parameters = {p.untyped_storage().data_ptr() for p in network.parameters()}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    was_training = network.training
    x = torch.randn(1, int(in_channels), *[int(s) for s in patch_size], device=next(network.parameters()).device)
    network.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = network(x)
        del out
    finally:
        network.train(was_training)
    return int(sum(storages.values()))
