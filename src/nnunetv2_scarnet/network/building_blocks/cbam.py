"""CBAM (Woo et al., ECCV 2018): channel gate from average- and max-pooled descriptors through a shared MLP, then a
spatial gate from the channel-wise mean and max maps. Kept as an ablation of ScarNet's own ScarAttention."""
import torch
from torch import nn

from nnunetv2_scarnet.network.building_blocks.gate_init import OPEN_GATE_BIAS


class CBAMChannelGate(nn.Module):
    """Weights channels from their average- and max-pooled descriptors through a shared MLP."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )
        self.open_gate()

    def open_gate(self) -> None:
        """Start as the identity to 2%: zero weights; the MLP runs twice (avg, max), each pass adds half the bias."""
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.constant_(self.mlp[2].bias, OPEN_GATE_BIAS / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = torch.mean(x, dim=(2, 3), keepdim=True)
        mx = torch.amax(x, dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(mx))


class CBAMSpatialGate(nn.Module):
    """Weights pixels from the channel-wise mean and max maps through one kxk convolution."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
        self.open_gate()

    def open_gate(self) -> None:
        """Start as the identity to 2%: zero weights, bias OPEN_GATE_BIAS (see gate_init.py)."""
        nn.init.zeros_(self.conv.weight)
        nn.init.constant_(self.conv.bias, OPEN_GATE_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        descriptor = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(descriptor))


class CBAM(nn.Module):
    """Channel gate then spatial gate."""

    def __init__(self, channels: int, reduction: int = 8, spatial_kernel_size: int = 7) -> None:
        super().__init__()
        self.channel_gate = CBAMChannelGate(channels, reduction)
        self.spatial_gate = CBAMSpatialGate(spatial_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial_gate(self.channel_gate(x))
