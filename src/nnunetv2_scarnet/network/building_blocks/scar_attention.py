"""ScarAttention and multi-scale ScarAttention, as ScarNet's authors built them (Tavakoli et al., J Cardiovasc
Magn Reson 2025, and their public code): channel attention, then spatial attention; and the same block applied
at three scales of one feature map, fused by a 1x1 convolution."""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_scarnet.network.building_blocks.channel_attention import ChannelAttention
from nnunetv2_scarnet.network.building_blocks.spatial_attention import SpatialAttention


class ScarAttention(nn.Module):
    """Channel attention followed by spatial attention (each a multiplicative sigmoid gate)."""

    def __init__(self, channels: int, reduction: int = 8, spatial_kernel_size: int = 7) -> None:
        super().__init__()
        self.channel_attention = ChannelAttention(channels, reduction)
        self.spatial_attention = SpatialAttention(channels, spatial_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial_attention(self.channel_attention(x))


class MultiScaleScarAttention(nn.Module):
    """ScarAttention at scales 1, 1/2 and 1/4 of the map, resized back and fused by a 1x1 convolution.

    Each coarser copy is made by average pooling (no aliasing) and brought back bilinearly; no side is pooled below
    two pixels (a spatial gate over one pixel means nothing, and its batch norm could not train on one sample). The
    authors apply it to fused encoder features at high resolution; ScarNet applies it to the highest-resolution
    fused skip (stride 4). The fusion starts as the mean of the three copies, so with open gates the block starts
    close to the identity (a He-initialised 1x1 mix would start as a random projection).
    """

    def __init__(self, channels: int, scales: Sequence[int] = (1, 2, 4), reduction: int = 8) -> None:
        super().__init__()
        self.scales = tuple(int(s) for s in scales)
        self.attentions = nn.ModuleList([ScarAttention(channels, reduction) for _ in self.scales])
        self.fusion = nn.Conv2d(channels * len(self.scales), channels, kernel_size=1)
        self.open_gate()

    def open_gate(self) -> None:
        """Fusion weights: channel c of the output is the mean of channel c of the scale copies; bias 0."""
        channels, n = self.fusion.out_channels, len(self.scales)
        with torch.no_grad():
            weight = torch.zeros_like(self.fusion.weight)
            for k in range(n):
                weight[:, k * channels:(k + 1) * channels, 0, 0] = torch.eye(channels) / n
            self.fusion.weight.copy_(weight)
            self.fusion.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        outputs = []
        for scale, attention in zip(self.scales, self.attentions):
            if scale == 1:
                outputs.append(attention(x))
                continue
            coarse = F.adaptive_avg_pool2d(x, tuple(min(int(d), max(2, int(d) // scale)) for d in size))
            outputs.append(F.interpolate(attention(coarse), size=size, mode="bilinear", align_corners=False))
        return self.fusion(torch.cat(outputs, dim=1))
