"""What decides the numbers of a cohort part: its run identity (issue 20). One cohort is one model.

Stored in the part's `.scarnet-cohort` and in every study's report.json (`model.run_identity`), and compared key
by key when a part is resumed and when parts are merged; any difference is refused, naming the key with both
values. The identity is computed from the files and the predictor's settings, not from names or paths:

- `checkpoints`: SHA-256 of every checkpoint file used (`fold_<f>/<checkpoint>`);
- `plans_sha256`, `dataset_json_sha256`: SHA-256 of the model folder's plans.json and dataset.json;
- `label_map`: the label values the run quantifies with (`--dataset-json` or the model's), per structure, and
  whether they were declared; `network_labels`: the labels of the dataset.json the predictor was initialised
  with (what its output channels mean);
- `folds`, `checkpoint`, `mirroring_axes`, `tile_step_size`, `gaussian`, `device_type`, `precision` (float32,
  or CUDA's autocast type with the TF32 switches), `everything_on_device`: the prediction options;
- `versions`: the package versions (`predict.package_versions`).

The checkpoints, plans.json and dataset.json are hashed after the predictor has loaded them; their inode, size
and modification time must still be those seen before the loading began (`model_file_states`), so a file
replaced while the model was loading is refused and the hashes are those of the weights used.
"""
import glob
import os
from typing import Dict, List, Tuple

import torch

from nnunetv2_scarnet.ingestion.safe_files import sha256_file
from nnunetv2_scarnet.report.predict import ReportPredictor, package_versions

#: how a key of the identity is named in messages
KEY_NAMES = {"checkpoints": "checkpoint SHA-256", "plans_sha256": "plans.json SHA-256",
             "dataset_json_sha256": "dataset.json SHA-256", "label_map": "label map",
             "network_labels": "network labels", "folds": "folds", "checkpoint": "checkpoint name",
             "mirroring_axes": "mirroring axes", "tile_step_size": "tile step size", "gaussian": "Gaussian tiles",
             "device_type": "device type", "precision": "precision", "everything_on_device": "everything on device",
             "versions": "version of"}


class RunIdentityError(ValueError):
    """A model file changed while it was being loaded; the message names it."""


def _state(path: str) -> Tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def model_file_states(model_folder: str, checkpoint: str) -> Dict[str, Tuple[int, int, int]]:
    """(inode, size, mtime) of every file of the model folder that a predictor may load; taken before it loads."""
    paths = glob.glob(os.path.join(os.path.abspath(model_folder), "fold_*", checkpoint))
    paths += [os.path.join(os.path.abspath(model_folder), n) for n in ("plans.json", "dataset.json")]
    return {p: _state(p) for p in paths if os.path.isfile(p)}


def _precision(device_type: str) -> str:
    if device_type != "cuda":
        return "float32"
    dtype = str(torch.get_autocast_dtype("cuda")).replace("torch.", "")
    return (f"autocast {dtype}, TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}, "
            f"TF32 cuDNN {'on' if torch.backends.cudnn.allow_tf32 else 'off'}")


def run_identity(predictor: ReportPredictor, before: Dict[str, Tuple[int, int, int]]) -> Dict:
    """The identity of a run with this predictor (module doc); `before`: `model_file_states` taken before the
    predictor was built."""
    folder, p = predictor.model_folder, predictor.predictor
    used = {f"fold_{f}/{predictor.checkpoint}": os.path.join(folder, f"fold_{f}", predictor.checkpoint)
            for f in predictor.folds}
    files = dict(used, **{n: os.path.join(folder, n) for n in ("plans.json", "dataset.json")})
    hashes = {}
    for name, path in files.items():
        hashes[name] = sha256_file(path)
        if before.get(path) != _state(path):
            raise RunIdentityError(f"{path}: changed while the model was being loaded; rerun when the model folder "
                                   f"is complete")
    scheme = predictor.scheme
    device_type = predictor.device.type
    return {"checkpoints": {name: hashes[name] for name in used}, "plans_sha256": hashes["plans.json"],
            "dataset_json_sha256": hashes["dataset.json"],
            "label_map": {"blood_pool": sorted(scheme.blood_pool), "myocardium": sorted(scheme.myocardium),
                          "scar": sorted(scheme.scar), "mvo": sorted(scheme.mvo), "declared": scheme.declared},
            "network_labels": dict(p.dataset_json.get("labels", {})), "folds": [str(f) for f in predictor.folds],
            "checkpoint": predictor.checkpoint, "mirroring_axes": [list(c) for c in predictor.mirror_combos[1:]],
            "tile_step_size": p.tile_step_size, "gaussian": bool(p.use_gaussian), "device_type": device_type,
            "precision": _precision(device_type), "everything_on_device": bool(p.perform_everything_on_device),
            "versions": package_versions()}


def _flat(identity, prefix: Tuple[str, ...] = ()) -> Dict[Tuple[str, ...], object]:
    if not isinstance(identity, dict):
        return {prefix: identity}
    out: Dict[Tuple[str, ...], object] = {}
    for key, value in identity.items():
        out.update(_flat(value, prefix + (str(key),)) if isinstance(value, dict) and value else
                   {prefix + (str(key),): value})
    return out


def differences(first, second) -> List[Tuple[str, object, object]]:
    """(key named for people, first value, second value) of every key whose values differ (a key missing on one
    side has the value None there); a stored identity that is not a dict differs as a whole."""
    if not isinstance(first, dict) or not isinstance(second, dict):
        return [] if first == second else [("run identity", first, second)]
    a, b = _flat(first), _flat(second)
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        if a.get(key) != b.get(key):
            out.append((" ".join([KEY_NAMES.get(key[0], key[0]), *key[1:]]), a.get(key), b.get(key)))
    return out


def describe(diffs: List[Tuple[str, object, object]], first: str, second: str) -> str:
    """`key: value (first) vs value (second); ...`."""
    return "; ".join(f"{key}: {a} ({first}) vs {b} ({second})" for key, a, b in diffs)


def flat_rows(identity: Dict) -> Dict[str, object]:
    """The identity as {name: value} for a table (the cohort summary)."""
    return {" ".join([KEY_NAMES.get(k[0], k[0]), *k[1:]]): v for k, v in _flat(identity).items()}
