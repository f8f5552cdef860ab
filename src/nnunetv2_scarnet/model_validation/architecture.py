"""The network classes a plans.json may name and the arguments each takes, checked before anything is imported.

nnU-Net builds the network as `pydoc.locate(network_class_name)(**arch_kwargs)`, with every argument listed in
`_kw_requires_import` resolved by `pydoc.locate` too: a plans.json naming `logging.basicConfig` or `numpy.savez`
runs that function. Here the class must be one of NETWORK_CLASSES, by dotted name (those nnU-Net's planners write,
and ScarNet, which this package's trainers write); each argument must be a parameter of that class's constructor
with a value of the kind that argument takes (ARGUMENT_KINDS): integers in a range, one per stage or per axis,
booleans, the dotted name of an allow-listed torch.nn class (OP_CLASSES), or a dict of plain values that are
parameters of that class. Only then is the class's module imported.
"""
import importlib
import inspect
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from dynamic_network_architectures.building_blocks.residual import BasicBlockD, BottleneckD
from torch import nn

from nnunetv2_scarnet.model_validation.problem import ModelProblem

SCARNET = "nnunetv2_scarnet.network.architectures.scarnet.ScarNet"
#: dotted name in plans.json -> (module, class); the module is imported only once the name is accepted
NETWORK_CLASSES = {
    "dynamic_network_architectures.architectures.unet.PlainConvUNet":
        ("dynamic_network_architectures.architectures.unet", "PlainConvUNet"),
    "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet":
        ("dynamic_network_architectures.architectures.unet", "ResidualEncoderUNet"),
    SCARNET: ("nnunetv2_scarnet.network.architectures.scarnet", "ScarNet"),
}
#: the arguments that name a class, and the classes each may name
OP_CLASSES = {
    "conv_op": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "norm_op": (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.BatchNorm1d, nn.BatchNorm2d,
                nn.BatchNorm3d),
    "dropout_op": (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d),
    "nonlin": (nn.LeakyReLU, nn.ReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU),
    "block": (BasicBlockD, BottleneckD),
}
#: arguments of an op's constructor that plans never set (sizes come from the network, devices from the run)
OP_ARGUMENTS_NOT_FROM_PLANS = ("self", "num_features", "in_channels", "out_channels", "device", "dtype")
#: set by nnU-Net from dataset.json when it builds the network, never by the plans
SET_BY_NNUNET = ("input_channels", "num_classes")
MAX_STAGES, MAX_FEATURES, MAX_KERNEL, MAX_STRIDE, MAX_REPEATS = 12, 4096, 15, 16, 64


def op_names(classes: Sequence[type]) -> Dict[str, type]:
    """Both dotted names a plans.json may use for each class (`torch.nn.Conv2d`, `torch.nn.modules.conv.Conv2d`)."""
    names = {}
    for cls in classes:
        names[f"{cls.__module__}.{cls.__qualname__}"] = cls
        if cls.__module__.startswith("torch.nn."):
            names[f"torch.nn.{cls.__qualname__}"] = cls
    return names


@dataclass
class _Context:
    n_stages: int
    dim: int
    ops: Dict[str, Optional[type]]


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_plain(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int, str))


def _boolean() -> Tuple[str, Callable]:
    return "true or false", lambda v, c: isinstance(v, bool)


def _integer(low: int, high: int, optional: bool = False) -> Tuple[str, Callable]:
    return (f"an integer {low}..{high}{' or null' if optional else ''}",
            lambda v, c: (optional and v is None) or _is_int(v, low, high))


def _per_stage(low: int, high: int, fewer: int = 0, optional: bool = False) -> Tuple[str, Callable]:
    """An integer, or one per stage (`fewer` stages less: the decoder has n_stages - 1)."""
    def check(v, c):
        return (optional and v is None) or _is_int(v, low, high) or (
            isinstance(v, list) and len(v) == c.n_stages - fewer and all(_is_int(x, low, high) for x in v))
    return f"an integer {low}..{high} or one per stage{' (n_stages - 1)' if fewer else ''}", check


def _per_stage_and_axis(low: int, high: int) -> Tuple[str, Callable]:
    """An integer, or one entry per stage, each an integer or one per spatial axis of the patch."""
    def entry(s, c):
        return _is_int(s, low, high) or (isinstance(s, list) and len(s) == c.dim
                                         and all(_is_int(x, low, high) for x in s))
    return (f"integers {low}..{high}, one per stage (each one, or one per axis of the patch)",
            lambda v, c: _is_int(v, low, high) or (isinstance(v, list) and len(v) == c.n_stages
                                                    and all(entry(s, c) for s in v)))


def _op(key: str, required: bool = False) -> Tuple[str, Callable]:
    names = op_names(OP_CLASSES[key])
    shown = sorted(n for n in names if n.startswith("torch.nn.") and n.count(".") == 2) or sorted(names)
    return (f"{'' if required else 'null or '}one of {', '.join(shown)} (the dotted name, full torch.nn module "
            f"path allowed)", lambda v, c: (not required and v is None) or v in names)


def _op_kwargs(op_key: str) -> Tuple[str, Callable]:
    def check(v, c):
        if v is None:
            return True
        if not isinstance(v, dict) or not all(isinstance(k, str) and _is_plain(x) for k, x in v.items()):
            return False
        op = c.ops.get(op_key)
        if op is None:
            return True  # nnU-Net ignores the arguments of an op it does not use
        taken = set(inspect.signature(op.__init__).parameters) - set(OP_ARGUMENTS_NOT_FROM_PLANS)
        return set(v) <= taken
    return (f"null or a dict of plain values (numbers, booleans, strings) that are arguments of the {op_key} class "
            f"(not its sizes, device or dtype)", check)


def _one_of(names: Callable[[], Sequence[str]], what: str) -> Tuple[str, Callable]:
    return f"one of the {what}", lambda v, c: isinstance(v, str) and v in names()


def _encoder_names():
    from nnunetv2_scarnet.network.encoders import ENCODER_NAMES
    return ENCODER_NAMES


def _attention_kinds():
    from nnunetv2_scarnet.network.architectures.decoder import ATTENTION_KINDS
    return ATTENTION_KINDS


def _input_norms():
    from nnunetv2_scarnet.network.architectures.encoder_adapter import INPUT_NORMS
    return INPUT_NORMS


def _window() -> Tuple[str, Callable]:
    def check(v, c):
        return v is None or (isinstance(v, list) and len(v) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v) and v[0] < v[1])
    return "null or two finite numbers, low < high", check


#: the kind of value each constructor argument takes, in the order they are checked (stages and ops first)
ARGUMENT_KINDS = {
    "n_stages": _integer(1, MAX_STAGES),
    "conv_op": _op("conv_op", required=True), "norm_op": _op("norm_op"), "dropout_op": _op("dropout_op"),
    "nonlin": _op("nonlin"), "block": _op("block"),
    "norm_op_kwargs": _op_kwargs("norm_op"), "dropout_op_kwargs": _op_kwargs("dropout_op"),
    "nonlin_kwargs": _op_kwargs("nonlin"),
    "features_per_stage": _per_stage(1, MAX_FEATURES), "kernel_sizes": _per_stage_and_axis(1, MAX_KERNEL),
    "strides": _per_stage_and_axis(1, MAX_STRIDE), "n_conv_per_stage": _per_stage(1, MAX_REPEATS),
    "n_blocks_per_stage": _per_stage(1, MAX_REPEATS), "n_conv_per_stage_decoder": _per_stage(1, MAX_REPEATS, 1),
    "bottleneck_channels": _per_stage(1, MAX_FEATURES, optional=True),
    "stem_channels": _integer(1, MAX_FEATURES, optional=True),
    "conv_bias": _boolean(), "nonlin_first": _boolean(), "deep_supervision": _boolean(),
    # ScarNet's settings (network/builder.py SETTING_KEYS)
    "encoder": _one_of(_encoder_names, "ScarNet encoders"), "encoder_image_size": _integer(16, MAX_FEATURES),
    "encoder_input_window": _window(), "encoder_input_norm": _one_of(_input_norms, "encoder input norms"),
    "attention": _one_of(_attention_kinds, "decoder attention kinds"), "multiscale_attention": _boolean(),
    "conv_encoder": _boolean(), "freeze_encoder": _boolean(), "max_features": _integer(1, MAX_FEATURES),
}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def network_class(architecture, key: str, trusted: bool = False) -> Optional[type]:
    """The class an `architecture` entry names, imported only when it is one of NETWORK_CLASSES (another name:
    refused, or None when the user trusts the folder)."""
    if not isinstance(architecture, dict):
        raise ModelProblem(key, "expected an object with network_class_name, arch_kwargs and _kw_requires_import")
    name = architecture.get("network_class_name")
    if name not in NETWORK_CLASSES:
        if trusted and isinstance(name, str):
            return None
        raise ModelProblem(f"{key}.network_class_name", f"{_shown(name)} is not a network class that nnU-Net or "
                           f"nnunetv2-scarnet ships ({', '.join(NETWORK_CLASSES)}); refused before anything was "
                           f"imported or called", by_name=True)
    module, attribute = NETWORK_CLASSES[name]
    return getattr(importlib.import_module(module), attribute)


def check_architecture(architecture, patch_size: List[int], key: str, patch_key: str, trusted: bool = False) -> None:
    """Raise ModelProblem (naming the key) unless `architecture` names an allowed class, with arguments that class
    takes, of the kinds they take, and strides that divide `patch_size` (already checked: 2 or 3 integers).

    `trusted` (the user's --trust-model) lifts the name allow-lists only: a class or building block outside them
    is accepted unchecked (with its arguments); the arguments of allowed ones are still checked."""
    cls = network_class(architecture, key, trusted)
    if cls is None:
        return
    kwargs = architecture.get("arch_kwargs")
    if not isinstance(kwargs, dict):
        raise ModelProblem(f"{key}.arch_kwargs", f"expected an object of constructor arguments, got {_shown(kwargs)}")
    imported = architecture.get("_kw_requires_import", [])
    if not isinstance(imported, list) or not all(isinstance(k, str) and k in kwargs for k in imported):
        raise ModelProblem(f"{key}._kw_requires_import", f"expected a list of argument names, got {_shown(imported)}")
    if not trusted and any(k not in OP_CLASSES for k in imported):
        raise ModelProblem(f"{key}._kw_requires_import", f"{_shown(imported)}: only the arguments that name a class "
                           f"may be imported ({', '.join(OP_CLASSES)})", by_name=True)
    parameters = {n: p for n, p in inspect.signature(cls.__init__).parameters.items()
                  if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    for name in kwargs:
        if name in SET_BY_NNUNET:
            raise ModelProblem(f"{key}.arch_kwargs.{name}", "is set by nnU-Net from dataset.json, not by the plans")
        if name not in parameters:
            raise ModelProblem(f"{key}.arch_kwargs.{name}", f"not an argument of {cls.__name__}")
        if name not in ARGUMENT_KINDS:
            raise ModelProblem(f"{key}.arch_kwargs.{name}", f"an argument of {cls.__name__} that nnunetv2-scarnet "
                               f"has no check for; refused")
    missing = [n for n, p in parameters.items() if p.default is p.empty and n not in kwargs and n not in SET_BY_NNUNET]
    if missing:
        raise ModelProblem(f"{key}.arch_kwargs", f"lacks {missing}, required by {cls.__name__}")
    context = _Context(n_stages=kwargs.get("n_stages", 0), dim=len(patch_size), ops={})
    for name in [n for n in ARGUMENT_KINDS if n in kwargs]:
        description, check = ARGUMENT_KINDS[name]
        value = kwargs[name]
        if name in OP_CLASSES and trusted and isinstance(value, str) and value not in op_names(OP_CLASSES[name]):
            continue  # a building block the user trusts: neither it nor its arguments are known here
        if not check(value, context):
            raise ModelProblem(f"{key}.arch_kwargs.{name}", f"expected {description}, got {_shown(value)}",
                               by_name=name in OP_CLASSES and isinstance(value, str))
        if name == "n_stages":
            context.n_stages = value
        if name in OP_CLASSES:
            context.ops[name] = op_names(OP_CLASSES[name]).get(value)
    _check_dimensions(context, patch_size, kwargs, key, patch_key)


def _check_dimensions(context: _Context, patch_size: List[int], kwargs: Dict, key: str, patch_key: str) -> None:
    """Convolution and normalisation of the patch's dimension; the network's total stride divides the patch."""
    for name in ("conv_op", "norm_op", "dropout_op"):
        op = context.ops.get(name)
        if op is not None and op is not nn.Dropout and not op.__name__.endswith(f"{context.dim}d"):
            raise ModelProblem(f"{key}.arch_kwargs.{name}", f"{op.__name__} does not fit a {context.dim}D patch "
                               f"({patch_key} {patch_size})")
    strides = kwargs["strides"]
    per_stage = [strides] * context.n_stages if isinstance(strides, int) else strides
    per_axis = [[s] * context.dim if isinstance(s, int) else s for s in per_stage]
    total = [math.prod(stage[a] for stage in per_axis) for a in range(context.dim)]
    if any(p % t for p, t in zip(patch_size, total)):
        raise ModelProblem(patch_key, f"{patch_size} is not divisible by the network's total stride {total} "
                           f"({key}.arch_kwargs.strides); nnU-Net's planner never writes such a patch")
