"""Small reusable layers of the ScarNet decoder (no dependency on any encoder)."""
from nnunetv2_scarnet.network.building_blocks.conv_block import ConvNormAct, DoubleConv
from nnunetv2_scarnet.network.building_blocks.scar_attention import ChannelGate, ScarAttention, SpatialGate
from nnunetv2_scarnet.network.building_blocks.squeeze_excitation import SqueezeExcitation

__all__ = ["ChannelGate", "ConvNormAct", "DoubleConv", "ScarAttention", "SpatialGate", "SqueezeExcitation"]
