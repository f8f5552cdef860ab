"""SAM / MedSAM ViT image encoder with multi-scale taps.

Wraps `segment_anything.modeling.ImageEncoderViT` (the module MedSAM fine-tuned) so that its parameter names stay
exactly SAM's (under the attribute `vit`) and pretrained checkpoints load strictly. The attention of every block is
switched to `RelPosSdpaAttention`, which computes the same function as SAM's with
`torch.nn.functional.scaled_dot_product_attention` (fused kernels on GPU) and adds no parameters.
"""
from functools import partial
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, ImageEncoderViT, get_rel_pos
from torch import nn

from nnunetv2_scarnet.network.encoders.staged import run_module


class RelPosSdpaAttention(Attention):
    """SAM's attention with decomposed relative-position bias, evaluated by scaled_dot_product_attention."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        bias = None
        if self.use_rel_pos:
            rel_h = get_rel_pos(h, h, self.rel_pos_h)  # (h, h, head_dim)
            rel_w = get_rel_pos(w, w, self.rel_pos_w)
            r_q = q.reshape(b, self.num_heads, h, w, -1)
            bias_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, rel_h)
            bias_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, rel_w)
            bias = (bias_h[..., :, None] + bias_w[..., None, :]).reshape(b, self.num_heads, h * w, h * w)
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.reshape(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


class SamViTEncoder(nn.Module):
    """ViT image encoder returning the outputs of selected blocks and of the neck, shallow to deep.

    Args:
        image_size: square input resolution S (SAM/MedSAM were trained at 1024; a multiple of 16).
        embed_dim, depth, num_heads, window_size, global_attn_indexes: ViT geometry (ViT-B: 768, 12, 12, 14,
            (2, 5, 8, 11)).
        tap_blocks: indices of the blocks whose outputs are returned (before the neck).
        out_chans: channels of the neck output.
        use_sdpa: evaluate attention with scaled_dot_product_attention (identical results, faster).
    """

    patch_size = 16

    def __init__(self, image_size: int, embed_dim: int, depth: int, num_heads: int, window_size: int,
                 global_attn_indexes: Sequence[int], tap_blocks: Sequence[int], out_chans: int = 256,
                 use_sdpa: bool = True) -> None:
        super().__init__()
        if image_size % self.patch_size:
            raise ValueError(f"encoder image size must be a multiple of {self.patch_size}, got {image_size}")
        if any(not 0 <= i < depth for i in tap_blocks):
            raise ValueError(f"tap_blocks {tuple(tap_blocks)} out of range for a ViT of depth {depth}")
        self.image_size = image_size
        self.tap_blocks = tuple(int(i) for i in tap_blocks)
        self.vit = ImageEncoderViT(
            img_size=image_size, patch_size=self.patch_size, in_chans=3, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, mlp_ratio=4.0, out_chans=out_chans, qkv_bias=True, use_abs_pos=True,
            use_rel_pos=True, rel_pos_zero_init=True, window_size=window_size,
            global_attn_indexes=tuple(global_attn_indexes), norm_layer=partial(nn.LayerNorm, eps=1e-6),
        )  # LayerNorm eps 1e-6 as segment_anything's build_sam: the pretrained weights were trained with it
        if use_sdpa:
            for block in self.vit.blocks:
                block.attn.__class__ = RelPosSdpaAttention  # same parameters, fused attention kernel
        self.out_channels: List[int] = [embed_dim] * len(self.tap_blocks) + [out_chans]
        self.out_strides: List[int] = [self.patch_size] * len(self.out_channels)
        #: stage i < depth is block i (stage 0 with the patch embedding), stage `depth` the neck
        self.num_stages = depth + 1

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.run_stages(x, [], 0, self.num_stages)[1]

    def run_stages(self, x: torch.Tensor, features: List[torch.Tensor], start: int, stop: int,
                   recompute: bool = False) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Stages [start, stop) (see `LiteMedSAMEncoder.run_stages`)."""
        features = list(features)
        for stage in range(start, stop):
            if stage == self.num_stages - 1:
                features.append(run_module(self.vit.neck, x.permute(0, 3, 1, 2), recompute))
                continue
            if stage == 0:
                x = self.vit.patch_embed(x) + self.vit.pos_embed
            x = run_module(self.vit.blocks[stage], x, recompute)
            if stage in self.tap_blocks:
                features.append(x.permute(0, 3, 1, 2))
        return x, features

    def stage_modules(self, stage: int) -> List[nn.Module]:
        """The modules stage `stage` runs."""
        if stage == self.num_stages - 1:
            return [self.vit.neck]
        return ([self.vit.patch_embed] if stage == 0 else []) + [self.vit.blocks[stage]]

    def stage_parameters(self, stage: int) -> List[nn.Parameter]:
        """The parameters stage `stage` uses (stage 0 also the position embedding)."""
        extra = [self.vit.pos_embed] if stage == 0 else []
        return extra + [p for m in self.stage_modules(stage) for p in m.parameters()]

    def pretrained_module(self) -> nn.Module:
        """The module whose state dict has SAM's `image_encoder.` layout."""
        return self.vit
