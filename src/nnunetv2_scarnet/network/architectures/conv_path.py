"""The convolutional paths that run beside the pretrained encoder and provide fine-resolution skips."""
import pydoc
from typing import Dict, List, Optional, Sequence

import torch
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder
from torch import nn

from nnunetv2_scarnet.network.building_blocks import ConvNormAct, DoubleConv


#: the plans' arch_kwargs that name a class (nnU-Net lists them in `_kw_requires_import` and resolves them with
#: pydoc.locate)
OP_KEYS = ("conv_op", "norm_op", "dropout_op", "nonlin")


def resolve_ops(ops: Dict) -> Dict:
    """The plans' building blocks with dotted class names resolved as nnU-Net resolves them (pydoc.locate)."""
    resolved = dict(ops)
    for key in OP_KEYS:
        value = resolved[key]
        if isinstance(value, str):
            resolved[key] = pydoc.locate(value)
            if resolved[key] is None:
                raise ValueError(f"the plans name {key} {value!r}, which cannot be imported")
    if resolved["conv_op"] is not nn.Conv2d:
        raise ValueError(f"ScarNet is a 2D network; the plans' conv_op is {resolved['conv_op']}, not Conv2d")
    return resolved


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
    """The encoder stock nnU-Net builds from the same plans: `PlainConvEncoder` (PlainConvUNet plans, counted in
    convolutions per stage, conv -> nonlin -> norm with `nonlin_first`) or `ResidualEncoder` (ResidualEncoderUNet
    plans, counted in residual blocks), with the plans' channels (uncapped), conv/norm/dropout/nonlinearity types and
    kwargs, already resolved to classes. ScarNet initialises it as stock initialises its network: He init, and for
    residual blocks the last norm before the addition at zero. One skip per stage."""

    def __init__(self, input_channels: int, features: Sequence[int], strides: Sequence[Sequence[int]],
                 kernel_sizes: Sequence[Sequence[int]], n_conv_per_stage: Optional[Sequence[int]],
                 n_blocks_per_stage: Optional[Sequence[int]], ops: Dict, nonlin_first: bool = False) -> None:
        super().__init__()
        common = dict(conv_bias=ops["conv_bias"], norm_op=ops["norm_op"], norm_op_kwargs=ops["norm_op_kwargs"],
                      dropout_op=ops["dropout_op"], dropout_op_kwargs=ops["dropout_op_kwargs"],
                      nonlin=ops["nonlin"], nonlin_kwargs=ops["nonlin_kwargs"], return_skips=True)
        args = (input_channels, len(features), list(features), ops["conv_op"], [list(k) for k in kernel_sizes],
                [list(s) for s in strides])
        if (n_conv_per_stage is None) == (n_blocks_per_stage is None):
            raise ValueError("the convolutional encoder needs exactly one of n_conv_per_stage (plain) and "
                             "n_blocks_per_stage (residual)")
        if n_blocks_per_stage is not None:
            if nonlin_first:
                raise ValueError("nonlin_first=True: stock's ResidualEncoder (n_blocks_per_stage) has no "
                                 "nonlin_first; only PlainConvEncoder plans can set it")
            self.encoder = ResidualEncoder(*args, list(n_blocks_per_stage), **common)
        else:
            self.encoder = PlainConvEncoder(*args, list(n_conv_per_stage), **common, nonlin_first=bool(nonlin_first))
        self.out_channels: List[int] = [int(f) for f in features]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.encoder(x)


class SkipFusion(nn.Module):
    """Brings a stage's convolutional skip and its projected encoder feature to the decoder's width.

    With both present they are concatenated and mixed to `out_channels` by a 1x1 conv-norm-act (nnSAM-style
    feature fusion); a lone input of another width is projected by a 1x1 conv-norm-act; otherwise it passes as is.
    """

    def __init__(self, conv_channels: int, feature_channels: int, out_channels: int, fuse: bool) -> None:
        super().__init__()
        if fuse:
            self.fuse = ConvNormAct(conv_channels + feature_channels, out_channels, kernel_size=1)
        elif conv_channels and conv_channels != out_channels:
            self.fuse = ConvNormAct(conv_channels, out_channels, kernel_size=1)
        else:
            self.fuse = None
        self.both = bool(fuse)

    def forward(self, conv_skip, encoder_feature):
        if conv_skip is None:
            return encoder_feature
        if self.both:
            return self.fuse(torch.cat([conv_skip, encoder_feature], dim=1))
        return conv_skip if self.fuse is None else self.fuse(conv_skip)
