"""A model's dataset.json: its shape, and whether the folder's copy says what the model was trained with.

nnU-Net stores the dataset.json a model was trained with inside every checkpoint (`init_args.dataset_json`,
`nnUNetTrainer.__init__` records its arguments). The folder's dataset.json is a separate file anyone can edit:
swapping the values of `myocardium` and `scar` there turned 0.85 % scar into 99.1 % at exit code 0 (issue 20).
The checkpoint's copy is the model's label map; the folder's must agree with it in every entry that changes the
label map, the input channels or the files read (LABEL_MAP_KEYS).
"""
from typing import Dict, List

from nnunetv2_scarnet.model_validation.problem import ModelProblem

#: entries of dataset.json that change what the predictor does (label values, channels, file type)
LABEL_MAP_KEYS = ("labels", "regions_class_order", "channel_names", "modality", "file_ending",
                  "overwrite_image_reader_writer")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_label_value(value) -> bool:
    """A label value, or (nnU-Net region-based labels) a non-empty list of them."""
    return _is_int(value) or (isinstance(value, list) and bool(value) and all(_is_int(v) for v in value))


def check_dataset_json(content: Dict) -> int:
    """Raise ModelProblem naming the key unless `content` has nnU-Net's labels, channels and file ending; the
    number of input channels."""
    labels = content.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ModelProblem("labels", f"expected a mapping of label names to values, got {labels!r}")
    for name, value in labels.items():
        if not _is_label_value(value):
            raise ModelProblem(f"labels.{name}", f"expected a non-negative integer (or a list of them for a region), "
                               f"got {value!r}")
    if "background" in labels and labels["background"] != 0:
        raise ModelProblem("labels.background", f"nnU-Net's background is 0, got {labels['background']!r}")
    order = content.get("regions_class_order")
    if order is not None and not (isinstance(order, list) and all(_is_int(v) for v in order)):
        raise ModelProblem("regions_class_order", f"expected a list of non-negative integers, got {order!r}")
    key = "modality" if "modality" in content and "channel_names" not in content else "channel_names"
    channels = content.get(key)
    if not isinstance(channels, dict) or sorted(channels) != [str(i) for i in range(len(channels))] or not channels \
            or not all(isinstance(v, str) for v in channels.values()):
        raise ModelProblem(key, f"expected channel names keyed \"0\", \"1\", ..., got {channels!r}")
    ending = content.get("file_ending")
    if not (isinstance(ending, str) and ending.startswith(".") and len(ending) > 1):
        raise ModelProblem("file_ending", f"expected a file ending such as \".nii.gz\", got {ending!r}")
    return len(channels)


def label_map_differences(here: Dict, trained: Dict, here_name: str = "here",
                          trained_name: str = "in the checkpoint") -> List[str]:
    """What the dataset.json `here` (the folder's) says differently from the `trained` one, in LABEL_MAP_KEYS; the
    names say where each was read."""
    out = []
    for key in LABEL_MAP_KEYS:
        a, b = here.get(key), trained.get(key)
        if a == b:
            continue
        if key == "labels" and isinstance(a, dict) and isinstance(b, dict):
            out.append("labels: " + "; ".join(
                f"{name} is {a.get(name, 'absent')} {here_name} but {b.get(name, 'absent')} {trained_name}"
                for name in list(b) + [n for n in a if n not in b] if a.get(name) != b.get(name)))
        else:
            out.append(f"{key}: {a!r} {here_name} but {b!r} {trained_name}")
    return out
