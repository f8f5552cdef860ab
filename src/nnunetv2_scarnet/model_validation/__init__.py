"""Checks of an untrusted nnU-Net model folder, run before nnU-Net resolves a name or builds anything from it.

See docs/reliability.md (model folders) for the policy. Each check raises `ModelProblem` naming the key; the
caller (`model_loading`) adds the file.
"""
from nnunetv2_scarnet.model_validation.architecture import NETWORK_CLASSES, OP_CLASSES, check_architecture
from nnunetv2_scarnet.model_validation.checkpoint import (check_checkpoint_entries, check_mirroring_axes,
                                                          fold_disagreements)
from nnunetv2_scarnet.model_validation.dataset_json import LABEL_MAP_KEYS, check_dataset_json, label_map_differences
from nnunetv2_scarnet.model_validation.plans import check_plans
from nnunetv2_scarnet.model_validation.problem import ModelProblem
from nnunetv2_scarnet.model_validation.trained_plans import plans_differences

__all__ = ["ModelProblem", "NETWORK_CLASSES", "OP_CLASSES", "LABEL_MAP_KEYS", "check_architecture", "check_plans",
           "check_dataset_json", "label_map_differences", "check_checkpoint_entries", "check_mirroring_axes",
           "fold_disagreements", "plans_differences"]
