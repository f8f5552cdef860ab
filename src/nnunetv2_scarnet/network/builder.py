"""The one place that turns a plans architecture entry into a ScarNet.

A configuration's `architecture` entry (written by ScarNetPlanner, or by a ScarNet trainer into the plans it trains
on) names ScarNet and holds every constructor argument: the stage layout copied from nnU-Net's plans and the
network settings of the trainer variant. The `plans.json` saved next to a model therefore rebuilds exactly that
model, and nothing else (no trainer attribute) is consulted.
"""
from typing import Dict

from nnunetv2_scarnet.network.architectures.scarnet import ScarNet

SCARNET_CLASS_NAME = "nnunetv2_scarnet.network.architectures.scarnet.ScarNet"
#: stage layout, copied from nnU-Net's 2D plans
LAYOUT_KEYS = ("n_stages", "features_per_stage", "strides", "kernel_sizes", "n_conv_per_stage")
#: network settings of a ScarNet variant
SETTING_KEYS = ("encoder", "encoder_image_size", "encoder_input_window", "encoder_input_norm", "attention",
                "multiscale_attention", "conv_encoder", "freeze_encoder", "max_features")


def scarnet_architecture(layout: Dict, settings: Dict) -> Dict:
    """The plans' `architecture` entry for ScarNet: layout keys from `layout` (e.g. stock nnU-Net arch_kwargs),
    every setting from `settings`. Residual-encoder plans (nnUNetResEncUNet*Plans) count blocks, not convolutions,
    per stage: their `n_blocks_per_stage` shapes the hybrid's convolutional encoder. A window of None stays None
    (a planner's entry: the trainer measures the window on the preprocessed data)."""
    layout = dict(layout)
    if "n_conv_per_stage" not in layout and "n_blocks_per_stage" in layout:
        layout["n_conv_per_stage"] = layout["n_blocks_per_stage"]
    missing = [k for k in LAYOUT_KEYS if k not in layout]
    if missing:
        raise ValueError(f"the plans' architecture entry lacks {missing}; ScarNet needs nnU-Net-style 2D plans")
    unknown = sorted(set(settings) - set(SETTING_KEYS))
    absent = [k for k in SETTING_KEYS if k not in settings]
    if unknown or absent:
        raise ValueError(f"ScarNet settings: unknown {unknown}, missing {absent}")
    kwargs = {k: layout[k] for k in LAYOUT_KEYS}
    kwargs.update({k: settings[k] for k in SETTING_KEYS})
    if kwargs["encoder_input_window"] is not None:
        kwargs["encoder_input_window"] = [float(v) for v in kwargs["encoder_input_window"]]
    return {"network_class_name": SCARNET_CLASS_NAME, "arch_kwargs": kwargs, "_kw_requires_import": []}


def build_scarnet(network_class_name: str, arch_kwargs: Dict, input_channels: int, num_classes: int,
                  deep_supervision: bool = True) -> ScarNet:
    """ScarNet from a plans architecture entry; every key must be present and known."""
    if network_class_name != SCARNET_CLASS_NAME:
        raise ValueError(f"the plans' 2d architecture is {network_class_name!r}, not ScarNet; a ScarNet trainer "
                         f"writes its own architecture entry when it starts training")
    expected = set(LAYOUT_KEYS) | set(SETTING_KEYS)
    unknown, missing = sorted(set(arch_kwargs) - expected), sorted(expected - set(arch_kwargs))
    if unknown or missing:
        raise ValueError(f"the plans' ScarNet architecture entry has unknown keys {unknown} and lacks {missing} "
                         f"(plans written by another nnunetv2-scarnet version?)")
    if arch_kwargs["encoder_input_window"] is None:
        raise ValueError("the plans' ScarNet architecture entry has no encoder_input_window; a ScarNet trainer "
                         "measures it on the preprocessed data when training starts")
    return ScarNet(input_channels, num_classes, deep_supervision=deep_supervision, **arch_kwargs)
