"""Small reusable layers of the ScarNet decoder (no dependency on any encoder)."""
from nnunetv2_scarnet.network.building_blocks.cbam import CBAM
from nnunetv2_scarnet.network.building_blocks.channel_attention import ChannelAttention
from nnunetv2_scarnet.network.building_blocks.conv_block import ConvNormAct, DoubleConv
from nnunetv2_scarnet.network.building_blocks.scar_attention import MultiScaleScarAttention, ScarAttention
from nnunetv2_scarnet.network.building_blocks.spatial_attention import SpatialAttention
from nnunetv2_scarnet.network.building_blocks.squeeze_excitation import SqueezeExcitation

__all__ = ["CBAM", "ChannelAttention", "ConvNormAct", "DoubleConv", "MultiScaleScarAttention", "ScarAttention",
           "SpatialAttention", "SqueezeExcitation"]
