"""The names and numbers of plans.json that nnU-Net's predictor uses, checked before it resolves or uses them.

nnU-Net looks up the preprocessor, the normalisation of each channel, the three resampling functions, the image
reader/writer and the label manager by name among the attributes of its own modules, then calls what it found
(a name like `save_json` or `rmtree` is found too). Here each name must be one of the classes or functions nnU-Net
ships for that purpose, and resampling arguments must be arguments of that function with values of the right
kind. The numbers (patch size, target spacing, transposition, intensity statistics) must be what nnU-Net's planner
writes: `patch_size: "abc"` passed loading and failed later with a numpy message; a spacing of 0 or NaN resampled
to an absurd grid.

With `trusted` (the user's `--trust-model`) a name outside the allow-lists is accepted (a trusted folder may use
any installed code, as nnU-Net allows) and its arguments are not checked; the arguments of allowed names and the
numbers always are.
"""
import math
from typing import Dict

from nnunetv2_scarnet.model_validation.architecture import check_architecture
from nnunetv2_scarnet.model_validation.problem import ModelProblem
from nnunetv2_scarnet.quantification.label_scheme import PLAUSIBLE_SPACING_MM

PREPROCESSORS = ("DefaultPreprocessor",)
NORMALIZATIONS = ("ZScoreNormalization", "CTNormalization", "NoNormalization", "RescaleTo01Normalization",
                  "RGBTo01Normalization")
READER_WRITERS = ("NibabelIO", "NibabelIOWithReorient", "SimpleITKIO", "Tiff3DIO", "NaturalImage2DIO")
LABEL_MANAGERS = ("LabelManager",)
#: CTNormalization clips to these percentiles and standardises with mean and std (the others ignore them)
CT_STATISTICS = ("mean", "std", "percentile_00_5", "percentile_99_5")
#: target and median spacing: within the plausible voxel sizes of cardiac MRI (mm; label_scheme.py)
SPACING_RANGE_MM = (min(r[0] for r in PLAUSIBLE_SPACING_MM.values()), max(r[1] for r in PLAUSIBLE_SPACING_MM.values()))
MAX_PATCH = 4096
INTERPOLATION_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


#: resampling functions nnU-Net's planners write (called as fn(data, new_shape, current_spacing, new_spacing,
#: **kwargs)) -> {argument: (kind, check)}
RESAMPLING_FUNCTIONS = {
    "resample_data_or_seg_to_shape": {
        "is_seg": ("true or false", lambda v: isinstance(v, bool)),
        "order": ("an integer 0..5", lambda v: _is_int(v, 0, 5)),
        "order_z": ("an integer 0..5", lambda v: _is_int(v, 0, 5)),
        "force_separate_z": ("true, false or null", lambda v: v is None or isinstance(v, bool)),
        "separate_z_anisotropy_threshold": ("a positive number", lambda v: _is_number(v) and v > 0)},
    "resample_torch_fornnunet": {
        "is_seg": ("true or false", lambda v: isinstance(v, bool)),
        "num_threads": ("an integer 1..256", lambda v: _is_int(v, 1, 256)),
        "memefficient_seg_resampling": ("true or false", lambda v: isinstance(v, bool)),
        "force_separate_z": ("true, false or null", lambda v: v is None or isinstance(v, bool)),
        "separate_z_anisotropy_threshold": ("a positive number", lambda v: _is_number(v) and v > 0),
        "mode": (f"one of {INTERPOLATION_MODES}", lambda v: v in INTERPOLATION_MODES),
        "aniso_axis_mode": (f"one of {INTERPOLATION_MODES}", lambda v: v in INTERPOLATION_MODES)},
    "no_resampling_hack": {},
}


def _named(value, allowed, key: str, what: str) -> None:
    if value not in allowed:
        raise ModelProblem(key, f"{value!r} is not {what} that nnU-Net ships ({', '.join(allowed)}); refused before "
                           f"anything was looked up or called", by_name=True)


def _spacing(value, count: int, key: str) -> None:
    low, high = SPACING_RANGE_MM
    if not (isinstance(value, list) and len(value) == count and all(_is_number(v) and low <= v <= high
                                                                    for v in value)):
        raise ModelProblem(key, f"expected {count} finite spacings in {low}..{high} mm, got {value!r}")


def _list_of(value, count: int, check, kind: str, key: str) -> None:
    if not (isinstance(value, list) and len(value) == count and all(check(v) for v in value)):
        raise ModelProblem(key, f"expected {count} {kind} (one per input channel of dataset.json), got {value!r}")


def check_resampling(configuration: Dict, prefix: str, trusted: bool) -> None:
    """The three resampling functions by name, and their arguments (those of a function the user trusts with
    `trusted` and that is not on the list are not known here)."""
    for role in ("data", "seg", "probabilities"):
        key = f"resampling_fn_{role}"
        name, kwargs = configuration.get(key), configuration.get(f"{key}_kwargs")
        if not isinstance(name, str):
            raise ModelProblem(f"{prefix}.{key}", f"expected the name of a resampling function, got {name!r}")
        if not isinstance(kwargs, dict):
            raise ModelProblem(f"{prefix}.{key}_kwargs", f"expected an object of arguments, got {kwargs!r}")
        if trusted and name not in RESAMPLING_FUNCTIONS:
            continue
        _named(name, tuple(RESAMPLING_FUNCTIONS), f"{prefix}.{key}", "a resampling function")
        kinds = RESAMPLING_FUNCTIONS[name]
        for argument, value in kwargs.items():
            if argument not in kinds:
                raise ModelProblem(f"{prefix}.{key}_kwargs.{argument}", f"not an argument of {name} that plans set "
                                   f"({', '.join(kinds) or 'none'})")
            if not kinds[argument][1](value):
                raise ModelProblem(f"{prefix}.{key}_kwargs.{argument}", f"expected {kinds[argument][0]}, got "
                                   f"{value!r}")


def check_intensity_properties(plans: Dict, schemes, n_channels: int) -> None:
    """The foreground intensity statistics DefaultPreprocessor hands to every channel's normalisation."""
    key = "foreground_intensity_properties_per_channel"
    if key not in plans and "foreground_intensity_properties_by_modality" in plans:
        key = "foreground_intensity_properties_by_modality"  # nnU-Net's older name, which it still reads
    properties = plans.get(key)
    if not isinstance(properties, dict):
        raise ModelProblem(key, f"expected an object of per-channel statistics, got {properties!r}")
    for channel in range(n_channels):
        entry = properties.get(str(channel))
        if not isinstance(entry, dict) or not all(_is_number(v) for v in entry.values()):
            raise ModelProblem(f"{key}.{channel}", f"expected finite numbers for channel {channel}, got {entry!r}")
        if schemes[channel] == "CTNormalization":
            missing = [k for k in CT_STATISTICS if k not in entry]
            if missing or entry["std"] < 0 or entry["percentile_00_5"] > entry["percentile_99_5"]:
                raise ModelProblem(f"{key}.{channel}", f"CTNormalization needs {', '.join(CT_STATISTICS)} with std "
                                   f">= 0 and percentile_00_5 <= percentile_99_5 (missing {missing})")


def defining_configuration(plans: Dict, name: str, key: str) -> str:
    """The configuration whose own entry holds `key` for configuration `name` (nnU-Net's `inherits_from`: a
    child's entries override its parent's), so that a message names the key where the file holds it."""
    configurations, seen = plans.get("configurations") or {}, set()
    while name not in seen:
        seen.add(name)
        own = configurations.get(name)
        if not isinstance(own, dict) or key in own or not isinstance(own.get("inherits_from"), str):
            return name
        name = own["inherits_from"]
    return name


def check_plans(plans: Dict, configuration_name: str, configuration: Dict, n_channels: int,
                trusted: bool = False) -> None:
    """Raise ModelProblem naming the key unless `configuration` (the resolved `configurations.<name>` of `plans`,
    inheritance applied) and the plans' global entries are what nnU-Net's predictor can use safely. A key that
    `configuration` inherits is named in the configuration that holds it."""
    prefix = f"configurations.{configuration_name}."
    try:
        _check_plans(plans, configuration_name, configuration, n_channels, trusted)
    except ModelProblem as problem:
        if not problem.key.startswith(prefix):
            raise
        rest = problem.key[len(prefix):]
        holder = defining_configuration(plans, configuration_name, rest.split(".")[0])
        if holder == configuration_name:
            raise
        raise ModelProblem(f"configurations.{holder}.{rest}", f"{problem.problem} (inherited by configurations."
                           f"{configuration_name}, which the checkpoint names)", problem.by_name) from None


def _check_plans(plans: Dict, configuration_name: str, configuration: Dict, n_channels: int, trusted: bool) -> None:
    prefix = f"configurations.{configuration_name}"
    patch = configuration.get("patch_size")
    if not (isinstance(patch, list) and len(patch) in (2, 3) and all(_is_int(v, 1, MAX_PATCH) for v in patch)):
        raise ModelProblem(f"{prefix}.patch_size", f"expected 2 or 3 integers 1..{MAX_PATCH}, got {patch!r}")
    _spacing(configuration.get("spacing"), len(patch), f"{prefix}.spacing")
    if "original_median_spacing_after_transp" in plans:
        _spacing(plans["original_median_spacing_after_transp"], 3, "original_median_spacing_after_transp")
    forward, backward = plans.get("transpose_forward"), plans.get("transpose_backward")
    for key, value in (("transpose_forward", forward), ("transpose_backward", backward)):
        if not (isinstance(value, list) and sorted(value) == [0, 1, 2] and all(_is_int(v, 0, 2) for v in value)):
            raise ModelProblem(key, f"expected a permutation of [0, 1, 2], got {value!r}")
    if [forward[b] for b in backward] != [0, 1, 2]:
        raise ModelProblem("transpose_backward", f"{backward} does not undo transpose_forward {forward}")
    if "batch_size" in configuration and not _is_int(configuration["batch_size"], 1, 1 << 16):
        raise ModelProblem(f"{prefix}.batch_size", f"expected a positive integer, got {configuration['batch_size']!r}")
    if configuration.get("previous_stage") is not None:
        raise ModelProblem(f"{prefix}.previous_stage", "a cascade stage needs the previous stage's predictions as "
                           "input; not supported here (predict it with nnUNetv2_predict)")
    schemes = configuration.get("normalization_schemes")
    _list_of(schemes, n_channels, lambda v: isinstance(v, str), "normalisation names",
             f"{prefix}.normalization_schemes")
    _list_of(configuration.get("use_mask_for_norm"), n_channels, lambda v: v is None or isinstance(v, bool),
             "booleans", f"{prefix}.use_mask_for_norm")
    check_intensity_properties(plans, schemes, n_channels)
    check_resampling(configuration, prefix, trusted)
    for key, value in (("image_reader_writer", plans.get("image_reader_writer")),
                       (f"{prefix}.preprocessor_name", configuration.get("preprocessor_name"))):
        if not isinstance(value, str):
            raise ModelProblem(key, f"expected a class name, got {value!r}")
    names = [(f"{prefix}.normalization_schemes.{i}", scheme, NORMALIZATIONS, "a normalisation")
             for i, scheme in enumerate(schemes)]
    names += [(f"{prefix}.preprocessor_name", configuration["preprocessor_name"], PREPROCESSORS, "a preprocessor"),
              ("image_reader_writer", plans["image_reader_writer"], READER_WRITERS, "an image reader/writer"),
              ("label_manager", plans.get("label_manager", LABEL_MANAGERS[0]), LABEL_MANAGERS, "a label manager")]
    for key, value, allowed, what in [] if trusted else names:
        _named(value, allowed, key, what)
    check_architecture(configuration.get("architecture"), patch, f"{prefix}.architecture", f"{prefix}.patch_size",
                       trusted)
