"""Loss and learning-rate schedule of the trainer family; the variants' attributes."""
import pytest
import torch

from nnunetv2_scarnet.trainers import TRAINER_NAMES
from nnunetv2_scarnet.trainers import variants
from nnunetv2_scarnet.trainers.losses import DiceCEFocalTverskyLoss, FocalTverskyLoss
from nnunetv2_scarnet.trainers.lr_schedule import GroupPolyLRScheduler


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


def test_every_variant_is_listed_and_configured():
    expected = {"ScarNetTrainer", "ScarNetTrainerLite", "ScarNetTrainer_scratch", "ScarNetTrainer_frozenEncoder",
                "ScarNetTrainer_noAttention", "ScarNetTrainerTiny", "ScarNetTrainerTiny_smoke"}
    assert expected <= set(TRAINER_NAMES)
    assert variants.ScarNetTrainerLite.pretrained_weights == "litemedsam"
    assert variants.ScarNetTrainer_scratch.pretrained_weights is None
    assert variants.ScarNetTrainerLite_frozenEncoder.freeze_encoder
    assert variants.ScarNetTrainerLite.encoder_lr_factor < 1
