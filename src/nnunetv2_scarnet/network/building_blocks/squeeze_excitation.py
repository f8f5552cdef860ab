"""Squeeze-and-excitation channel recalibration (Hu et al., 2018)."""
import torch
from torch import nn

from nnunetv2_scarnet.network.building_blocks.gate_init import OPEN_GATE_BIAS


class SqueezeExcitation(nn.Module):
    """Global average pool -> bottleneck MLP (1x1 convs) -> sigmoid -> channel rescale.

    No normalisation acts on the pooled 1x1 tensor, so the block is safe at batch size 1. The gate starts open
    (near the identity, see gate_init.py).
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.open_gate()

    def open_gate(self) -> None:
        """Start as the identity to 2%: zero weights, bias OPEN_GATE_BIAS (see gate_init.py)."""
        nn.init.zeros_(self.fc2.weight)
        nn.init.constant_(self.fc2.bias, OPEN_GATE_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * weights
