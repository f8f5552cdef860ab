"""int8 for the pretrained encoder at CPU inference, as measured in issue 22 (benchmark only, not a network mode).

`torch.ao.quantization.quantize_dynamic` replaces every `nn.Linear` of a copy of the encoder (TinyViT's qkv,
attention projections and MLPs: 68% of LiteMedSAM's forward FLOPs at 256 x 256) by an int8 one: weights quantised
once, per tensor, activations quantised per call from their own range, products in int8 with int32 accumulation
(fbgemm / oneDNN with AVX512-VNNI), output in float32. Convolutions, attention matmuls, LayerNorm, GELU and softmax
stay float32. `int8_encoder(network)` swaps such a copy in for the network's own encoder for the duration of a
block, with SCARNET_CPU_BF16=0 (dynamic int8 takes float32 activations), so one trained network can be measured in
every precision in turns (interleaved.py, precision_agreement.py). docs/benchmarks.md ("CPU inference") says why
this is not a ScarNet inference mode: on a CPU with native bfloat16 it is no faster than the bfloat16 encoder.
"""
import contextlib
import copy
import os
from typing import Dict, Iterator

import torch
from torch import nn

#: the spec suffix / precision name of this mode in the benchmarks
INT8 = "int8"


def quantized_encoder_copy(encoder: nn.Module) -> nn.Module:
    """A copy of `encoder` (eval mode) whose `nn.Linear` layers are dynamically quantised to int8."""
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(encoder).eval(), {nn.Linear}, dtype=torch.qint8)


class Int8Encoders:
    """One quantised copy of each network's encoder, made on first use (after the trained weights are loaded)."""

    def __init__(self) -> None:
        self._copies: Dict[int, nn.Module] = {}

    @contextlib.contextmanager
    def swapped_in(self, network: nn.Module) -> Iterator[None]:
        """Within the block `network.encoder` is its int8 copy and SCARNET_CPU_BF16 is 0 (float32 elsewhere)."""
        from nnunetv2_scarnet.network.architectures.precision import CPU_BF16_ENV

        if not isinstance(getattr(network, "encoder", None), nn.Module):
            raise ValueError(f"{type(network).__name__} has no pretrained encoder to quantise")
        original = network.encoder
        if id(network) not in self._copies:
            self._copies[id(network)] = quantized_encoder_copy(original)
        previous = os.environ.get(CPU_BF16_ENV)
        network.encoder = self._copies[id(network)]
        os.environ[CPU_BF16_ENV] = "0"
        try:
            yield
        finally:
            network.encoder = original
            if previous is None:
                os.environ.pop(CPU_BF16_ENV, None)
            else:
                os.environ[CPU_BF16_ENV] = previous
