"""ScarNet network: building blocks, pretrained encoders, architecture, the plans builder and weight loading."""
from nnunetv2_scarnet.network.architectures import ScarNet
from nnunetv2_scarnet.network.builder import SCARNET_CLASS_NAME, build_scarnet, scarnet_architecture

__all__ = ["SCARNET_CLASS_NAME", "ScarNet", "build_scarnet", "scarnet_architecture"]
