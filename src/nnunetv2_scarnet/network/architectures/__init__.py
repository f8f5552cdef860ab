"""The ScarNet architecture (adapter, decoder, top-level module)."""
from nnunetv2_scarnet.network.architectures.decoder import ScarNetDecoder
from nnunetv2_scarnet.network.architectures.scarnet import ScarNet

__all__ = ["ScarNet", "ScarNetDecoder"]
