"""Bridges between nnU-Net's patches and a pretrained encoder, and back to the decoder's scales."""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_scarnet.network.building_blocks import ConvNormAct


class EncoderInputAdapter(nn.Module):
    """z-scored nnU-Net patch (B, C, H, W) -> encoder input (B, 3, S, S) in [0, 1].

    Each sample is min-max rescaled to [0, 1] (MedSAM's input convention), single-channel input is repeated to three
    channels, other channel counts are mixed to three by a learned 1x1 convolution, and the result is resized
    bilinearly to S x S (non-square patches are stretched; features are resized back to the patch's own aspect).
    """

    def __init__(self, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.in_channels = int(in_channels)
        self.mix = None if in_channels in (1, 3) else nn.Conv2d(in_channels, 3, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is not None:
            x = self.mix(x)
        lo = torch.amin(x, dim=(1, 2, 3), keepdim=True)
        hi = torch.amax(x, dim=(1, 2, 3), keepdim=True)
        x = (x - lo) / torch.clamp(hi - lo, min=1e-6)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return x


class FeatureProjection(nn.Module):
    """Projects one encoder feature map to a decoder stage's channels, then resizes it to that stage's grid."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.project = ConvNormAct(in_channels, out_channels, kernel_size=1)

    def forward(self, feature: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        feature = self.project(feature)
        if tuple(feature.shape[2:]) != tuple(size):
            feature = F.interpolate(feature, size=size, mode="bilinear", align_corners=False)
        return feature


def assign_taps_to_stages(num_taps: int, num_deep_stages: int) -> Sequence[int]:
    """For each deep decoder stage (shallow to deep), the index of the encoder tap that feeds it.

    Taps are spread evenly; the deepest stage always gets the last tap (the neck).
    """
    if num_deep_stages < 1:
        raise ValueError("ScarNet needs at least one stage below half resolution")
    if num_deep_stages == 1:
        return [num_taps - 1]
    return [round(j * (num_taps - 1) / (num_deep_stages - 1)) for j in range(num_deep_stages)]
