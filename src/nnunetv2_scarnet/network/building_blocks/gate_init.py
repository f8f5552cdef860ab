"""Near-identity start of the decoder's multiplicative sigmoid gates.

The authors' blocks gate a feature map as x * sigmoid(z). With PyTorch's default initialisation z is centred on 0,
so every gate starts near 0.5 and a decoder stage with three gates (SE, channel, spatial) scales its output by about
1/8; through six stages this disconnects the deep path at initialisation (issue 14). The gates here keep the
authors' form exactly and only start differently: the bias that enters each sigmoid is `OPEN_GATE_BIAS`, so every
gate starts at sigmoid(4) = 0.982 (the block starts as the identity, to 2%) and learns from there to close.
"""
from torch import nn

#: bias before every gate's sigmoid at initialisation; sigmoid(4.0) = 0.982
OPEN_GATE_BIAS = 4.0


def open_gates(module: nn.Module) -> None:
    """Put every gate inside `module` (blocks with an `open_gate` method) at its near-identity start."""
    for m in module.modules():
        if m is not module and hasattr(m, "open_gate"):
            m.open_gate()
    if hasattr(module, "open_gate"):
        module.open_gate()
