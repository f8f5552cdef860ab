"""The entries of an nnU-Net checkpoint besides the weights that the predictor uses; their agreement across folds."""
import os
from typing import Dict, List, Tuple

from nnunetv2_scarnet.model_validation.dataset_json import label_map_differences
from nnunetv2_scarnet.model_validation.problem import ModelProblem


def check_checkpoint_entries(checkpoint: Dict) -> None:
    """Raise ModelProblem naming the key unless the trainer name, the configuration and the trained dataset.json
    are there (`nnUNetTrainer.save_checkpoint` writes them)."""
    name = checkpoint.get("trainer_name")
    if not (isinstance(name, str) and name.isidentifier()):
        raise ModelProblem("trainer_name", f"expected the name of a trainer class, got {name!r}")
    if not isinstance(checkpoint["init_args"].get("dataset_json"), dict):
        raise ModelProblem("init_args.dataset_json", "missing: the checkpoint does not hold the dataset.json it was "
                           "trained with, so the folder's labels cannot be verified")


def check_mirroring_axes(axes, dim: int) -> None:
    """`inference_allowed_mirroring_axes`: null, or distinct spatial axes of the patch (0 .. dim - 1)."""
    if axes is None:
        return
    if not (isinstance(axes, (list, tuple)) and len(set(axes)) == len(axes) and all(
            isinstance(a, int) and not isinstance(a, bool) and 0 <= a < dim for a in axes)):
        raise ModelProblem("inference_allowed_mirroring_axes", f"expected distinct axes 0..{dim - 1} of the "
                           f"{dim}D patch, got {axes!r}")


def _fold(path: str) -> str:
    return os.path.basename(os.path.dirname(path))


def fold_disagreements(checkpoints: List[Tuple[str, Dict]]) -> List[str]:
    """What the checkpoints of the chosen folds say differently: trainer, configuration, or the label map of the
    trained dataset.json (its LABEL_MAP_KEYS)."""
    (first_path, first), out = checkpoints[0], []
    for path, checkpoint in checkpoints[1:]:
        if checkpoint["trainer_name"] != first["trainer_name"]:
            out.append(f"trainer_name of {path} differs from that of {first_path}")
        if checkpoint["init_args"]["configuration"] != first["init_args"]["configuration"]:
            out.append(f"init_args.configuration of {path} differs from that of {first_path}")
        differences = label_map_differences(checkpoint["init_args"]["dataset_json"], first["init_args"]["dataset_json"],
                                            f"in {_fold(path)}", f"in {_fold(first_path)}")
        if differences:
            out.append(f"init_args.dataset_json of {path} differs from that of {first_path} ({'; '.join(differences)})")
    return out
