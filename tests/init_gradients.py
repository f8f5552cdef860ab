"""Gradient flow at initialisation: ScarNet variants and stock nnU-Net on one batch, with the trainer's loss.

Shared by tests/test_initialisation.py and by the measurement quoted in docs/network.md
(`PYTHONPATH=src python3 tests/init_gradients.py`).
"""
from types import SimpleNamespace
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

#: nnU-Net's 2D plans for a 128 x 128 patch (what ExperimentPlanner writes: features doubling from 32, capped at
#: 512 in 2D, five poolings down to 4 x 4)
PATCH = (128, 128)
STOCK_PLANS = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 512, 512],
                    "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 6,
                    "strides": [[1, 1]] + [[2, 2]] * 5, "n_conv_per_stage": [2] * 6,
                    "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}
NUM_CLASSES = 4


def stock_network() -> nn.Module:
    """Stock PlainConvUNet, built and He-initialised by nnU-Net itself."""
    return get_network_from_plans(STOCK_PLANS["network_class_name"], STOCK_PLANS["arch_kwargs"],
                                  STOCK_PLANS["_kw_requires_import"], 1, NUM_CLASSES, allow_init=True,
                                  deep_supervision=True)


def phantom_batch(batch: int = 2, seed: int = 0):
    """A z-scored short-axis-like image (blood pool, myocardial ring with a bright scar sector) and its labels."""
    g = torch.Generator().manual_seed(seed)
    h, w = PATCH
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    images, labels = [], []
    for b in range(batch):
        cy, cx = h / 2 + 6 * b, w / 2 - 4 * b
        r = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        angle = torch.atan2(yy - cy, xx - cx)
        label = torch.zeros(h, w, dtype=torch.long)
        label[r < 18] = 1  # blood pool
        ring = (r >= 18) & (r < 28)
        label[ring] = 2  # myocardium
        label[ring & (angle > 0.3) & (angle < 1.4) & (r < 24)] = 3  # subendocardial scar
        intensity = torch.tensor([0.2, 1.0, 0.1, 1.4])[label] + 0.15 * torch.randn(h, w, generator=g)
        images.append((intensity - intensity.mean()) / intensity.std())
        labels.append(label)
    return torch.stack(images)[:, None], torch.stack(labels)[:, None].float()


#: the dev-set case and the number of slices of the real batch (the infarct case with the most scar slices would do
#: as well; one fixed case keeps the measurement reproducible)
REAL_CASE = "Case_P001"


def emidec_batch(cases_dir: str, case: str = REAL_CASE, batch: int = 2):
    """A real batch: the `batch` slices of an EMIDEC case with the most scar, z-scored over the whole stack as
    nnU-Net's ZScoreNormalization does for MRI, each cropped to PATCH around its LV (blood pool + myocardium)
    centroid; labels 0 background, 1 blood pool, 2 myocardium, 3 scar (EMIDEC's MVO, label 4, counted as scar as the
    converter does)."""
    import os

    import nibabel as nib

    image = np.asarray(nib.load(os.path.join(cases_dir, case, "image.nii.gz")).dataobj, dtype=np.float32)
    label = np.asarray(nib.load(os.path.join(cases_dir, case, "label.nii.gz")).dataobj).astype(np.int64)
    label[label == 4] = 3
    image = (image - image.mean()) / image.std()
    scar = (label == 3).sum(axis=(0, 1))
    slices = sorted(np.argsort(-scar, kind="stable")[:batch])
    if scar[slices].min() == 0:
        raise ValueError(f"{case} has fewer than {batch} slices with scar")
    h, w = PATCH
    images, labels = [], []
    for z in slices:
        img = np.pad(image[:, :, z], ((h, h), (w, w)), constant_values=float(image.min()))
        lab = np.pad(label[:, :, z], ((h, h), (w, w)))
        cy, cx = (int(round(c)) for c in np.argwhere(np.isin(lab, (1, 2, 3))).mean(axis=0))
        window = (slice(cy - h // 2, cy - h // 2 + h), slice(cx - w // 2, cx - w // 2 + w))
        images.append(img[window])
        labels.append(lab[window])
    return (torch.from_numpy(np.stack(images))[:, None].float(),
            torch.from_numpy(np.stack(labels))[:, None].float())


def trainer_loss(num_stages: int):
    """The loss exactly as ScarNetTrainer._build_loss builds it (Dice + CE + focal Tversky, deep supervision)."""
    from nnunetv2_scarnet.trainers.scarnet_trainer import ScarNetTrainer

    pools = STOCK_PLANS["arch_kwargs"]["strides"][:num_stages]
    scales = [list(s) for s in 1 / np.cumprod(np.vstack(pools), axis=0)][:-1]
    fake = SimpleNamespace(label_manager=SimpleNamespace(has_regions=False, ignore_label=None),
                           configuration_manager=SimpleNamespace(batch_dice=True), is_ddp=False,
                           focal_tversky_weight=ScarNetTrainer.focal_tversky_weight, enable_deep_supervision=True,
                           _get_deep_supervision_scales=lambda: scales)
    return ScarNetTrainer._build_loss(fake), scales


def deep_supervision_targets(target: torch.Tensor, scales) -> List[torch.Tensor]:
    return [target if s[0] == 1 else F.interpolate(target, scale_factor=tuple(s), mode="nearest") for s in scales]


def stage_groups(network: nn.Module) -> Dict[str, nn.Module]:
    """The network's stages: encoder stage s (`enc{s}`) and decoder stage i (`dec{i}`, deepest first)."""
    groups = {}
    if hasattr(network, "conv_path"):  # ScarNet
        path = network.conv_path
        stages = path.encoder.stages if hasattr(path, "encoder") else path.stages
        for s, stage in enumerate(stages):
            groups[f"enc{s}"] = stage
        for s, projection in enumerate(network.projections):
            if f"enc{s + 2}" not in groups:
                groups[f"enc{s + 2}"] = projection  # the encoder feature that feeds stage s + 2
        decoder_stages = network.decoder.stages
    else:
        for s, stage in enumerate(network.encoder.stages):
            groups[f"enc{s}"] = stage
        decoder_stages = network.decoder.stages
    for i, stage in enumerate(decoder_stages):
        groups[f"dec{i}"] = stage
    return groups


def gradient_profile(network: nn.Module, batch=None) -> Dict[str, float]:
    """RMS gradient of each stage's parameters and the std of the full-resolution logits after one backward on
    `batch` (image, target), the synthetic phantom when None."""
    network.train()
    image, target = phantom_batch() if batch is None else batch
    loss_fn, scales = trainer_loss(len(STOCK_PLANS["arch_kwargs"]["strides"]))
    network.zero_grad(set_to_none=True)
    outputs = network(image)
    loss = loss_fn(outputs, deep_supervision_targets(target, scales))
    loss.backward()
    profile = {"logit_std": float(outputs[0].detach().std())}
    for name, module in stage_groups(network).items():
        grads = [p.grad.flatten() for p in module.parameters() if p.grad is not None]
        profile[name] = float(torch.cat(grads).pow(2).mean().sqrt()) if grads else 0.0
    return profile


def scarnet_variant(name: str) -> nn.Module:
    """A ScarNet variant on the stock plans, as its trainer builds it (pretrained LiteMedSAM loaded after init)."""
    from nnunetv2_scarnet.network import build_scarnet, scarnet_architecture
    from nnunetv2_scarnet.network.encoders.lite_medsam import bundled_checkpoint_path
    from nnunetv2_scarnet.network.pretrained_weights import load_encoder_weights
    from nnunetv2_scarnet.trainers import variants

    trainer, overrides = VARIANTS[name]
    settings = dict(getattr(variants, trainer).network_settings(), encoder_input_window=[-2.5, 2.5], **overrides)
    entry = scarnet_architecture(STOCK_PLANS["arch_kwargs"], settings, STOCK_PLANS["network_class_name"])
    network = build_scarnet(entry["network_class_name"], entry["arch_kwargs"], 1, NUM_CLASSES)
    if getattr(variants, trainer).pretrained_weights == "litemedsam":
        load_encoder_weights(network.encoder, bundled_checkpoint_path())
    return network


TINY = dict(encoder="tiny_vit_test", encoder_image_size=64)
#: variant -> (trainer class, network settings changed for a CPU test: the tiny random ViT replaces ViT-B)
VARIANTS = {
    "Lite": ("ScarNetTrainerLite", {}),
    "LiteHybrid": ("ScarNetTrainerLiteHybrid", {}),
    "LiteHybrid_noAttention": ("ScarNetTrainerLiteHybrid_noAttention", {}),
    "LiteHybrid_cbam": ("ScarNetTrainerLiteHybrid_cbam", {}),
    "Lite_noAttention": ("ScarNetTrainerLite_noAttention", {}),
    "Lite_cbam": ("ScarNetTrainerLite_cbam", {}),
    "tinyViT": ("ScarNetTrainer", TINY),
    "tinyViT_Hybrid": ("ScarNetTrainerHybrid", TINY),
    "tinyViT_noAttention": ("ScarNetTrainer_noAttention", TINY),
    "tinyViT_cbam": ("ScarNetTrainer_cbam", TINY),
    "ViT-B_256": ("ScarNetTrainer", dict(encoder_image_size=256)),
    "ViT-B_256_Hybrid": ("ScarNetTrainerHybrid", dict(encoder_image_size=256)),
}


def worst_ratio(profile: Dict[str, float], reference: Dict[str, float]) -> float:
    """The largest factor, either way, between a stage's RMS gradient (or the logit std) and the reference's."""
    return max(max(profile[k] / reference[k], reference[k] / profile[k]) for k in reference)


if __name__ == "__main__":
    import os
    import sys

    # python tests/init_gradients.py [CASES_DIR | phantom]: the real batch of REAL_CASE (default: the dev set next to
    # the repository) or the synthetic phantom
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "SCARNET_EMIDEC_DEV", os.path.join(repo, "..", "shared", "data", "emidec_dev"))
    real = None if source == "phantom" else emidec_batch(
        source if os.path.basename(source.rstrip("/")) == "cases" else os.path.join(source, "cases"))
    torch.manual_seed(0)
    rows = {"stock": gradient_profile(stock_network(), real)}
    for variant in VARIANTS:
        torch.manual_seed(0)
        rows[variant] = gradient_profile(scarnet_variant(variant), real)
    keys = list(rows["stock"])
    print("| network | " + " | ".join(keys) + " | worst ratio to stock |")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row.get(k, float('nan')):.2g}" for k in keys)
              + f" | {worst_ratio(row, rows['stock']):.2f} |")
