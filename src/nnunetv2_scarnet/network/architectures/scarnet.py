"""ScarNet: a pretrained (Med)SAM image encoder in front of an attention U-Net decoder, for nnU-Net 2D plans."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from nnunetv2_scarnet.network.architectures.conv_path import ConvStem, NnUNetConvEncoder, SkipFusion
from nnunetv2_scarnet.network.architectures.decoder import ScarNetDecoder
from nnunetv2_scarnet.network.architectures.encoder_adapter import (
    DEFAULT_INPUT_WINDOW, EncoderInputAdapter, FeatureProjection, assign_taps_to_stages)
from nnunetv2_scarnet.network.architectures.precision import encoder_autocast_dtype
from nnunetv2_scarnet.network.building_blocks import MultiScaleScarAttention
from nnunetv2_scarnet.network.encoders import build_encoder

IntOrPair = Union[int, Sequence[int]]


def _pairs(values: Sequence[IntOrPair], what: str) -> List[List[int]]:
    pairs = [[int(v)] * 2 if np.isscalar(v) else [int(u) for u in v] for v in values]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"ScarNet is a 2D network; use the 2d configuration (got {what} {pairs})")
    return pairs


class ScarNet(nn.Module):
    """Encoder-decoder segmentation network whose stage layout follows an nnU-Net 2D configuration.

    Stage s of the decoder works at the patch size divided by the cumulative product of `strides[:s + 1]`, exactly
    like nnU-Net's PlainConvUNet, so deep supervision targets and sliding-window inference need no change.

    Skips: stages 0 and 1 come from a convolutional path (ViT tokens are 16 px wide). Every deeper stage gets a
    projected, area-resampled encoder tap; with `conv_encoder` (the hybrid ScarNet) nnU-Net's own convolutional
    encoder runs beside the pretrained one and the two are fused at every stage at stride >= 4. The deepest skip
    passes through multi-scale ScarAttention; every decoder stage has SE + the chosen attention block.

    Args:
        input_channels, num_classes: image channels and segmentation heads (nnU-Net decides).
        n_stages, features_per_stage, strides, kernel_sizes, n_conv_per_stage: the plans' stage layout (features
            capped at `max_features`; kernel sizes and convs per stage shape the hybrid's convolutional encoder).
        encoder: encoder name (see `nnunetv2_scarnet.network.encoders.ENCODER_NAMES`).
        encoder_image_size: square resolution S the patch is resized to before the encoder.
        encoder_input_window: z-score window mapped to the encoder's [0, 1] input range.
        encoder_input_norm: "unit" ([0, 1], MedSAM/LiteMedSAM) or "sam_imagenet" (SAM's natural-image statistics).
        attention: decoder attention, "scar" (the authors'), "cbam" (ablation) or "none" (no SE either).
        multiscale_attention: multi-scale ScarAttention on the deepest skip.
        conv_encoder: run nnU-Net's convolutional encoder beside the pretrained one (hybrid ScarNet).
        freeze_encoder: the pretrained encoder does not learn and stays in eval mode.
        max_features: channel cap for the decoder and the convolutional path.
        deep_supervision: return all decoder outputs (training) or only the full-resolution one.
    """

    def __init__(self, input_channels: int, num_classes: int, n_stages: int, features_per_stage: Sequence[int],
                 strides: Sequence[IntOrPair], kernel_sizes: Optional[Sequence[IntOrPair]] = None,
                 n_conv_per_stage: Optional[Union[int, Sequence[int]]] = None, encoder: str = "medsam_vit_b",
                 encoder_image_size: int = 512, encoder_input_window: Sequence[float] = DEFAULT_INPUT_WINDOW,
                 encoder_input_norm: str = "unit", attention: str = "scar", multiscale_attention: bool = True, conv_encoder: bool = False,
                 freeze_encoder: bool = False, max_features: int = 320, deep_supervision: bool = True) -> None:
        super().__init__()
        if n_stages < 3:
            raise ValueError(f"ScarNet needs at least 3 stages in the plans, got n_stages={n_stages}")
        kernel_sizes = [[3, 3]] * n_stages if kernel_sizes is None else kernel_sizes
        n_conv_per_stage = 2 if n_conv_per_stage is None else n_conv_per_stage
        if np.isscalar(n_conv_per_stage):
            n_conv_per_stage = [int(n_conv_per_stage)] * n_stages
        if not len(features_per_stage) == len(strides) == len(kernel_sizes) == len(n_conv_per_stage) == n_stages:
            raise ValueError("features_per_stage, strides, kernel_sizes and n_conv_per_stage need n_stages entries")
        strides, kernel_sizes = _pairs(strides, "strides"), _pairs(kernel_sizes, "kernel sizes")
        features = [min(int(f), int(max_features)) for f in features_per_stage]
        self.cumulative_strides = np.cumprod(np.array(strides), axis=0).tolist()
        self.freeze_encoder = bool(freeze_encoder)

        if conv_encoder:
            self.conv_path = NnUNetConvEncoder(input_channels, features, strides, kernel_sizes, n_conv_per_stage)
        else:
            self.conv_path = ConvStem(input_channels, features[:2], strides[1])
        self.adapter = EncoderInputAdapter(input_channels, encoder_image_size, encoder_input_window,
                                           encoder_input_norm)
        self.encoder = build_encoder(encoder, encoder_image_size)
        self.tap_for_stage = list(assign_taps_to_stages(len(self.encoder.out_channels), n_stages - 2))
        self.projections = nn.ModuleList([
            FeatureProjection(self.encoder.out_channels[tap], features[s + 2])
            for s, tap in enumerate(self.tap_for_stage)
        ])
        self.fusions = nn.ModuleList([SkipFusion(features[s], fuse=conv_encoder and s >= 2)
                                      for s in range(n_stages)])
        self.bottleneck_attention = (MultiScaleScarAttention(features[-1]) if multiscale_attention
                                     else nn.Identity())
        self.decoder = ScarNetDecoder(features, strides, num_classes, attention, deep_supervision)
        if self.freeze_encoder:
            self.encoder.requires_grad_(False)
        # channels-last convolutions are faster with oneDNN (CPU) and cuDNN (tensor cores); values are unchanged
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor):
        if not self.training and not torch.compiler.is_compiling():
            self.check_finite(x)  # eager prediction (nnUNetv2_predict); a compiled graph stays unbroken
        size = x.shape[2:]
        conv_skips = self.conv_path(x)
        taps = self.encode(self.adapter(x))
        skips = []
        for stage, fusion in enumerate(self.fusions):
            conv_skip = conv_skips[stage] if stage < len(conv_skips) else None
            feature = None
            if stage >= 2:
                grid = tuple(int(d) // int(c) for d, c in zip(size, self.cumulative_strides[stage]))
                feature = self.projections[stage - 2](taps[self.tap_for_stage[stage - 2]], grid)
            skips.append(fusion(conv_skip, feature))
        skips[-1] = self.bottleneck_attention(skips[-1])
        return self.decoder(skips)

    @staticmethod
    def check_finite(x: torch.Tensor) -> None:
        """Refuse NaN/Inf input at inference: nnU-Net's z-scoring spreads one NaN over the whole image, and any
        segmentation of it would be a plausible-looking wrong answer."""
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"ScarNet input holds {bad} NaN/Inf values: the image contains NaN or Inf voxels "
                             f"(fix or mask them before prediction)")

    def encode(self, image: torch.Tensor) -> List[torch.Tensor]:
        """Run the encoder in the precision chosen by `encoder_autocast_dtype` (see precision.py)."""
        dtype = encoder_autocast_dtype(image, self.training)
        if dtype is None:
            return self.encoder(image)
        with torch.autocast(image.device.type, dtype=dtype):
            features = self.encoder(image)
        if image.is_cuda:
            return features  # the caller's CUDA autocast handles the mixed dtypes
        return [f.to(image.dtype) for f in features]

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def encoder_parameters(self):
        """Parameters of the pretrained encoder (the lower-learning-rate group)."""
        return list(self.encoder.parameters())

    def decoder_parameters(self):
        """Every parameter that is not the encoder's: conv path, adapter, projections, fusions, decoder."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder_ids]
