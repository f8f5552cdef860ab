"""ScarNet: a pretrained (Med)SAM image encoder in front of an attention U-Net decoder, for nnU-Net 2D plans."""
from typing import List, Sequence, Union

import numpy as np
import torch
from torch import nn

from nnunetv2_scarnet.network.architectures.decoder import ScarNetDecoder
from nnunetv2_scarnet.network.architectures.encoder_adapter import (
    EncoderInputAdapter, FeatureProjection, assign_taps_to_stages)
from nnunetv2_scarnet.network.architectures.precision import encoder_autocast_dtype
from nnunetv2_scarnet.network.building_blocks import ConvNormAct, DoubleConv
from nnunetv2_scarnet.network.encoders import build_encoder


class ScarNet(nn.Module):
    """Encoder-decoder segmentation network whose stage layout follows an nnU-Net 2D configuration.

    Stage s of the decoder works at the patch size divided by the cumulative product of `strides[:s + 1]`, exactly
    like nnU-Net's PlainConvUNet, so deep supervision targets and sliding-window inference need no change.
    Stages 0 (full) and 1 (half resolution) get their skips from a light convolutional stem, because ViT tokens are
    16 px wide; every deeper stage gets a projected, resized encoder tap.

    Args:
        input_channels: image channels of the nnU-Net dataset.
        num_classes: segmentation heads (nnU-Net's label manager decides).
        n_stages, features_per_stage, strides: stage layout from the plans (features are capped at
            `max_features`).
        encoder: encoder name (see `nnunetv2_scarnet.network.encoders.ENCODER_NAMES`).
        encoder_image_size: square resolution S the patch is resized to before the encoder.
        use_attention: squeeze-and-excitation + ScarAttention in every decoder stage.
        max_features: channel cap for the decoder.
        deep_supervision: return all decoder outputs (training) or only the full-resolution one.
        freeze_encoder: keep the encoder in eval mode (its BatchNorm statistics fixed) when the net trains.
    """

    def __init__(self, input_channels: int, num_classes: int, n_stages: int,
                 features_per_stage: Sequence[int], strides: Sequence[Union[int, Sequence[int]]],
                 encoder: str = "medsam_vit_b", encoder_image_size: int = 512, use_attention: bool = True,
                 max_features: int = 320, deep_supervision: bool = True, freeze_encoder: bool = False) -> None:
        super().__init__()
        if n_stages < 3:
            raise ValueError(f"ScarNet needs at least 3 stages in the plans, got n_stages={n_stages}")
        if len(features_per_stage) != n_stages or len(strides) != n_stages:
            raise ValueError("features_per_stage and strides must have n_stages entries")
        strides = [[int(s)] * 2 if np.isscalar(s) else [int(v) for v in s] for s in strides]
        if any(len(s) != 2 for s in strides):
            raise ValueError(f"ScarNet is a 2D network; got strides {strides}")
        features = [min(int(f), max_features) for f in features_per_stage]
        self.strides = strides
        self.cumulative_strides = np.cumprod(np.array(strides), axis=0).tolist()
        self.freeze_encoder = freeze_encoder

        self.stem = nn.ModuleList([
            DoubleConv(input_channels, features[0]),
            nn.Sequential(ConvNormAct(features[0], features[1], stride=tuple(strides[1])),
                          ConvNormAct(features[1], features[1])),
        ])
        self.adapter = EncoderInputAdapter(input_channels, encoder_image_size)
        self.encoder = build_encoder(encoder, encoder_image_size)
        self.tap_for_stage = list(assign_taps_to_stages(len(self.encoder.out_channels), n_stages - 2))
        self.projections = nn.ModuleList([
            FeatureProjection(self.encoder.out_channels[tap], features[s + 2])
            for s, tap in enumerate(self.tap_for_stage)
        ])
        self.decoder = ScarNetDecoder(features, strides, num_classes, use_attention, deep_supervision)
        # channels-last convolutions are faster with oneDNN (CPU) and cuDNN (tensor cores); values are unchanged
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor):
        size = x.shape[2:]
        skips: List[torch.Tensor] = []
        h = x
        for block in self.stem:
            h = block(h)
            skips.append(h)
        taps = self.encode(self.adapter(x))
        for stage, (tap, projection) in enumerate(zip(self.tap_for_stage, self.projections), start=2):
            grid = tuple(int(d) // int(c) for d, c in zip(size, self.cumulative_strides[stage]))
            skips.append(projection(taps[tap], grid))
        return self.decoder(skips)

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
        """Every parameter that is not the encoder's: stem, adapter, projections, decoder."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder_ids]
