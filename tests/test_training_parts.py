"""Loss and learning-rate schedule of the trainer family; the variants' attributes."""
import pytest
import torch

from nnunetv2_scarnet.trainers import TRAINER_NAMES
from nnunetv2_scarnet.trainers import variants
from nnunetv2_scarnet.trainers.losses import DiceCEFocalTverskyLoss, FocalTverskyLoss
from nnunetv2_scarnet.trainers.lr_schedule import GroupPolyLRScheduler, poly_warmup_factor


def logits_for(labels, num_classes=4, confidence=20.0):
    onehot = torch.nn.functional.one_hot(labels[:, 0].long(), num_classes).permute(0, 3, 1, 2).float()
    return onehot * confidence


def test_focal_tversky_hand_example():
    # one foreground class: probabilities known exactly via a two-class softmax with chosen logits
    target = torch.tensor([[[[1, 1, 0, 0]]]])
    p = torch.tensor([0.9, 0.6, 0.2, 0.0])
    logits = torch.stack([torch.zeros(4), torch.logit(p.clamp(1e-7, 1 - 1e-7))])[None, :, None, :]
    loss = FocalTverskyLoss(alpha=0.7, beta=0.3, gamma=0.75, smooth=0.0)(logits, target)
    tp, fn, fp = 0.9 + 0.6, 0.1 + 0.4, 0.2 + 0.0
    expected = (1 - tp / (tp + 0.7 * fn + 0.3 * fp)) ** 0.75
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-4, atol=1e-5)


def test_focal_tversky_perfect_prediction_is_zero_and_ignore_label_is_skipped():
    target = torch.randint(0, 4, (2, 1, 16, 16))
    assert FocalTverskyLoss()(logits_for(target), target) < 1e-4
    with_ignore = target.clone()
    with_ignore[:, :, :4] = 4  # ignored voxels, whatever the prediction
    assert FocalTverskyLoss(ignore_label=4)(logits_for(target), with_ignore) < 1e-4


def test_focal_tversky_absent_classes_neither_reward_nor_punish():
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 1, 16, 16))  # classes 1 and 2 present, scar (3) absent from the batch
    logits = torch.randn(2, 4, 16, 16, requires_grad=True)
    loss = FocalTverskyLoss()
    value = loss(logits, target)
    value.backward()
    # equals the mean of (1 - TI) ** gamma over the present classes 1 and 2 only, computed here by hand
    probs = torch.softmax(logits.detach(), 1)
    terms = []
    for c in (1, 2):
        p, t = probs[:, c], (target[:, 0] == c).float()
        tp, fn, fp = (p * t).sum(), ((1 - p) * t).sum(), (p * (1 - t)).sum()
        terms.append((1 - (tp + 1e-5) / (tp + 0.7 * fn + 0.3 * fp + 1e-5)) ** 0.75)
    torch.testing.assert_close(value.detach(), sum(terms) / 2, rtol=1e-5, atol=1e-6)
    perfect = logits_for(target)
    assert loss(perfect, target) < 1e-4  # before the fix an absent class added ~(1 - 0) ** 0.75 = 1 / 3 per class
    background_only = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    assert loss(torch.randn(2, 4, 8, 8), background_only) == 0


def test_compound_loss_orders_good_and_bad_predictions():
    target = torch.randint(0, 4, (2, 1, 16, 16))
    loss = DiceCEFocalTverskyLoss(batch_dice=True, ddp=False, ignore_label=None)
    good = loss(logits_for(target), target)
    bad = loss(logits_for((target + 1) % 4), target)
    assert torch.isfinite(good) and good < bad
    assert loss(logits_for(target).half(), target).dtype == torch.float32


def test_group_poly_scheduler_keeps_each_group_rate():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.AdamW([{"params": [params[0]], "lr": 1e-3}, {"params": [params[1]], "lr": 1e-4}])
    sched = GroupPolyLRScheduler(opt, [1e-3, 1e-4], max_steps=10)
    sched.step(5)
    factor = 0.5 ** 0.9
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * factor)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-4 * factor)
    sched.step(10)
    assert opt.param_groups[1]["lr"] == 0.0


def test_warmup_ramps_linearly_then_is_exactly_poly():
    assert poly_warmup_factor(0, 100, warmup_steps=4) == pytest.approx(1 / 5)
    assert poly_warmup_factor(3, 100, warmup_steps=4) == pytest.approx(4 / 5 * (1 - 3 / 100) ** 0.9)
    for step in range(4, 101):  # after the warm-up nothing differs from the schedule without it
        assert poly_warmup_factor(step, 100, warmup_steps=4) == poly_warmup_factor(step, 100, warmup_steps=0)
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.AdamW([{"params": [params[0]], "lr": 1e-3}, {"params": [params[1]], "lr": 1e-4}])
    sched = GroupPolyLRScheduler(opt, [1e-3, 1e-4], max_steps=100, warmup_steps=4)
    sched.step(1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3 * 0.4 * 0.99 ** 0.9, 1e-4 * 0.4 * 0.99 ** 0.9])


def test_every_variant_is_listed_and_configured():
    expected = {"ScarNetTrainer", "ScarNetTrainerLite", "ScarNetTrainer_scratch", "ScarNetTrainer_frozenEncoder",
                "ScarNetTrainer_noAttention", "ScarNetTrainerTiny", "ScarNetTrainerTiny_smoke",
                "ScarNetTrainer_stockNetwork", "ScarNetTrainerLiteHybrid_scratch",
                "ScarNetTrainerLiteHybrid_stockRecipe", "ScarNetTrainerHybrid_stockRecipe"}
    assert expected <= set(TRAINER_NAMES)
    assert variants.ScarNetTrainerLite.pretrained_weights == "litemedsam"
    assert variants.ScarNetTrainer_scratch.pretrained_weights is None
    assert variants.ScarNetTrainerLite_frozenEncoder.freeze_encoder
    assert variants.ScarNetTrainerLite.encoder_lr_factor < 1
    hybrid = variants.ScarNetTrainerLiteHybrid.network_settings()
    assert hybrid["conv_encoder"] and hybrid["encoder"] == "litemedsam" and hybrid["attention"] == "scar"
    for base in ("ScarNetTrainerHybrid", "ScarNetTrainerLiteHybrid"):  # the same ablation switches as the others
        for suffix in ("_scratch", "_frozenEncoder", "_noAttention", "_cbam"):
            assert base + suffix in TRAINER_NAMES
    assert variants.ScarNetTrainerLiteHybrid_noAttention.network_settings()["attention"] == "none"
    assert variants.ScarNetTrainer_cbam.network_settings()["attention"] == "cbam"
    assert variants.ScarNetTrainerHybrid_scratch.pretrained_weights is None


def test_frozen_encoder_weights_and_batchnorm_statistics_stay_fixed():
    """The LiteMedSAM TinyViT has BatchNorm layers: frozen means neither its weights nor its running statistics
    move while the rest of the network trains."""
    from nnunetv2_scarnet.network import ScarNet

    torch.manual_seed(0)
    net = ScarNet(1, 4, 4, [16, 32, 64, 64], [[1, 1], [2, 2], [2, 2], [2, 2]], encoder="litemedsam",
                  encoder_image_size=256, max_features=32, freeze_encoder=True, conv_encoder=True)
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    assert any(k.endswith("running_mean") for k in before)
    decoder_before = [p.detach().clone() for p in net.decoder.parameters()]
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    net.train()
    assert not net.encoder.training and net.decoder.training
    for _ in range(2):
        opt.zero_grad()
        out = net(torch.randn(2, 1, 64, 64))
        sum(o.mean() for o in out).backward()
        opt.step()
    after = net.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in net.encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(decoder_before, net.decoder.parameters()))


def test_3d_configuration_is_refused_at_training_and_prediction():
    """The same one-line message in nnUNetv2_train (trainer construction) and in nnUNetv2_predict (the predictor
    calls build_network_architecture with the saved plans)."""
    from types import SimpleNamespace

    from nnunetv2_scarnet.network import ScarNet
    from nnunetv2_scarnet.trainers import ScarNetTrainerTiny

    message = "ScarNet is a 2D network; use the 2d configuration"
    plans = {"dataset_name": "Dataset999_X", "configurations": {"3d_fullres": {
        "patch_size": [16, 64, 64], "data_identifier": "x", "architecture": {"network_class_name": "x",
                                                                             "arch_kwargs": {}}}}}
    with pytest.raises(ValueError, match=message):
        ScarNetTrainerTiny(plans, "3d_fullres", 0, {}, torch.device("cpu"))
    manager = SimpleNamespace(patch_size=[16, 64, 64], network_arch_class_name="x", network_arch_init_kwargs={})
    with pytest.raises(ValueError, match=message):
        ScarNetTrainerTiny.build_network_architecture(None, manager, 1, 4, False)
    with pytest.raises(ValueError, match=message):
        ScarNet(1, 4, 3, [8, 16, 32], [[1, 1, 1], [2, 2, 2], [2, 2, 2]], encoder="tiny_vit_test",
                encoder_image_size=64)


def optimizer_setup(trainer_class, network, num_epochs=100):
    """trainer_class.configure_optimizers on a network, with the trainer's own attributes (no dataset needed)."""
    from types import SimpleNamespace

    attributes = {k: getattr(trainer_class, k) for k in (
        "freeze_encoder", "frozen_encoder_stages", "checkpoint_encoder", "conv_encoder_optimizer", "encoder_lr_factor",
        "sgd_conv_lr", "sgd_conv_momentum", "sgd_conv_weight_decay", "warmup_epochs")}
    fake = SimpleNamespace(network=network, initial_lr=trainer_class.decoder_lr,
                           weight_decay=trainer_class.adamw_weight_decay, num_epochs=num_epochs, **attributes)
    fake.build_optimizer = lambda: trainer_class.build_optimizer(fake)
    return trainer_class.configure_optimizers(fake)


def tiny_hybrid():
    from nnunetv2_scarnet.network import ScarNet

    torch.manual_seed(0)
    return ScarNet(1, 4, 4, [16, 32, 64, 64], [[1, 1], [2, 2], [2, 2], [2, 2]], encoder="tiny_vit_test",
                   encoder_image_size=64, max_features=32, conv_encoder=True)


def test_sgd_conv_encoder_option_trains_the_conv_half_with_stock_sgd():
    """ScarNetTrainerLiteHybrid_sgdConv: the convolutional encoder under SGD (1e-2, Nesterov 0.99, weight decay
    3e-5, as stock nnU-Net), everything else under AdamW; one step equals torch's own SGD and AdamW run apart."""
    import copy

    net = tiny_hybrid()
    reference = copy.deepcopy(net)
    optimizer, scheduler = optimizer_setup(variants.ScarNetTrainerLiteHybrid_sgdConv, net)
    conv_ids = {id(p) for p in net.conv_path.parameters()}
    groups = optimizer.param_groups
    assert sorted(len(g["params"]) for g in groups) == sorted(
        [len(conv_ids), len(list(net.encoder.parameters())), sum(1 for _ in net.parameters()) - len(conv_ids)
         - len(list(net.encoder.parameters()))])
    sgd_group = next(g for g in groups if {id(p) for p in g["params"]} == conv_ids)
    assert sgd_group["nesterov"] and sgd_group["momentum"] == 0.99 and sgd_group["weight_decay"] == 3e-5
    warm = 1 / (min(10, 100 // 10) + 1)  # first epoch of the linear warm-up
    assert sgd_group["lr"] == pytest.approx(1e-2 * warm)
    # the default stays AdamW for everything
    default_opt, _ = optimizer_setup(variants.ScarNetTrainerLiteHybrid, copy.deepcopy(reference))
    assert isinstance(default_opt, torch.optim.AdamW)
    # one step: same as SGD on the conv encoder and AdamW on the rest, each run by torch on a copy
    ref_conv = list(reference.conv_path.parameters())
    ref_rest = [p for p in reference.parameters() if all(p is not q for q in ref_conv)]
    ref_sgd = torch.optim.SGD(ref_conv, lr=1e-2 * warm, momentum=0.99, nesterov=True, weight_decay=3e-5)
    ref_adamw = torch.optim.AdamW([{"params": [p for p in ref_rest if all(p is not q for q in
                                                                          reference.encoder.parameters())],
                                    "lr": 1e-3 * warm},
                                   {"params": list(reference.encoder.parameters()), "lr": 1e-4 * warm}],
                                  weight_decay=1e-2)
    x = torch.randn(2, 1, 32, 32)
    for model, opts in ((net, [optimizer]), (reference, [ref_sgd, ref_adamw])):
        model.train()
        torch.manual_seed(1)
        sum(o.float().mean() for o in model(x)).backward()
        for opt in opts:
            opt.step()
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # checkpoint round trip keeps the momentum buffers
    state = optimizer.state_dict()
    fresh, _ = optimizer_setup(variants.ScarNetTrainerLiteHybrid_sgdConv, net)
    fresh.load_state_dict(state)
    first = next(iter(net.conv_path.parameters()))
    assert torch.equal(fresh.parts["sgd"].state[first]["momentum_buffer"],
                       optimizer.parts["sgd"].state[first]["momentum_buffer"])
    with pytest.raises(ValueError, match="needs the hybrid"):
        optimizer_setup(variants.ScarNetTrainerLiteHybrid_sgdConv, ScarNetPlain())


def ScarNetPlain():
    from nnunetv2_scarnet.network import ScarNet

    return ScarNet(1, 4, 3, [16, 32, 64], [[1, 1], [2, 2], [2, 2]], encoder="tiny_vit_test", encoder_image_size=64)


def test_fine_tuned_encoder_keeps_its_batchnorm_statistics():
    """Unfrozen LiteMedSAM: its BatchNorm running statistics do not move in a training step (they were the
    pretrained ones), while its weights, BatchNorm affine parameters included, do learn."""
    from nnunetv2_scarnet.network import ScarNet

    torch.manual_seed(0)
    net = ScarNet(1, 4, 4, [16, 32, 64, 64], [[1, 1], [2, 2], [2, 2], [2, 2]], encoder="litemedsam",
                  encoder_image_size=256, max_features=32, conv_encoder=True)
    norms = {name: m for name, m in net.encoder.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert norms
    stats = {name: (m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked))
             for name, m in norms.items()}
    affine = {name: m.weight.detach().clone() for name, m in norms.items()}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    net.train()
    assert net.decoder.training and net.encoder.training and not any(m.training for m in norms.values())
    opt.zero_grad()
    sum(o.mean() for o in net(torch.randn(2, 1, 64, 64) * 3)).backward()
    opt.step()
    for name, m in norms.items():
        mean, var, tracked = stats[name]
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var), name
        assert int(m.num_batches_tracked) == tracked, name
    assert any(not torch.equal(affine[name], m.weight) for name, m in norms.items())
