"""ScarNet starts training like stock nnU-Net: He initialisation, open gates, gradients and logits at stock's scale."""
import math

import pytest
import torch
from torch import nn

from init_gradients import emidec_batch, gradient_profile, scarnet_variant, stock_network

from nnunetv2_scarnet.network import ScarNet
from nnunetv2_scarnet.network.building_blocks import (
    CBAM, ChannelAttention, MultiScaleScarAttention, SpatialAttention, SqueezeExcitation)

#: Bounds on the ratio (either way) of a stage's RMS gradient, or of the logit std, to stock's, measured on a real
#: dev-set batch (docs/network.md, "Initialisation"). Like-for-like parts: every variant's logits and decoder stages
#: (measured within 1.41x) and every stage of the hybrid, whose encoder is stock's (within 1.31x). Without nnU-Net's
#: He initialisation the hybrid is 6.0x off (logits 0.47x, deepest stage 0.17x) and the non-hybrid's logits 0.42x.
LIKE_FOR_LIKE_BOUND = 1.6
#: the non-hybrid's encoder side, its light stem (enc0, enc1) and the projections of the pretrained features
#: (enc2-enc5), has no counterpart in stock's encoder (its stem stages get gradients through their own skips only):
#: measured from 4.7x below to 1.6x above stock's encoder stages; this bound only guards against a disconnected
#: path (before issue 14: up to 1940x)
NON_HYBRID_ENCODER_BOUND = 5.0


@pytest.fixture(scope="module")
def real_batch(emidec_cases):
    return emidec_batch(emidec_cases)


@pytest.fixture(scope="module")
def stock_profile(real_batch):
    torch.manual_seed(0)
    return gradient_profile(stock_network(), real_batch)


def outside_bounds(network, profile, stock_profile):
    """{stage: ratio to stock} for every stage (and the logit std) outside its bound."""
    assert set(profile) == set(stock_profile)
    off = {}
    for key, reference in stock_profile.items():
        loose = key.startswith("enc") and not network.has_conv_encoder
        bound = NON_HYBRID_ENCODER_BOUND if loose else LIKE_FOR_LIKE_BOUND
        ratio = profile[key] / reference
        if not 1 / bound <= ratio <= bound:
            off[key] = round(ratio, 3)
    return off


#: every ScarNet variant family on CPU (the tiny random ViT stands in for ViT-B; ViT-B itself at 256 px is measured
#: in docs/network.md, it takes minutes on two cores)
@pytest.mark.parametrize("variant", ["LiteHybrid", "Lite", "LiteHybrid_noAttention", "LiteHybrid_cbam",
                                     "tinyViT", "tinyViT_Hybrid", "tinyViT_noAttention", "tinyViT_cbam"])
def test_gradients_and_logits_at_initialisation_match_stock_on_a_real_batch(variant, real_batch, stock_profile):
    """Two slices of a real dev-set LGE stack with expert labels, the trainer's loss (Dice + CE + focal Tversky under
    deep supervision): the logit std and every stage's RMS gradient against stock PlainConvUNet built by nnU-Net
    from the same plans, within the bounds above. Before issue 14 the hybrid's deepest stage got 3.8e-8 against
    stock's 6.5e-5 (three gates at 0.5 per stage)."""
    torch.manual_seed(0)
    network = scarnet_variant(variant)
    off = outside_bounds(network, gradient_profile(network, real_batch), stock_profile)
    assert not off, f"{variant}: ratio to stock outside the bounds: {off}"


def test_the_bounds_catch_a_network_without_he_initialisation(real_batch, stock_profile, monkeypatch):
    """The same measurement with nnU-Net's He initialisation removed (PyTorch's default init instead) fails."""
    import nnunetv2_scarnet.network.architectures.scarnet as scarnet_module

    monkeypatch.setattr(scarnet_module, "InitWeights_He", lambda neg_slope: (lambda module: None))
    torch.manual_seed(0)
    network = scarnet_variant("LiteHybrid")
    off = outside_bounds(network, gradient_profile(network, real_batch), stock_profile)
    assert "logit_std" in off and "enc5" in off, off


def he_std(conv: nn.Module) -> float:
    """Standard deviation of kaiming_normal_(a=1e-2), fan_in mode (nnU-Net's InitWeights_He)."""
    fan_in = conv.weight[0].numel() if isinstance(conv, nn.Conv2d) else conv.weight.shape[1] * conv.weight[0, 0].numel()
    return math.sqrt(2 / (1 + 1e-4)) / math.sqrt(fan_in)


#: names of the layers that compute a gate's logit (SE, channel attention)
GATE_LOGIT_LAYERS = ("squeeze_excitation.fc2", "channel_attention.gate.3")


def test_every_new_module_has_nnunet_he_init_and_the_encoder_is_untouched():
    torch.manual_seed(0)
    net = ScarNet(1, 4, 5, [32, 64, 128, 256, 512], [[1, 1]] + [[2, 2]] * 4, encoder="tiny_vit_test",
                  encoder_image_size=64, conv_encoder=True)
    checked = 0
    for name, module in net.named_modules():
        if name.startswith("encoder.") or not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        if name.endswith(GATE_LOGIT_LAYERS):  # the layers computing a gate's logit start at zero, bias 4
            assert not module.weight.any() and torch.all(module.bias == 4.0), name
            continue
        if module.weight.numel() < 2000 or name.endswith("skip_attention.fusion"):
            continue  # too few weights for a std estimate; the multi-scale fusion starts as a mean (tested below)
        std = float(module.weight.std())
        assert abs(std / he_std(module) - 1) < 0.1, f"{name}: weight std {std:.4g}, He {he_std(module):.4g}"
        checked += 1
    assert checked > 20
    # the pretrained encoder (loaded after this initialisation by the trainer) is left alone by it
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    net.initialize_new_modules()
    assert all(torch.equal(before[k], v) for k, v in net.encoder.state_dict().items())


@pytest.mark.parametrize("block,gates", [(SqueezeExcitation, 1), (ChannelAttention, 1), (SpatialAttention, 1),
                                         (CBAM, 2)], ids=lambda b: getattr(b, "__name__", str(b)))
def test_sigmoid_gates_start_open(block, gates):
    """At initialisation (after nnU-Net's He init, as ScarNet applies it) every gate is exactly sigmoid(4) = 0.982
    for any input, the spatial gate included (it used to start at sigmoid(4 +- its normalised logit)); CBAM chains
    two gates. PyTorch's default init started them near 0.5."""
    torch.manual_seed(0)
    from dynamic_network_architectures.initialization.weight_init import InitWeights_He
    from nnunetv2_scarnet.network.building_blocks.gate_init import open_gates

    gate = block(64)
    gate.apply(InitWeights_He(1e-2))
    open_gates(gate)
    gate.train()
    x = torch.randn(2, 64, 16, 16) * 3 + 1
    with torch.no_grad():
        ratio = gate(x) / x
    expected = (1 / (1 + math.exp(-4.0))) ** gates
    torch.testing.assert_close(ratio, torch.full_like(ratio, expected), rtol=1e-4, atol=1e-5)


def test_multiscale_attention_starts_near_identity():
    torch.manual_seed(0)
    block = MultiScaleScarAttention(32)
    x = torch.randn(2, 32, 32, 32)
    with torch.no_grad():
        y = block(x)
    # the fusion averages the three scale copies: full-resolution copy (about x) plus two smoothed copies
    smooth = (torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 2), size=(32, 32), mode="bilinear")
              + torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 4), size=(32, 32),
                                                mode="bilinear") + x) / 3
    assert torch.nn.functional.cosine_similarity(y.flatten(), smooth.flatten(), dim=0) > 0.99
