"""ScarNet: a pretrained (Med)SAM image encoder in front of an attention U-Net decoder, for nnU-Net 2D plans."""
import contextlib
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He, init_last_bn_before_add_to_0
from torch import nn

from nnunetv2_scarnet.network.architectures.conv_path import ConvStem, NnUNetConvEncoder, SkipFusion, resolve_ops
from nnunetv2_scarnet.network.architectures.decoder import ScarNetDecoder
from nnunetv2_scarnet.network.architectures.encoder_adapter import (
    DEFAULT_INPUT_WINDOW, EncoderInputAdapter, FeatureProjection, assign_taps_to_stages)
from nnunetv2_scarnet.network.architectures.low_precision import BFloat16Weights, forward_in_bfloat16
from nnunetv2_scarnet.network.architectures.precision import cpu_inference_precision, encoder_autocast_dtype
from nnunetv2_scarnet.network.building_blocks import MultiScaleScarAttention
from nnunetv2_scarnet.network.building_blocks.gate_init import open_gates
from nnunetv2_scarnet.network.encoders import build_encoder

IntOrPair = Union[int, Sequence[int]]
#: nnU-Net's default 2D plans values (used when ScarNet is built directly, without plans)
NNUNET_NORM_KWARGS = {"eps": 1e-5, "affine": True}
NNUNET_NONLIN_KWARGS = {"inplace": True}


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
    projected, area-resampled encoder tap; with `conv_encoder` (the hybrid ScarNet) the encoder stock nnU-Net
    builds from the same plans runs beside the pretrained one and the two are fused at every stage at stride >= 4.
    The highest-resolution fused skip (stage 2) passes through multi-scale ScarAttention; every decoder stage has
    SE + the chosen attention block. Everything but the pretrained encoder gets nnU-Net's He initialisation, and
    every sigmoid gate starts open (near the identity, building_blocks/gate_init.py).

    Args:
        input_channels, num_classes: image channels and segmentation heads (nnU-Net decides).
        n_stages, features_per_stage, strides, kernel_sizes, n_conv_per_stage / n_blocks_per_stage: the plans'
            stage layout (the decoder's features capped at `max_features`; the hybrid's convolutional encoder takes
            them as they are, as plain stages or, with `n_blocks_per_stage`, as nnU-Net's residual encoder).
        conv_op, conv_bias, norm_op, norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
            nonlin_first: the plans' building blocks of the hybrid's convolutional encoder (classes, or the plans'
            dotted names; `nonlin_first` as in PlainConvUNet). ScarNet's own stem, projections and decoder keep
            their conv-InstanceNorm-LeakyReLU blocks.
        encoder: encoder name (see `nnunetv2_scarnet.network.encoders.ENCODER_NAMES`).
        encoder_image_size: square resolution S the patch is resized to before the encoder.
        encoder_input_window: z-score window mapped to the encoder's [0, 1] input range.
        encoder_input_norm: "unit" ([0, 1], MedSAM/LiteMedSAM) or "sam_imagenet" (SAM's natural-image statistics).
        attention: decoder attention, "scar" (the authors'), "cbam" (ablation) or "none" (no SE either).
        multiscale_attention: multi-scale ScarAttention on the highest-resolution fused skip (stage 2).
        conv_encoder: run nnU-Net's convolutional encoder beside the pretrained one (hybrid ScarNet).
        freeze_encoder: the pretrained encoder does not learn and stays in eval mode.
        max_features: channel cap of the decoder, the stem and the projections (not of the hybrid's encoder).
        deep_supervision: return all decoder outputs (training) or only the full-resolution one.
    """

    def __init__(self, input_channels: int, num_classes: int, n_stages: int, features_per_stage: Sequence[int],
                 strides: Sequence[IntOrPair], kernel_sizes: Optional[Sequence[IntOrPair]] = None,
                 n_conv_per_stage: Optional[Union[int, Sequence[int]]] = None,
                 n_blocks_per_stage: Optional[Union[int, Sequence[int]]] = None, conv_op=nn.Conv2d,
                 conv_bias: bool = True, norm_op=nn.InstanceNorm2d,
                 norm_op_kwargs: Optional[dict] = NNUNET_NORM_KWARGS, dropout_op=None,
                 dropout_op_kwargs: Optional[dict] = None, nonlin=nn.LeakyReLU,
                 nonlin_kwargs: Optional[dict] = NNUNET_NONLIN_KWARGS, nonlin_first: bool = False,
                 encoder: str = "medsam_vit_b", encoder_image_size: int = 512,
                 encoder_input_window: Sequence[float] = DEFAULT_INPUT_WINDOW, encoder_input_norm: str = "unit",
                 attention: str = "scar", multiscale_attention: bool = True, conv_encoder: bool = False,
                 freeze_encoder: bool = False, max_features: int = 320, deep_supervision: bool = True) -> None:
        super().__init__()
        if n_stages < 3:
            raise ValueError(f"ScarNet needs at least 3 stages in the plans, got n_stages={n_stages}")
        kernel_sizes = [[3, 3]] * n_stages if kernel_sizes is None else kernel_sizes
        if n_conv_per_stage is None and n_blocks_per_stage is None:
            n_conv_per_stage = 2
        per_stage = [n if n is None or not np.isscalar(n) else [int(n)] * n_stages
                     for n in (n_conv_per_stage, n_blocks_per_stage)]
        n_conv_per_stage, n_blocks_per_stage = per_stage
        counts = n_conv_per_stage if n_conv_per_stage is not None else n_blocks_per_stage
        if not len(features_per_stage) == len(strides) == len(kernel_sizes) == len(counts) == n_stages:
            raise ValueError("features_per_stage, strides, kernel_sizes and n_conv_per_stage (n_blocks_per_stage) "
                             "need n_stages entries")
        strides, kernel_sizes = _pairs(strides, "strides"), _pairs(kernel_sizes, "kernel sizes")
        plans_features = [int(f) for f in features_per_stage]
        features = [min(f, int(max_features)) for f in plans_features]
        self.cumulative_strides = np.cumprod(np.array(strides), axis=0).tolist()
        self.freeze_encoder = bool(freeze_encoder)
        #: training-only encoder settings (configure_encoder_training)
        self.frozen_encoder_stages = 0
        self.checkpoint_encoder = False
        self._bfloat16_weights = BFloat16Weights()  # CPU inference with SCARNET_CPU_BF16=all

        if conv_encoder:
            ops = resolve_ops(dict(conv_op=conv_op, conv_bias=conv_bias, norm_op=norm_op,
                                   norm_op_kwargs=dict(norm_op_kwargs or {}), dropout_op=dropout_op,
                                   dropout_op_kwargs=dropout_op_kwargs, nonlin=nonlin, nonlin_kwargs=nonlin_kwargs))
            self.conv_path = NnUNetConvEncoder(input_channels, plans_features, strides, kernel_sizes,
                                               n_conv_per_stage, n_blocks_per_stage, ops, nonlin_first)
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
        conv_channels = self.conv_path.out_channels
        self.fusions = nn.ModuleList([
            SkipFusion(conv_channels[s] if s < len(conv_channels) else 0, features[s], features[s],
                       fuse=conv_encoder and s >= 2)
            for s in range(n_stages)])
        #: the skip that passes through multi-scale ScarAttention: the highest-resolution one fed by the encoder
        self.attention_stage = 2
        self.skip_attention = (MultiScaleScarAttention(features[self.attention_stage]) if multiscale_attention
                               else nn.Identity())
        self.decoder = ScarNetDecoder(features, strides, num_classes, attention, deep_supervision)
        self.initialize_new_modules()
        if self.freeze_encoder:
            self.encoder.requires_grad_(False)
        # channels-last convolutions are faster with oneDNN (CPU) and cuDNN (tensor cores); values are unchanged
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor):
        if not self.training and not torch.compiler.is_compiling():
            self.check_finite(x)  # eager prediction (nnUNetv2_predict); a compiled graph stays unbroken
            if (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
                    and cpu_inference_precision() == "all"):
                return forward_in_bfloat16(self, self._bfloat16_weights, x)  # SCARNET_CPU_BF16=all
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
        skips[self.attention_stage] = self.skip_attention(skips[self.attention_stage])
        return self.decoder(skips)

    def initialize_new_modules(self) -> None:
        """nnU-Net's initialisation for every module but the pretrained encoder, whose weights the trainer loads
        afterwards (scratch variants keep the encoder architecture's own initialisation): InitWeights_He(1e-2)
        (Kaiming-normal convolutions, zero biases), and, as stock ResidualEncoderUNet.initialize does, the last norm
        of every residual block at zero (each block starts as its shortcut); then every sigmoid gate is opened
        (gate_init.py)."""
        he = InitWeights_He(1e-2)
        for name, child in self.named_children():
            if name != "encoder":
                child.apply(he)
                child.apply(init_last_bn_before_add_to_0)
        open_gates(self)

    @staticmethod
    def check_finite(x: torch.Tensor) -> None:
        """Refuse NaN/Inf input at inference: nnU-Net's z-scoring spreads one NaN over the whole image, and any
        segmentation of it would be a plausible-looking wrong answer."""
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"ScarNet input holds {bad} NaN/Inf values: the image contains NaN or Inf voxels "
                             f"(fix or mask them before prediction)")

    def encode(self, image: torch.Tensor) -> List[torch.Tensor]:
        """Run the encoder: its frozen leading stages (all of them with `freeze_encoder`) without autograd when
        nothing before them learns, the rest with autograd (checkpointed with `checkpoint_encoder`), each part in the
        precision `encoder_autocast_dtype` chooses for it (see precision.py)."""
        num_stages = self.encoder.num_stages
        frozen = num_stages if self.freeze_encoder else self.frozen_encoder_stages
        x, features = image, []
        if frozen:
            # a learned channel mix in front (multi-channel input) still gets its gradient through a frozen encoder
            no_grad = torch.no_grad() if not image.requires_grad else contextlib.nullcontext()
            with no_grad:
                x, features = self._run_encoder_stages(image, x, features, 0, frozen, frozen=True)
        if frozen < num_stages:
            x, features = self._run_encoder_stages(image, x, features, frozen, num_stages, frozen=False)
        return features

    def _run_encoder_stages(self, image, x, features, start: int, stop: int, frozen: bool):
        dtype = encoder_autocast_dtype(image, self.training, frozen=frozen)
        recompute = self.checkpoint_encoder and self.training and not frozen
        if dtype is None:
            return self.encoder.run_stages(x, features, start, stop, recompute)
        with torch.autocast(image.device.type, dtype=dtype):
            x, features = self.encoder.run_stages(x, features, start, stop, recompute)
        if image.is_cuda:
            return x, features  # the caller's CUDA autocast handles the mixed dtypes
        return x.to(image.dtype), [f.to(image.dtype) for f in features]

    def configure_encoder_training(self, frozen_stages: int = 0, checkpoint: bool = False) -> None:
        """Training-only settings of the pretrained encoder, which change what learns and what autograd keeps but
        not the function the network computes (so they are not part of the plans' architecture entry):

        - `frozen_stages`: the first `frozen_stages` stages of the encoder (see its `run_stages`) do not learn, run
          in eval mode and without autograd (in bfloat16 on CPUs that have it), so they hold no activations for the
          backward pass; the later stages are fine-tuned. `freeze_encoder` freezes every stage.
        - `checkpoint`: activation checkpointing of every fine-tuned encoder block (recomputed in the backward).
        """
        frozen_stages = int(frozen_stages)
        if not 0 <= frozen_stages <= self.encoder.num_stages:
            raise ValueError(f"frozen encoder stages must be between 0 and {self.encoder.num_stages} (the "
                             f"encoder's stages), got {frozen_stages}")
        if frozen_stages and self.freeze_encoder:
            raise ValueError("the encoder is already wholly frozen (freeze_encoder); frozen encoder stages apply "
                             "to a fine-tuned encoder")
        self.frozen_encoder_stages = frozen_stages
        self.checkpoint_encoder = bool(checkpoint)
        for stage in range(self.encoder.num_stages):
            for p in self.encoder.stage_parameters(stage):
                p.requires_grad_(not self.freeze_encoder and stage >= frozen_stages)
        self.train(self.training)

    def train(self, mode: bool = True):
        """nnU-Net's train/eval switch. The pretrained encoder's BatchNorm layers (LiteMedSAM's TinyViT) always
        normalise with their pretrained running statistics, which therefore never change: batch statistics of 2-4
        cardiac patches would overwrite the statistics the encoder was trained with. Their affine weights still
        learn when the encoder is fine-tuned. A frozen encoder (or frozen stages of it) is wholly in eval mode."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        else:
            for module in self.encoder.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
            for stage in range(self.frozen_encoder_stages):
                for module in self.encoder.stage_modules(stage):
                    module.eval()
        return self

    def encoder_parameters(self):
        """Parameters of the pretrained encoder (the lower-learning-rate group)."""
        return list(self.encoder.parameters())

    @property
    def has_conv_encoder(self) -> bool:
        """True for the hybrid ScarNet (nnU-Net's convolutional encoder beside the pretrained one)."""
        return isinstance(self.conv_path, NnUNetConvEncoder)

    def conv_encoder_parameters(self):
        """Parameters of the hybrid's convolutional encoder (empty for the plain ScarNet's stem)."""
        return list(self.conv_path.parameters()) if self.has_conv_encoder else []

    def decoder_parameters(self):
        """Every parameter that is not the encoder's: conv path, adapter, projections, fusions, decoder."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder_ids]
