"""Pretrained image encoders (MedSAM/SAM ViT, LiteMedSAM TinyViT) that return multi-scale feature lists."""
from nnunetv2_scarnet.network.encoders.lite_medsam import LiteMedSAMEncoder
from nnunetv2_scarnet.network.encoders.registry import ENCODER_NAMES, VIT_CONFIGS, build_encoder
from nnunetv2_scarnet.network.encoders.sam_vit import RelPosSdpaAttention, SamViTEncoder

__all__ = ["ENCODER_NAMES", "LiteMedSAMEncoder", "RelPosSdpaAttention", "SamViTEncoder", "VIT_CONFIGS",
           "build_encoder"]
