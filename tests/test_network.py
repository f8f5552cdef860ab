"""ScarNet network: shapes for nnU-Net patch layouts, deep supervision, determinism, attention equivalence."""
import pytest
import torch
from segment_anything.modeling.image_encoder import Attention

from nnunetv2_scarnet.network import ScarNet
from nnunetv2_scarnet.network.architectures.encoder_adapter import EncoderInputAdapter, assign_taps_to_stages
from nnunetv2_scarnet.network.building_blocks import ScarAttention, SqueezeExcitation
from nnunetv2_scarnet.network.encoders import RelPosSdpaAttention, build_encoder

LAYOUTS = [
    # patch, strides (as nnU-Net plans them)
    ((128, 128), [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2], [2, 2]]),
    ((160, 256), [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2], [2, 2]]),
    ((96, 160), [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2], [1, 2]]),
    ((64, 48), [[1, 1], [2, 2], [2, 2], [2, 2]]),
]


def tiny_net(strides, num_classes=4, **kw):
    features = [32, 64, 128, 256, 512, 512, 512][:len(strides)]
    kw.setdefault("encoder", "tiny_vit_test")
    kw.setdefault("encoder_image_size", 64)
    return ScarNet(1, num_classes, len(strides), features, strides, max_features=64, **kw)


@pytest.mark.parametrize("patch,strides", LAYOUTS)
def test_deep_supervision_outputs_follow_nnunet_scales(patch, strides):
    torch.manual_seed(0)
    net = tiny_net(strides)
    out = net(torch.randn(2, 1, *patch))
    assert len(out) == len(strides) - 1
    factor = [1, 1]
    for level, o in enumerate(out):  # highest resolution first
        factor = [f * s for f, s in zip(factor, strides[level])]
        assert o.shape == (2, 4, patch[0] // factor[0], patch[1] // factor[1])


@pytest.mark.parametrize("patch,strides", LAYOUTS)
def test_inference_returns_full_resolution_only(patch, strides):
    net = tiny_net(strides, deep_supervision=True)
    net.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled does
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(1, 1, *patch))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 4, *patch)


def test_eval_mode_is_deterministic_and_batch_independent():
    torch.manual_seed(1)
    net = tiny_net(LAYOUTS[0][1], deep_supervision=False).eval()
    x = torch.randn(3, 1, 128, 128)
    with torch.no_grad():
        a, b = net(x), net(x)
        single = net(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(single, a[1:2], rtol=1e-4, atol=1e-4)


def test_batch_size_one_trains():
    net = tiny_net(LAYOUTS[0][1]).train()
    out = net(torch.randn(1, 1, 128, 128))
    sum(o.float().mean() for o in out).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_forward_creates_no_modules():
    net = tiny_net(LAYOUTS[1][1])
    before = [id(m) for m in net.modules()]
    net(torch.randn(1, 1, 160, 256))
    assert [id(m) for m in net.modules()] == before


def test_lite_encoder_network_shapes():
    net = ScarNet(1, 4, 5, [32, 64, 128, 256, 320], [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]],
                  encoder="litemedsam", encoder_image_size=256, max_features=64)
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(1, 1, 80, 112))
    assert [tuple(o.shape) for o in out] == [(1, 4, 80, 112), (1, 4, 40, 56), (1, 4, 20, 28), (1, 4, 10, 14)]


def test_lite_encoder_rejects_other_resolutions():
    with pytest.raises(ValueError, match="256"):
        build_encoder("litemedsam", 512)


def test_unknown_encoder_and_too_few_stages_are_rejected():
    with pytest.raises(ValueError, match="unknown ScarNet encoder"):
        build_encoder("vit_h_nonexistent", 256)
    with pytest.raises(ValueError, match="at least 3 stages"):
        ScarNet(1, 4, 2, [32, 64], [[1, 1], [2, 2]], encoder="tiny_vit_test", encoder_image_size=64)


def test_attention_blocks_present_or_ablated():
    with_att = tiny_net(LAYOUTS[0][1])
    without = tiny_net(LAYOUTS[0][1], use_attention=False)
    assert any(isinstance(m, ScarAttention) for m in with_att.modules())
    assert any(isinstance(m, SqueezeExcitation) for m in with_att.modules())
    assert not any(isinstance(m, (ScarAttention, SqueezeExcitation)) for m in without.modules())


@pytest.mark.parametrize("window,size", [(0, (4, 4)), (3, (3, 3))])
def test_sdpa_attention_matches_segment_anything(window, size):
    torch.manual_seed(2)
    reference = Attention(dim=32, num_heads=4, qkv_bias=True, use_rel_pos=True, input_size=size)
    with torch.no_grad():
        reference.rel_pos_h.normal_()
        reference.rel_pos_w.normal_()
    fast = RelPosSdpaAttention(dim=32, num_heads=4, qkv_bias=True, use_rel_pos=True, input_size=size)
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(2, *size, 32)
    torch.testing.assert_close(fast(x), reference(x), rtol=1e-5, atol=1e-5)


def test_adapter_rescales_each_sample_to_unit_range():
    adapter = EncoderInputAdapter(1, 64)
    x = torch.stack([torch.randn(1, 64, 64) * 5 + 3, torch.randn(1, 64, 64) * 0.1 - 7])
    y = adapter(x)
    assert y.shape == (2, 3, 64, 64)
    for sample in y:
        torch.testing.assert_close(sample.min(), torch.tensor(0.0))
        torch.testing.assert_close(sample.max(), torch.tensor(1.0))
        assert torch.equal(sample[0], sample[2])
    resized = adapter(torch.randn(2, 1, 40, 30))  # non-square patch, stretched to S x S
    assert resized.shape == (2, 3, 64, 64) and resized.min() >= 0 and resized.max() <= 1


def test_taps_are_spread_and_the_deepest_stage_gets_the_neck():
    assert assign_taps_to_stages(5, 4) == [0, 1, 3, 4]
    assert assign_taps_to_stages(3, 5)[-1] == 2
    assert assign_taps_to_stages(4, 1) == [3]


def test_cpu_inference_encoder_precision_policy(monkeypatch):
    from nnunetv2_scarnet.network.architectures import precision

    net = tiny_net(LAYOUTS[0][1], deep_supervision=False).eval()
    x = torch.randn(2, 1, 128, 128)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.encoder_autocast_dtype(x, training=False) == torch.bfloat16
    assert precision.encoder_autocast_dtype(x, training=True) is None  # training keeps float32 on CPU
    with torch.no_grad():
        fast = net(x)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    assert precision.encoder_autocast_dtype(x, training=False) is None
    with torch.no_grad():
        exact = net(x)
    assert fast.dtype == exact.dtype == torch.float32
    assert not torch.equal(fast, exact)  # the encoder really ran in bfloat16
    assert (fast.argmax(1) == exact.argmax(1)).float().mean() > 0.95
    monkeypatch.delenv(precision.CPU_BF16_ENV)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.encoder_autocast_dtype(x, training=False) is None


def test_network_is_channels_last():
    net = tiny_net(LAYOUTS[0][1])
    conv = net.stem[0][0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_torch_compile_fullgraph_matches_eager():
    """No graph breaks (fullgraph=True) in the training forward and backward: nnU-Net's default torch.compile
    applies to ScarNet. Checked with the CPU inductor backend (about a minute)."""
    torch.manual_seed(0)
    net = tiny_net([[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]])
    x = torch.randn(2, 1, 64, 96)
    eager = [o.detach() for o in net(x)]
    compiled = torch.compile(net, fullgraph=True)
    out = compiled(x)
    sum(o.mean() for o in out).backward()
    for a, b in zip(out, eager):
        torch.testing.assert_close(a.detach(), b, rtol=1e-4, atol=1e-5)
    assert all(p.grad is not None for p in net.decoder.parameters())
