"""Channel attention of ScarNet's decoder blocks (Tavakoli et al., 2025; the authors' public code).

A squeeze (global average pool) followed by a normalised 1x1-conv bottleneck and a sigmoid gate. It differs from
squeeze-and-excitation (Hu et al., 2018) by the normalisation inside the bottleneck; it differs from CBAM's channel
gate (Woo et al., 2018) by using the average descriptor only.

One deliberate deviation: the authors normalise the pooled descriptor with BatchNorm, which cannot train on one
sample per device (nnU-Net's DDP splits a batch of 2 over 2 GPUs into batches of 1) and makes each sample's gate
depend on the other samples of its batch. A per-sample layer norm over the hidden channels (GroupNorm with one
group) takes its place.
"""
import torch
from torch import nn

from nnunetv2_scarnet.network.building_blocks.gate_init import OPEN_GATE_BIAS


class ChannelAttention(nn.Module):
    """x * sigmoid(conv1x1(relu(norm(conv1x1(avgpool(x)))))), hidden width channels // reduction (at least
    `min_hidden`)."""

    def __init__(self, channels: int, reduction: int = 8, min_hidden: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, min_hidden)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.GroupNorm(1, hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
            nn.Sigmoid(),
        )
        self.open_gate()

    def open_gate(self) -> None:
        """Start as the identity to 2%: zero weights, bias OPEN_GATE_BIAS (see gate_init.py)."""
        nn.init.zeros_(self.gate[3].weight)
        nn.init.constant_(self.gate[3].bias, OPEN_GATE_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.pool(x))
