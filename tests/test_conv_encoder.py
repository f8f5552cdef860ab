"""The hybrid's convolutional encoder is the encoder stock nnU-Net builds from the same plans."""
import copy
import math

import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from init_gradients import STOCK_PLANS

from nnunetv2_scarnet.network import build_scarnet, scarnet_architecture
from nnunetv2_scarnet.trainers import ScarNetTrainerLiteHybrid

RESENC_PLANS = {  # what nnUNetPlannerResEncM writes for a 2D configuration (n_blocks_per_stage, 1 conv per decoder)
    "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
    "arch_kwargs": {k: v for k, v in STOCK_PLANS["arch_kwargs"].items() if k != "n_conv_per_stage"}
    | {"n_blocks_per_stage": [1, 3, 4, 6, 6, 6], "n_conv_per_stage_decoder": [1] * 5},
    "_kw_requires_import": STOCK_PLANS["_kw_requires_import"],
}
#: plans with other building blocks than nnU-Net's defaults: they must be read, not assumed
CUSTOM_PLANS = copy.deepcopy(STOCK_PLANS)
CUSTOM_PLANS["arch_kwargs"].update(norm_op="torch.nn.BatchNorm2d", norm_op_kwargs={"eps": 1e-3, "affine": True},
                                   nonlin="torch.nn.ReLU", nonlin_kwargs={"inplace": False}, conv_bias=False,
                                   kernel_sizes=[[3, 3]] * 5 + [[1, 3]])


#: PlainConvUNet's conv -> nonlin -> norm order (a real PlainConvUNet argument; stock planners leave it out)
NONLIN_FIRST_PLANS = copy.deepcopy(STOCK_PLANS)
NONLIN_FIRST_PLANS["arch_kwargs"]["nonlin_first"] = True
ALL_PLANS = [STOCK_PLANS, RESENC_PLANS, CUSTOM_PLANS, NONLIN_FIRST_PLANS]
PLANS_IDS = ["plain", "resenc", "custom_ops", "nonlin_first"]


def hybrid_from(plans):
    settings = dict(ScarNetTrainerLiteHybrid.network_settings(), encoder="tiny_vit_test", encoder_image_size=64,
                    encoder_input_window=[-2.5, 2.5])
    entry = scarnet_architecture(plans["arch_kwargs"], settings, plans["network_class_name"])
    return build_scarnet(entry["network_class_name"], entry["arch_kwargs"], 1, 4)


def stock_from(plans):
    return get_network_from_plans(plans["network_class_name"], plans["arch_kwargs"], plans["_kw_requires_import"],
                                  1, 4, allow_init=True, deep_supervision=True)


@pytest.mark.parametrize("plans", ALL_PLANS, ids=PLANS_IDS)
def test_hybrid_conv_encoder_equals_stock_encoder(plans):
    torch.manual_seed(0)
    ours, stock = hybrid_from(plans).conv_path.encoder, stock_from(plans).encoder
    assert [type(m) for m in ours.modules()] == [type(m) for m in stock.modules()]
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in
                                                                    stock.state_dict().items()]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in stock.parameters())
    # plans' widths, uncapped (512 in 2D), and the plans' blocks with their kwargs
    assert list(ours.output_channels) == list(stock.output_channels) == plans["arch_kwargs"]["features_per_stage"]
    assert max(m.out_channels for m in ours.modules() if isinstance(m, nn.Conv2d)) == 512
    norms = [m for m in ours.modules() if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d))]
    expected_eps = plans["arch_kwargs"]["norm_op_kwargs"]["eps"]
    assert norms and all(m.eps == expected_eps for m in norms)
    # identical outputs with the same weights (ScarNet runs channels-last: the same memory layout for both)
    ours.load_state_dict(stock.state_dict())
    ours.eval(), stock.eval()
    stock.to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        for a, b in zip(ours(x), stock(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def call_order(module: nn.Module, x: torch.Tensor):
    """Types of the leaf modules in the order the forward pass calls them (module registration order cannot tell
    conv-norm-act from conv-act-norm: nnU-Net registers both the same way)."""
    order = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(type(m).__name__))
             for m in module.modules() if not list(m.children())]
    with torch.no_grad():
        module(x)
    for hook in hooks:
        hook.remove()
    return order


@pytest.mark.parametrize("plans", ALL_PLANS, ids=PLANS_IDS)
def test_initialised_hybrid_conv_encoder_is_stock_as_built(plans):
    """The encoder as built and initialised, no weight copied: the same layers called in the same order, the norms'
    weights and biases equal to stock's (ResEnc: the last norm of every residual block at 0, as stock's
    init_last_bn_before_add_to_0 sets it), zero conv biases and He-scaled conv weights in both."""
    torch.manual_seed(0)
    ours, stock = hybrid_from(plans).conv_path.encoder, stock_from(plans).encoder
    ours_state, stock_state = ({k: v.clone() for k, v in m.state_dict().items()} for m in (ours, stock))
    x = torch.randn(1, 1, 64, 64)
    assert call_order(ours, x) == call_order(stock, x)
    if plans["arch_kwargs"].get("nonlin_first"):
        assert call_order(stock, x)[:3] == ["Conv2d", "LeakyReLU", "InstanceNorm2d"]
    assert list(ours_state) == list(stock_state)
    norms = {name for name, m in stock.named_modules() if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d))}
    zeroed = 0
    for key, value in stock_state.items():
        module, _, kind = key.rpartition(".")
        if module in norms:
            assert torch.equal(ours_state[key], value), key
            zeroed += int(kind == "weight" and not value.any())
        elif kind == "bias":
            assert not ours_state[key].any() and not value.any(), key
        elif value.dim() == 4 and value.numel() > 5000:
            assert abs(float(ours_state[key].std()) / float(value.std()) - 1) < 0.1, key
    # stock's ResidualEncoder zeroes the last norm of each of its 1 + 3 + 4 + 6 + 6 + 6 blocks
    assert zeroed == (sum(plans["arch_kwargs"]["n_blocks_per_stage"]) if "n_blocks_per_stage" in plans["arch_kwargs"]
                      else 0)


def test_nonlin_first_is_kept_in_the_architecture_entry_and_refused_with_residual_blocks():
    settings = dict(ScarNetTrainerLiteHybrid.network_settings(), encoder_input_window=[-2.5, 2.5])
    entry = scarnet_architecture(NONLIN_FIRST_PLANS["arch_kwargs"], settings, STOCK_PLANS["network_class_name"])
    assert entry["arch_kwargs"]["nonlin_first"] is True
    assert "nonlin_first" not in scarnet_architecture(STOCK_PLANS["arch_kwargs"], settings)["arch_kwargs"]
    resenc = dict(RESENC_PLANS["arch_kwargs"], nonlin_first=True)
    with pytest.raises(ValueError, match="nonlin_first"):
        scarnet_architecture(resenc, settings, RESENC_PLANS["network_class_name"])


def test_hybrid_conv_encoder_has_he_init():
    """nnU-Net's InitWeights_He(1e-2): Kaiming-normal weights, zero biases (PyTorch's default has a third of the
    variance and random biases)."""
    torch.manual_seed(0)
    encoder = hybrid_from(STOCK_PLANS).conv_path.encoder
    for name, conv in encoder.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.weight.numel() > 5000:
            expected = math.sqrt(2 / (1 + 1e-4) / conv.weight[0].numel())
            assert abs(float(conv.weight.std()) / expected - 1) < 0.1, name
            assert conv.bias is None or not conv.bias.any(), name


def test_other_stock_networks_are_refused():
    with pytest.raises(ValueError, match="PlainConvUNet or ResidualEncoderUNet"):
        scarnet_architecture(STOCK_PLANS["arch_kwargs"], ScarNetTrainerLiteHybrid.network_settings(),
                             "dynamic_network_architectures.architectures.unet.ResidualUNet")
    bottleneck = dict(RESENC_PLANS["arch_kwargs"], block="BottleneckD")
    with pytest.raises(ValueError, match="block"):
        scarnet_architecture(bottleneck, ScarNetTrainerLiteHybrid.network_settings(),
                             RESENC_PLANS["network_class_name"])
