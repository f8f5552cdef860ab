"""Bridges between nnU-Net's patches and a pretrained encoder, and back to the decoder's scales."""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_scarnet.network.building_blocks import ConvNormAct

#: z-score window mapped to the encoder's [0, 1] input when none is given; ScarNet trainers measure the window on
#: the preprocessed training images instead (trainers/encoder_input_window.py)
DEFAULT_INPUT_WINDOW = (-3.0, 3.0)
#: how the [0, 1] image is presented to the encoder: as is (MedSAM and LiteMedSAM were fine-tuned on [0, 1] input),
#: or as SAM's natural-image pipeline does (x 255, minus the ImageNet pixel mean, divided by its standard deviation)
INPUT_NORMS = ("unit", "sam_imagenet")
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


def resample_features(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a feature map (B, C, H, W) to `size` without aliasing.

    Shrinking sides are reduced by adaptive average pooling (every input position contributes to the output),
    growing sides are interpolated bilinearly.
    """
    h, w = int(x.shape[2]), int(x.shape[3])
    th, tw = int(size[0]), int(size[1])
    if (th, tw) == (h, w):
        return x
    if th < h or tw < w:
        x = F.adaptive_avg_pool2d(x, (min(th, h), min(tw, w)))
    if th > h or tw > w:
        x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False)
    return x


class EncoderInputAdapter(nn.Module):
    """z-scored nnU-Net patch (B, C, H, W) -> encoder input (B, 3, S, S).

    nnU-Net z-scores each image as a whole, so the same fixed window maps a pixel to the same value in every
    sliding-window tile: values are clipped to `input_window` (in SD units) and scaled linearly to [0, 1]
    (MedSAM's input range; `input_norm="sam_imagenet"` then applies SAM's natural-image normalisation).
    Single-channel input is repeated to three channels, other channel counts are mixed to three by a learned 1x1
    convolution. The result is resized to S x S with antialiased bilinear resampling (non-square patches are
    stretched; features are resized back to the patch's own aspect).
    """

    def __init__(self, in_channels: int, image_size: int,
                 input_window: Sequence[float] = DEFAULT_INPUT_WINDOW, input_norm: str = "unit") -> None:
        super().__init__()
        lo, hi = (float(v) for v in input_window)
        if not hi > lo:
            raise ValueError(f"encoder input window must be (low, high) with high > low, got {tuple(input_window)}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"unknown encoder input normalisation {input_norm!r}; choose one of "
                             f"{', '.join(INPUT_NORMS)}")
        self.image_size = int(image_size)
        self.in_channels = int(in_channels)
        self.window = (lo, hi)
        self.input_norm = input_norm
        self.mix = None if in_channels in (1, 3) else nn.Conv2d(in_channels, 3, kernel_size=1)
        self.register_buffer("pixel_mean", torch.tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1) / 255, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(SAM_PIXEL_STD).view(1, 3, 1, 1) / 255, persistent=False)

    def intensity_map(self, x: torch.Tensor) -> torch.Tensor:
        """The per-pixel map from z-scores to [0, 1]; depends on nothing but the pixel's own value."""
        lo, hi = self.window
        return torch.clamp((x - lo) / (hi - lo), 0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is not None:
            x = self.mix(x)
        x = self.intensity_map(x)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.input_norm == "sam_imagenet":
            x = (x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)
        if tuple(x.shape[2:]) != (self.image_size, self.image_size):
            # antialiased resampling has no bfloat16 CPU kernel: float32 in between (bfloat16 CPU inference)
            x = F.interpolate(x.float(), size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True).to(x.dtype)
        return x


class FeatureProjection(nn.Module):
    """Projects one encoder feature map to a decoder stage's channels, then resamples it to that stage's grid."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.project = ConvNormAct(in_channels, out_channels, kernel_size=1)

    def forward(self, feature: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        return resample_features(self.project(feature), size)


def assign_taps_to_stages(num_taps: int, num_deep_stages: int) -> Sequence[int]:
    """For each deep decoder stage (shallow to deep), the index of the encoder tap that feeds it.

    Taps are spread evenly; the deepest stage always gets the last tap (the neck).
    """
    if num_deep_stages < 1:
        raise ValueError("ScarNet needs at least one stage below half resolution")
    if num_deep_stages == 1:
        return [num_taps - 1]
    return [round(j * (num_taps - 1) / (num_deep_stages - 1)) for j in range(num_deep_stages)]
