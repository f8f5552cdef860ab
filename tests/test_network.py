"""ScarNet network: shapes for nnU-Net patch layouts, deep supervision, determinism, attention equivalence."""
import pytest
import torch
from segment_anything.modeling.image_encoder import Attention

from nnunetv2_scarnet.network import ScarNet
from nnunetv2_scarnet.network.architectures.encoder_adapter import (
    EncoderInputAdapter, assign_taps_to_stages, resample_features)
from nnunetv2_scarnet.network.building_blocks import (
    CBAM, ChannelAttention, MultiScaleScarAttention, ScarAttention, SpatialAttention, SqueezeExcitation)
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


@pytest.mark.parametrize("conv_encoder", [False, True], ids=["scarnet", "hybrid"])
@pytest.mark.parametrize("patch,strides", LAYOUTS)
def test_deep_supervision_outputs_follow_nnunet_scales(patch, strides, conv_encoder):
    torch.manual_seed(0)
    net = tiny_net(strides, conv_encoder=conv_encoder)
    out = net(torch.randn(2, 1, *patch))
    assert len(out) == len(strides) - 1
    factor = [1, 1]
    for level, o in enumerate(out):  # highest resolution first
        factor = [f * s for f, s in zip(factor, strides[level])]
        assert o.shape == (2, 4, patch[0] // factor[0], patch[1] // factor[1])


@pytest.mark.parametrize("conv_encoder", [False, True], ids=["scarnet", "hybrid"])
@pytest.mark.parametrize("patch,strides", LAYOUTS)
def test_inference_returns_full_resolution_only(patch, strides, conv_encoder):
    net = tiny_net(strides, deep_supervision=True, conv_encoder=conv_encoder)
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


def test_attention_kinds_build_the_named_blocks():
    scar = tiny_net(LAYOUTS[0][1])
    cbam = tiny_net(LAYOUTS[0][1], attention="cbam")
    none = tiny_net(LAYOUTS[0][1], attention="none", multiscale_attention=False)
    kinds = lambda net, cls: sum(isinstance(m, cls) for m in net.modules())  # noqa: E731
    stages = len(LAYOUTS[0][1]) - 1
    # every decoder stage: SE + the authors' ScarAttention; the stride-4 skip: multi-scale ScarAttention (3 more)
    assert kinds(scar, SqueezeExcitation) == stages and kinds(scar, MultiScaleScarAttention) == 1
    assert kinds(scar, ScarAttention) == stages + 3 and kinds(scar, CBAM) == 0
    assert kinds(cbam, CBAM) == stages and kinds(cbam, ScarAttention) == 3
    assert not any(isinstance(m, (ScarAttention, CBAM, SqueezeExcitation, MultiScaleScarAttention))
                   for m in none.modules())
    with pytest.raises(ValueError, match="unknown decoder attention"):
        tiny_net(LAYOUTS[0][1], attention="transformer")


def test_scar_attention_follows_the_authors_blocks():
    block = ScarAttention(32).eval()
    channel, spatial = block.channel_attention, block.spatial_attention
    assert isinstance(channel, ChannelAttention) and isinstance(spatial, SpatialAttention)
    # channel: avg-pool -> 1x1 conv (C -> C/8) -> norm -> ReLU -> 1x1 conv -> sigmoid (per-sample norm, see module)
    assert [type(m).__name__ for m in channel.gate] == ["Conv2d", "GroupNorm", "ReLU", "Conv2d", "Sigmoid"]
    assert channel.gate[0].out_channels == 4
    # spatial: 7x7 conv over all channels to one map -> BN -> sigmoid
    assert spatial.gate[0].in_channels == 32 and spatial.gate[0].out_channels == 1
    assert spatial.gate[0].kernel_size == (7, 7)
    x = torch.randn(2, 32, 12, 12)
    with torch.no_grad():
        gated = spatial.gate(channel(x))
        torch.testing.assert_close(block(x), channel(x) * gated)
    multi = MultiScaleScarAttention(32)
    assert multi.scales == (1, 2, 4) and multi.fusion.in_channels == 96
    assert multi(torch.randn(2, 32, 4, 4)).shape == (2, 32, 4, 4)
    assert multi(torch.randn(1, 32, 3, 5)).shape == (1, 32, 3, 5)  # no side pooled below two pixels


@pytest.mark.parametrize("conv_encoder", [False, True], ids=["scarnet", "hybrid"])
def test_multiscale_attention_acts_on_the_stride_4_fused_skip(conv_encoder):
    """Issue 14 §2: on the highest-resolution skip that carries encoder features (stride 4: 32 x 32 of a 128 x 128
    patch), not on the 4 x 4 bottleneck where its 1/2 and 1/4 branches both pool to 2 x 2."""
    net = tiny_net(LAYOUTS[0][1], conv_encoder=conv_encoder)
    seen = []
    net.skip_attention.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape[2:])))
    net(torch.randn(1, 1, 128, 128))
    assert seen == [(32, 32)]


def test_hybrid_fuses_a_convolutional_skip_at_every_stage():
    strides = LAYOUTS[0][1]
    hybrid, plain = tiny_net(strides, conv_encoder=True), tiny_net(strides)
    assert len(hybrid.conv_path.out_channels) == len(strides)  # nnU-Net's encoder: one skip per stage
    assert len(plain.conv_path.out_channels) == 2  # the light stem: full and half resolution only
    assert [f.fuse is not None for f in hybrid.fusions] == [False, False] + [True] * (len(strides) - 2)
    assert all(f.fuse is None for f in plain.fusions)
    # through the whole forward pass, the output depends on the convolutional path's deepest stage
    out = hybrid(torch.randn(2, 1, 128, 128))
    out[0].sum().backward()
    deepest = hybrid.conv_path.encoder.stages[-1]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in deepest.parameters() if p.requires_grad)


def test_encoder_input_is_the_same_in_overlapping_tiles():
    """A pixel's encoder intensity must not depend on the sliding-window tile it falls in."""
    torch.manual_seed(3)
    adapter = EncoderInputAdapter(1, 64)
    image = torch.randn(1, 1, 96, 96) * 1.5  # one z-scored slice, with outliers beyond the window
    image[0, 0, 40:44, 40:44] = 25.0  # a very bright spot that falls in only one tile
    tile_a, tile_b = image[..., :, :64], image[..., :, 32:]
    overlap_a, overlap_b = adapter.intensity_map(tile_a)[..., 32:], adapter.intensity_map(tile_b)[..., :32]
    assert torch.equal(overlap_a, overlap_b)
    mapped = adapter.intensity_map(image)
    assert mapped.min() == 0 and mapped.max() == 1  # clipped to the window, then in [0, 1]
    torch.testing.assert_close(adapter.intensity_map(torch.tensor([0.0, -3.0, 3.0, 1.5])),
                               torch.tensor([0.5, 0.0, 1.0, 0.75]))
    y = adapter(torch.randn(2, 1, 40, 30))  # non-square patch, stretched to S x S, three equal channels
    assert y.shape == (2, 3, 64, 64) and y.min() >= 0 and y.max() <= 1 and torch.equal(y[:, 0], y[:, 2])
    # the whole adapter (no resize when the tile has the encoder's size): overlaps agree in both tiles
    square = torch.randn(1, 1, 64, 96) * 2
    square[0, 0, 10, 70] = 40.0
    a, b = adapter(square[..., :64]), adapter(square[..., 32:])
    assert torch.equal(a[..., 32:], b[..., :32])


def test_sam_imagenet_input_normalisation():
    unit, sam = EncoderInputAdapter(1, 32), EncoderInputAdapter(1, 32, input_norm="sam_imagenet")
    x = torch.randn(1, 1, 32, 32)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.testing.assert_close(sam(x), (unit(x) * 255 - mean) / std)
    with pytest.raises(ValueError, match="unknown encoder input normalisation"):
        EncoderInputAdapter(1, 32, input_norm="imagenet")


@pytest.mark.parametrize("source,target", [((64, 64), (4, 4)), ((64, 64), (7, 5)), ((20, 30), (40, 10))])
def test_feature_resampling_lets_every_position_contribute(source, target):
    x = torch.randn(1, 3, *source, requires_grad=True)
    out = resample_features(x, target)
    assert out.shape[2:] == target
    out.sum().backward()
    assert (x.grad.abs() > 0).all()


def test_encoder_input_resizing_is_antialiased():
    adapter = EncoderInputAdapter(1, 64)
    x = torch.zeros(1, 1, 256, 256, requires_grad=True)
    adapter(x).sum().backward()
    assert (x.grad.abs() > 0).all()  # every pixel reaches the encoder when shrinking 256 -> 64
    checker = (torch.arange(256)[:, None] + torch.arange(256)[None]) % 2 * 4.0 - 2.0  # +-2 SD, finest pattern
    small = adapter(checker[None, None])
    torch.testing.assert_close(small, torch.full_like(small, 0.5), atol=0.02, rtol=0)  # no aliased pattern


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
    conv = net.conv_path.stages[0][0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
@pytest.mark.parametrize("conv_encoder,checkpoint", [(False, True), (True, True)],
                         ids=["scarnet_checkpointed", "hybrid_checkpointed"])
def test_torch_compile_fullgraph_matches_eager(conv_encoder, checkpoint):
    """No graph breaks (fullgraph=True) in the training forward and backward: nnU-Net's default torch.compile
    applies to ScarNet and to the hybrid, with the encoder's activation checkpointing (every trainer's default; the
    plain forward without it, as `_noCheckpoint` runs it, was this test's case until 2026-12-06). Dynamo captures
    the whole forward and AOTAutograd the backward ("aot_eager": the graphs that a compiler backend receives, run
    without generating kernels; nnU-Net compiles on GPUs only, where inductor emits Triton, so CPU inductor's C++
    code, one to three minutes per network on a cold cache, would test nothing a user runs)."""
    torch.manual_seed(0)
    net = tiny_net([[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]], conv_encoder=conv_encoder)
    net.configure_encoder_training(0, checkpoint)
    x = torch.randn(2, 1, 64, 96)
    eager = [o.detach() for o in net(x)]
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    sum(o.mean() for o in out).backward()
    for a, b in zip(out, eager):
        torch.testing.assert_close(a.detach(), b, rtol=1e-4, atol=1e-4)
    assert all(p.grad is not None for p in net.decoder.parameters())


def test_vit_layer_norms_use_sams_epsilon():
    encoder = build_encoder("tiny_vit_test", 64)
    norms = [m for m in encoder.vit.blocks.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-6 for m in norms)


def test_inference_refuses_nan_input_and_training_does_not_check():
    net = tiny_net(LAYOUTS[0][1], deep_supervision=False).eval()
    x = torch.randn(1, 1, 128, 128)
    x[0, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="1 NaN/Inf values"):
        with torch.no_grad():
            net(x)


def test_cuda_bfloat16_needs_native_support(monkeypatch):
    from nnunetv2_scarnet.network.architectures import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what V100/T4 answer (emulation)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert not precision.cuda_has_native_bf16()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert precision.cuda_has_native_bf16()


def test_plans_entry_rebuilds_the_network_and_takes_resenc_layouts():
    from nnunetv2_scarnet.network import build_scarnet, scarnet_architecture
    from nnunetv2_scarnet.trainers import ScarNetTrainerLiteHybrid

    stock = {"n_stages": 4, "features_per_stage": [32, 64, 128, 256], "strides": [[1, 1], [2, 2], [2, 2], [2, 2]],
             "kernel_sizes": [[3, 3]] * 4, "n_conv_per_stage": [2] * 4, "n_conv_per_stage_decoder": [2] * 3,
             "conv_op": "torch.nn.modules.conv.Conv2d", "conv_bias": True,
             "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
             "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
             "nonlin_kwargs": {"inplace": True}}
    settings = dict(ScarNetTrainerLiteHybrid.network_settings(), encoder="tiny_vit_test", encoder_image_size=64,
                    encoder_input_window=[-2.0, 1.6])
    entry = scarnet_architecture(stock, settings)
    assert "n_conv_per_stage_decoder" not in entry["arch_kwargs"] and entry["arch_kwargs"]["conv_encoder"] is True
    assert entry["arch_kwargs"]["conv_op"] == "torch.nn.modules.conv.Conv2d"  # the plans' names, resolved at build
    net = build_scarnet(entry["network_class_name"], entry["arch_kwargs"], 1, 4)
    assert net.adapter.window == (-2.0, 1.6) and len(net.conv_path.out_channels) == 4
    resenc = {k: v for k, v in stock.items() if k != "n_conv_per_stage"}
    resenc["n_blocks_per_stage"] = [1, 3, 4, 6]  # nnUNetResEncUNet*Plans: built as nnU-Net's residual encoder
    entry = scarnet_architecture(resenc, settings)
    assert entry["arch_kwargs"]["n_blocks_per_stage"] == [1, 3, 4, 6] and "n_conv_per_stage" not in entry["arch_kwargs"]
    net = build_scarnet(entry["network_class_name"], entry["arch_kwargs"], 1, 4)
    assert type(net.conv_path.encoder).__name__ == "ResidualEncoder"
    with pytest.raises(ValueError, match="unknown keys \\['extra'\\]"):
        build_scarnet(entry["network_class_name"], dict(entry["arch_kwargs"], extra=1), 1, 4)
    with pytest.raises(ValueError, match="not ScarNet"):
        build_scarnet("dynamic_network_architectures.architectures.unet.PlainConvUNet", entry["arch_kwargs"], 1, 4)


@pytest.mark.slow
def test_compiled_eval_forward_has_no_graph_break(monkeypatch):
    """Validation in nnU-Net runs the compiled network in eval mode: the NaN check must not break the graph."""
    from nnunetv2_scarnet.network.architectures import precision

    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    net = tiny_net(LAYOUTS[0][1], deep_supervision=False, conv_encoder=True).eval()
    explanation = torch._dynamo.explain(net)(torch.randn(1, 1, 128, 128))
    assert explanation.graph_break_count == 0, explanation.break_reasons
