"""U-Net decoder whose stages carry squeeze-and-excitation and an attention block, with deep-supervision heads."""
from typing import List, Sequence

import torch
from torch import nn

from nnunetv2_scarnet.network.building_blocks import CBAM, DoubleConv, ScarAttention, SqueezeExcitation

#: decoder attention choices: the authors' ScarAttention, CBAM (ablation), or none (no SE either)
ATTENTION_KINDS = ("scar", "cbam", "none")


def build_attention(kind: str, channels: int) -> nn.Module:
    """The attention block named `kind` for a stage with `channels` channels."""
    if kind == "scar":
        return ScarAttention(channels)
    if kind == "cbam":
        return CBAM(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown decoder attention {kind!r}; choose one of {', '.join(ATTENTION_KINDS)}")


class DecoderStage(nn.Module):
    """Upsample the deeper map, concatenate the skip, two convolutions, SE, attention."""

    def __init__(self, deep_channels: int, skip_channels: int, stride: Sequence[int], attention: str) -> None:
        super().__init__()
        stride = tuple(int(s) for s in stride)
        self.up = nn.ConvTranspose2d(deep_channels, skip_channels, kernel_size=stride, stride=stride)
        self.convs = DoubleConv(2 * skip_channels, skip_channels)
        self.squeeze_excitation = SqueezeExcitation(skip_channels) if attention != "none" else nn.Identity()
        self.attention = build_attention(attention, skip_channels)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.up(deep), skip], dim=1)
        return self.attention(self.squeeze_excitation(self.convs(x)))


class ScarNetDecoder(nn.Module):
    """Decodes skips (highest resolution first, deepest last) into segmentation logits.

    With `deep_supervision` True the forward returns one logit map per decoder stage, highest resolution first
    (nnU-Net's order); otherwise only the full-resolution map. nnU-Net toggles the attribute directly.
    """

    def __init__(self, features_per_stage: Sequence[int], strides: Sequence[Sequence[int]], num_classes: int,
                 attention: str = "scar", deep_supervision: bool = True) -> None:
        super().__init__()
        n = len(features_per_stage)
        self.deep_supervision = deep_supervision
        # stage s upsamples from stage s + 1 by strides[s + 1]; listed deepest first, as they run
        self.stages = nn.ModuleList([
            DecoderStage(features_per_stage[s + 1], features_per_stage[s], strides[s + 1], attention)
            for s in reversed(range(n - 1))
        ])
        self.seg_heads = nn.ModuleList([
            nn.Conv2d(features_per_stage[s], num_classes, kernel_size=1) for s in reversed(range(n - 1))
        ])

    def forward(self, skips: List[torch.Tensor]):
        x = skips[-1]
        outputs = []
        last = len(self.stages) - 1
        for i, (stage, head) in enumerate(zip(self.stages, self.seg_heads)):
            x = stage(x, skips[-(i + 2)])
            if self.deep_supervision or i == last:
                outputs.append(head(x))
        if not self.deep_supervision:
            return outputs[0]
        return outputs[::-1]
