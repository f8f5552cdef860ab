"""ScarNet network: building blocks, pretrained encoders, architecture and pretrained-weight loading."""
from nnunetv2_scarnet.network.architectures import ScarNet

__all__ = ["ScarNet"]
