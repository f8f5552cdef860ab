"""Compound segmentation loss: nnU-Net's Dice + cross-entropy plus a focal Tversky term."""
from typing import Optional

import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from torch import nn


class FocalTverskyLoss(nn.Module):
    """Focal Tversky loss over the foreground classes of a softmax output (Abraham & Khan, ISBI 2019).

    TI_c = TP / (TP + alpha * FN + beta * FP), loss = mean over present classes c of (1 - TI_c) ** gamma.
    Orientation: as in Abraham & Khan, alpha weights the false negatives, so alpha = 0.7 > beta = 0.3 penalises
    missed foreground (thin scar) more than false positives. ScarNet's public code (`utils/losses.py`) names the
    same pair the other way round (0.7 on false positives); this implementation follows the paper that defined
    the loss and the recall-first rationale the ScarNet paper gives for it.

    Sums run over the batch and the image (batch Tversky). A class absent from the whole batch's target is left
    out of the mean, so it neither rewards nor punishes (its TI would be ~0 however good the prediction, a constant
    push against that class in every batch without it); with no foreground in the batch the loss is 0. False
    positives of absent classes are still penalised by the cross-entropy and Dice terms of the compound loss.
    Voxels equal to `ignore_label` do not count.
    """

    def __init__(self, alpha: float = 0.7, beta: float = 0.3, gamma: float = 0.75, smooth: float = 1e-5,
                 ignore_label: Optional[int] = None) -> None:
        super().__init__()
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth
        self.ignore_label = ignore_label

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=1)
        labels = target[:, 0].long()
        valid = torch.ones_like(labels, dtype=probs.dtype)
        if self.ignore_label is not None:
            valid = (labels != self.ignore_label).to(probs.dtype)
            labels = torch.where(labels == self.ignore_label, torch.zeros_like(labels), labels)
        onehot = torch.zeros_like(probs).scatter_(1, labels[:, None], 1.0)
        valid = valid[:, None]
        probs, onehot = probs[:, 1:] * valid, onehot[:, 1:] * valid
        axes = (0,) + tuple(range(2, probs.ndim))
        tp = (probs * onehot).sum(axes)
        fn = ((1 - probs) * onehot).sum(axes)
        fp = (probs * (1 - onehot) * valid).sum(axes)
        tversky = (tp + self.smooth) / (tp + self.alpha * fn + self.beta * fp + self.smooth)
        present = (onehot.sum(axes) > 0).to(tversky.dtype)
        per_class = torch.pow(torch.clamp(1 - tversky, min=0), self.gamma)
        # no host sync: the count of present classes stays on the device
        return (per_class * present).sum() / torch.clamp(present.sum(), min=1.0)


class DiceCEFocalTverskyLoss(nn.Module):
    """nnU-Net's DC_and_CE_loss (soft Dice + CE, same settings as stock) + weight * focal Tversky."""

    def __init__(self, batch_dice: bool, ddp: bool, ignore_label: Optional[int], weight_focal_tversky: float = 1.0,
                 alpha: float = 0.7, beta: float = 0.3, gamma: float = 0.75) -> None:
        super().__init__()
        self.dice_ce = DC_and_CE_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": ddp}, {},
                                      weight_ce=1, weight_dice=1, ignore_label=ignore_label,
                                      dice_class=MemoryEfficientSoftDiceLoss)
        self.focal_tversky = FocalTverskyLoss(alpha, beta, gamma, ignore_label=ignore_label)
        self.weight_focal_tversky = weight_focal_tversky

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # losses in fp32 whatever the autocast dtype
        return self.dice_ce(logits, target) + self.weight_focal_tversky * self.focal_tversky(logits, target)
