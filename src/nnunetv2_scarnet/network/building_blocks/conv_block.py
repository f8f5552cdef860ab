"""Convolution + instance norm + LeakyReLU, the nnU-Net default 2D block."""
from torch import nn


class ConvNormAct(nn.Sequential):
    """One 2D convolution followed by InstanceNorm2d (affine) and LeakyReLU.

    Instance norm keeps the block valid at batch size 1 (unlike BatchNorm).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride=1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=True),
            nn.InstanceNorm2d(out_channels, eps=1e-5, affine=True),
            nn.LeakyReLU(negative_slope=0.01, inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two stacked `ConvNormAct` blocks; the first may change the channel count."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, kernel_size),
            ConvNormAct(out_channels, out_channels, kernel_size),
        )
