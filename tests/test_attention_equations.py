"""The authors' attention blocks against their equations, re-derived here from tensor primitives (not from the
modules' forward), and the hybrid's dependence on the pretrained encoder's features."""
import pytest
import torch
import torch.nn.functional as F

from nnunetv2_scarnet.network import ScarNet
from nnunetv2_scarnet.network.building_blocks import (
    ChannelAttention, MultiScaleScarAttention, ScarAttention, SpatialAttention, SqueezeExcitation)


def randomise(module, seed=0):
    """Random values in every parameter (gates no longer start open, so the equations are really exercised)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module


def conv1x1(x, weight, bias):
    """A 1x1 convolution as a matrix product over channels."""
    return torch.einsum("oc,bchw->bohw", weight[:, :, 0, 0], x) + bias[None, :, None, None]


def squeeze_excitation_eq(x, m):
    """Hu et al. 2018: x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)."""
    s = x.mean(dim=(2, 3), keepdim=True)
    z = conv1x1(torch.relu(conv1x1(s, m.fc1.weight, m.fc1.bias)), m.fc2.weight, m.fc2.bias)
    return x * torch.sigmoid(z)


def channel_attention_eq(x, m):
    """Authors' channel attention with a per-sample norm over the hidden channels (one-group GroupNorm)."""
    conv1, norm, _, conv2, _ = m.gate
    h = conv1x1(x.mean(dim=(2, 3), keepdim=True), conv1.weight, conv1.bias)
    mean = h.mean(dim=(1, 2, 3), keepdim=True)
    var = h.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    h = (h - mean) / torch.sqrt(var + norm.eps) * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]
    return x * torch.sigmoid(conv1x1(torch.relu(h), conv2.weight, conv2.bias))


def spatial_attention_eq(x, m):
    """Authors' spatial attention: x * sigmoid(BN(conv7x7(x))), BatchNorm with the batch's statistics (training)."""
    conv, norm, _ = m.gate
    z = F.conv2d(x, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2)
    mean, var = z.mean(dim=(0, 2, 3), keepdim=True), z.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    z = (z - mean) / torch.sqrt(var + norm.eps) * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]
    return x * torch.sigmoid(z)


def scar_attention_eq(x, m):
    return spatial_attention_eq(channel_attention_eq(x, m.channel_attention), m.spatial_attention)


def block_mean(x, k):
    """Average over non-overlapping k x k blocks."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // k, k, w // k, k).mean(dim=(3, 5))


def multiscale_eq(x, m):
    """ScarAttention at scales 1, 1/2, 1/4 (block means), bilinear back, concatenated, mixed by a 1x1 conv."""
    copies = []
    for scale, attention in zip(m.scales, m.attentions):
        coarse = x if scale == 1 else block_mean(x, scale)
        out = scar_attention_eq(coarse, attention)
        copies.append(out if scale == 1 else F.interpolate(out, size=x.shape[2:], mode="bilinear",
                                                           align_corners=False))
    return conv1x1(torch.cat(copies, dim=1), m.fusion.weight, m.fusion.bias)


@pytest.mark.parametrize("block,equation", [(SqueezeExcitation, squeeze_excitation_eq),
                                            (ChannelAttention, channel_attention_eq),
                                            (SpatialAttention, spatial_attention_eq),
                                            (ScarAttention, scar_attention_eq),
                                            (MultiScaleScarAttention, multiscale_eq)],
                         ids=lambda v: getattr(v, "__name__", ""))
def test_attention_blocks_match_their_equations(block, equation):
    torch.manual_seed(0)
    module = randomise(block(32)).train()
    x = torch.randn(3, 32, 16, 16)
    with torch.no_grad():
        expected = equation(x, module)
        got = module(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, x, atol=1e-2)  # the random gates really act


def test_hybrid_output_depends_on_the_pretrained_features():
    """Replacing the encoder's features by zeros changes the hybrid's logits: the convolutional encoder beside it
    does not make the pretrained path dead weight."""
    torch.manual_seed(0)
    net = ScarNet(1, 4, 5, [32, 64, 128, 256, 512], [[1, 1]] + [[2, 2]] * 4, encoder="tiny_vit_test",
                  encoder_image_size=64, conv_encoder=True, deep_supervision=False).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        taps = net.encode(net.adapter(x))
        logits = net(x)
        net.encode = lambda image: [torch.zeros_like(t) for t in taps]
        without = net(x)
    difference = (logits - without).abs()
    assert float(difference.max()) > 1e-2 * float(logits.abs().max())
    assert float((difference > 1e-4).float().mean()) > 0.5  # most pixels change, not just a corner
