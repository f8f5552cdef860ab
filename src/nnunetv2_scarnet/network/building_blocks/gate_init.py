"""Near-identity start of the decoder's multiplicative sigmoid gates.

The authors' blocks gate a feature map as x * sigmoid(z). With PyTorch's default initialisation z is centred on 0,
so every gate starts near 0.5 and a decoder stage with three gates (SE, channel, spatial) scales its output by about
1/8; through six stages this disconnects the deep path at initialisation (issue 14). The gates here keep the
authors' form exactly and only start differently: the layer that computes a gate's logit starts with zero weights
and bias `OPEN_GATE_BIAS`, so the gate is sigmoid(4) = 0.982 for any input (the block starts as the identity, to
2%); those weights get gradients from the first step and the gate learns from there. The spatial gate's logit is
batch-normalised: the layer that computes it is the BatchNorm's affine part, whose scale starts at zero and shift at
`OPEN_GATE_BIAS`, so it too starts at exactly sigmoid(4) (zeroing the convolution instead would not do: the
BatchNorm divides by the batch's spread, which is then zero, and the first gradients into the convolution would be
amplified by 1 / sqrt(eps)).
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
