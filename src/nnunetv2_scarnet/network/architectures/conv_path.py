"""The convolutional paths that run beside the pretrained encoder and provide fine-resolution skips."""
from typing import List, Sequence

import torch
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from torch import nn

from nnunetv2_scarnet.network.building_blocks import ConvNormAct, DoubleConv


class ConvStem(nn.Module):
    """Light two-stage stem: the full-resolution and the first strided skip (ViT tokens are too coarse there)."""

    def __init__(self, input_channels: int, features: Sequence[int], second_stride: Sequence[int]) -> None:
        super().__init__()
        self.stages = nn.ModuleList([
            DoubleConv(input_channels, features[0]),
            nn.Sequential(ConvNormAct(features[0], features[1], stride=tuple(second_stride)),
                          ConvNormAct(features[1], features[1])),
        ])
        self.out_channels: List[int] = [int(features[0]), int(features[1])]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class NnUNetConvEncoder(nn.Module):
    """nnU-Net's own 2D encoder (PlainConvEncoder of dynamic_network_architectures) built from the plans' stage
    layout with nnU-Net's default blocks (3x3 conv with bias, InstanceNorm, LeakyReLU): one skip per stage."""

    def __init__(self, input_channels: int, features: Sequence[int], strides: Sequence[Sequence[int]],
                 kernel_sizes: Sequence[Sequence[int]], n_conv_per_stage: Sequence[int]) -> None:
        super().__init__()
        self.encoder = PlainConvEncoder(
            input_channels, len(features), list(features), nn.Conv2d, [list(k) for k in kernel_sizes],
            [list(s) for s in strides], list(n_conv_per_stage), conv_bias=True, norm_op=nn.InstanceNorm2d,
            norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True},
            return_skips=True)
        self.out_channels: List[int] = [int(f) for f in features]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.encoder(x)


class SkipFusion(nn.Module):
    """Joins a stage's convolutional skip and its projected encoder feature (nnSAM-style feature fusion).

    With both present they are concatenated and mixed back to `channels` by a 1x1 conv-norm-act; with one present
    it passes unchanged.
    """

    def __init__(self, channels: int, fuse: bool) -> None:
        super().__init__()
        self.fuse = ConvNormAct(2 * channels, channels, kernel_size=1) if fuse else None

    def forward(self, conv_skip, encoder_feature):
        if conv_skip is None:
            return encoder_feature
        if encoder_feature is None:
            return conv_skip
        return self.fuse(torch.cat([conv_skip, encoder_feature], dim=1))
