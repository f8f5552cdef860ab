"""Spatial attention of ScarNet's decoder blocks (Tavakoli et al., 2025; the authors' public code).

One 7x7 convolution maps all channels to a single map, batch-normalised and passed through a sigmoid. CBAM's spatial
gate (Woo et al., 2018) instead convolves only the channel-wise mean and max maps; here every channel contributes
with its own learned weight.
"""
import torch
from torch import nn

from nnunetv2_scarnet.network.building_blocks.gate_init import OPEN_GATE_BIAS


class SpatialAttention(nn.Module):
    """x * sigmoid(bn(conv_kxk(x))), one weight per pixel shared by all channels."""

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.Conv2d(channels, 1, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )
        self.open_gate()

    def open_gate(self) -> None:
        """Start as the identity to 2%, like the other gates: the layer that computes the logit is the BatchNorm's
        affine part, so its scale starts at zero and its shift at OPEN_GATE_BIAS (the convolution keeps its He
        weights; it gets gradients as soon as the scale leaves zero)."""
        nn.init.zeros_(self.gate[1].weight)
        nn.init.constant_(self.gate[1].bias, OPEN_GATE_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
