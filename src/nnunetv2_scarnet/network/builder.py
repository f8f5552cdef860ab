"""The one place that turns a plans architecture entry into a ScarNet.

A configuration's `architecture` entry (written by ScarNetPlanner, or by a ScarNet trainer into the plans it trains
on) names ScarNet and holds every constructor argument: the stage layout copied from nnU-Net's plans and the
network settings of the trainer variant. The `plans.json` saved next to a model therefore rebuilds exactly that
model, and nothing else (no trainer attribute) is consulted.
"""
from typing import Dict, Optional

from nnunetv2_scarnet.network.architectures.scarnet import ScarNet

SCARNET_CLASS_NAME = "nnunetv2_scarnet.network.architectures.scarnet.ScarNet"
#: stage layout and building blocks, copied from nnU-Net's 2D plans (plus exactly one of STAGE_COUNT_KEYS)
LAYOUT_KEYS = ("n_stages", "features_per_stage", "strides", "kernel_sizes", "conv_op", "conv_bias", "norm_op",
               "norm_op_kwargs", "dropout_op", "dropout_op_kwargs", "nonlin", "nonlin_kwargs")
#: convolutions per stage (PlainConvUNet plans) or residual blocks per stage (ResidualEncoderUNet plans)
STAGE_COUNT_KEYS = ("n_conv_per_stage", "n_blocks_per_stage")
#: stock arguments kept when the plans set them: PlainConvUNet's `nonlin_first` (conv -> nonlin -> norm), which the
#: hybrid's convolutional encoder honours as stock does
OPTIONAL_LAYOUT_KEYS = ("nonlin_first",)
#: stock network classes whose encoder the hybrid ScarNet can rebuild
STOCK_CLASS_NAMES = ("dynamic_network_architectures.architectures.unet.PlainConvUNet",
                     "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet")
#: stock ResidualEncoderUNet arguments that ScarNet does not take: plans that set them are refused
UNSUPPORTED_KEYS = ("block", "bottleneck_channels", "stem_channels")
#: network settings of a ScarNet variant
SETTING_KEYS = ("encoder", "encoder_image_size", "encoder_input_window", "encoder_input_norm", "attention",
                "multiscale_attention", "conv_encoder", "freeze_encoder", "max_features")


def scarnet_architecture(layout: Dict, settings: Dict, network_class_name: Optional[str] = None) -> Dict:
    """The plans' `architecture` entry for ScarNet: layout keys from `layout` (stock nnU-Net arch_kwargs, of
    PlainConvUNet or ResidualEncoderUNet plans, or an existing ScarNet entry), every setting from `settings`.
    Residual-encoder plans (nnUNetResEncUNet*Plans) keep `n_blocks_per_stage`: the hybrid's convolutional encoder is
    then nnU-Net's ResidualEncoder. PlainConvUNet's `nonlin_first` is kept when the plans set it (refused with
    residual blocks, which stock cannot build with it). A window of None stays None (a planner's entry: the trainer
    measures it).
    `network_class_name`, the plans' network, must be one of STOCK_CLASS_NAMES or ScarNet (when given)."""
    if network_class_name is not None and network_class_name not in STOCK_CLASS_NAMES + (SCARNET_CLASS_NAME,):
        raise ValueError(f"the plans' 2d network is {network_class_name}; ScarNet builds on nnU-Net plans of "
                         f"{' or '.join(n.rsplit('.', 1)[1] for n in STOCK_CLASS_NAMES)} only")
    layout = dict(layout)
    missing = [k for k in LAYOUT_KEYS if k not in layout]
    counts = [k for k in STAGE_COUNT_KEYS if k in layout]
    if missing or len(counts) != 1:
        raise ValueError(f"the plans' architecture entry lacks {missing + ([] if counts else ['n_conv_per_stage'])}"
                         f"{' and has both n_conv_per_stage and n_blocks_per_stage' if len(counts) > 1 else ''}; "
                         f"ScarNet needs nnU-Net 2D plans of PlainConvUNet or ResidualEncoderUNet")
    unsupported = [k for k in UNSUPPORTED_KEYS if layout.get(k) not in (None, "")]
    if unsupported:
        raise ValueError(f"the plans' architecture sets {unsupported}; ScarNet's convolutional encoder rebuilds "
                         f"nnU-Net's PlainConvEncoder or its default ResidualEncoder (BasicBlockD) only")
    if layout.get("nonlin_first") and "n_blocks_per_stage" in counts:
        raise ValueError("the plans' architecture sets nonlin_first=True with n_blocks_per_stage: stock "
                         "ResidualEncoderUNet has no nonlin_first argument (nnU-Net itself cannot build these plans)")
    unknown = sorted(set(settings) - set(SETTING_KEYS))
    absent = [k for k in SETTING_KEYS if k not in settings]
    if unknown or absent:
        raise ValueError(f"ScarNet settings: unknown {unknown}, missing {absent}")
    kwargs = {k: layout[k] for k in LAYOUT_KEYS + tuple(counts)}
    kwargs.update({k: bool(layout[k]) for k in OPTIONAL_LAYOUT_KEYS if k in layout})
    kwargs.update({k: settings[k] for k in SETTING_KEYS})
    if kwargs["encoder_input_window"] is not None:
        kwargs["encoder_input_window"] = [float(v) for v in kwargs["encoder_input_window"]]
    return {"network_class_name": SCARNET_CLASS_NAME, "arch_kwargs": kwargs,
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}


def build_scarnet(network_class_name: str, arch_kwargs: Dict, input_channels: int, num_classes: int,
                  deep_supervision: bool = True) -> ScarNet:
    """ScarNet from a plans architecture entry; every key must be present and known."""
    if network_class_name != SCARNET_CLASS_NAME:
        raise ValueError(f"the plans' 2d architecture is {network_class_name!r}, not ScarNet; a ScarNet trainer "
                         f"writes its own architecture entry when it starts training")
    counts = [k for k in STAGE_COUNT_KEYS if k in arch_kwargs][:1] or ["n_conv_per_stage"]
    expected = set(LAYOUT_KEYS) | set(SETTING_KEYS) | set(counts)
    unknown = sorted(set(arch_kwargs) - expected - set(OPTIONAL_LAYOUT_KEYS))
    missing = sorted(expected - set(arch_kwargs))
    if unknown or missing:
        raise ValueError(f"the plans' ScarNet architecture entry has unknown keys {unknown} and lacks {missing} "
                         f"(plans written by another nnunetv2-scarnet version?)")
    if arch_kwargs["encoder_input_window"] is None:
        raise ValueError("the plans' ScarNet architecture entry has no encoder_input_window; a ScarNet trainer "
                         "measures it on the preprocessed data when training starts")
    # class names (conv_op, norm_op, dropout_op, nonlin) are resolved inside, as nnU-Net resolves them
    return ScarNet(input_channels, num_classes, deep_supervision=deep_supervision, **arch_kwargs)
