"""A network's inference forward in bfloat16, weights included, without changing the network itself.

The module keeps its float32 parameters (training, checkpoints and nnU-Net's per-fold `load_state_dict` see
nothing else). For the duration of one forward, every floating parameter and buffer of every submodule is replaced
by a bfloat16 copy, made on first use and remade whenever the original changed (loaded weights bump a tensor's
version), and put back afterwards, also when the forward raises. Compared with bfloat16 autocast this removes the
float32 <-> bfloat16 casts around every operation and halves the memory traffic of the element-wise ones
(normalisations, activations, residual additions), which dominate ScarNet's CPU inference.

The swap goes through each submodule once (`Module.modules()`), not through parameter names: nnU-Net's conv
blocks reach the same convolution under two names (`conv` and `all_modules.0`), and `torch.func.functional_call`
restores such a module's weight to the copy instead of the original.
"""
import contextlib
import weakref
from typing import Dict, Iterator, Tuple

import torch
from torch import nn


class BFloat16Weights:
    """bfloat16 copies of a module's floating parameters and buffers, refreshed when the originals change."""

    def __init__(self) -> None:
        #: (id of the submodule's tensor dict, tensor name) -> (weak reference to the original, its version, copy)
        self._copies: Dict[Tuple[int, str], Tuple[weakref.ref, int, torch.Tensor]] = {}

    def __getstate__(self) -> dict:
        return {"_copies": {}}  # a cache (with weak references): never pickled

    def _copy(self, store: dict, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """The cached copy while it is of this very tensor at this version; else a new one. Inference tensors
        (TinyViT registers its attention-bias buffer in `eval()`, which nnU-Net's predictor calls under
        `torch.inference_mode`) have no version counter and are copied every time (they are small)."""
        key = (id(store), name)
        version = None if tensor.is_inference() else tensor._version
        cached = self._copies.get(key)
        if version is None or cached is None or cached[0]() is not tensor or cached[1] != version:
            with torch.no_grad():
                cached = (weakref.ref(tensor), version, tensor.detach().to(torch.bfloat16))
            self._copies[key] = cached
        return cached[2]

    @contextlib.contextmanager
    def swapped_in(self, module: nn.Module) -> Iterator[None]:
        """Within the block, `module` and its submodules hold bfloat16 copies of their floating tensors."""
        originals = []
        try:
            for submodule in module.modules():
                for store in (submodule._parameters, submodule._buffers):
                    for name, tensor in list(store.items()):
                        if tensor is not None and tensor.is_floating_point():
                            originals.append((store, name, tensor))
                            store[name] = self._copy(store, name, tensor)
            yield
        finally:
            for store, name, tensor in reversed(originals):
                store[name] = tensor


def forward_in_bfloat16(module: nn.Module, weights: BFloat16Weights, x: torch.Tensor):
    """`module(x)` computed with `module`'s bfloat16 weights on bfloat16 input; outputs back in x's dtype.
    `module.forward` is called again, inside: it must compute (not dispatch here) when its input is bfloat16."""
    with weights.swapped_in(module):
        out = module(x.to(torch.bfloat16))
    if isinstance(out, (list, tuple)):
        return type(out)(o.to(x.dtype) for o in out)
    return out.to(x.dtype)
