"""Argument helpers shared by the subcommands."""
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme


def label_scheme(args) -> LabelScheme:
    """The label values of `--dataset-json`, or the EMIDEC-style defaults."""
    return LabelScheme.from_dataset_json(args.dataset_json) if args.dataset_json else LabelScheme()


def named_paths(items) -> dict:
    """`NAME=PATH` arguments -> {name: path}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"expected NAME=PATH, got {item!r}")
        name, path = item.split("=", 1)
        out[name] = path
    return out
