"""nnunetv2-scarnet: makes `nnUNetv2_plan_and_preprocess ... -pl ScarNetPlanner` find the ScarNet planner.

Placed in nnunetv2/experiment_planning/ by the nnunetv2-scarnet wheel (or `scarnet-nnunet-register`). It imports
nothing at import time; names starting with "ScarNetPlanner" come from nnunetv2_scarnet.planners, every other
name raises AttributeError, which is what nnU-Net's `hasattr` probe expects.
"""


def __getattr__(name):
    if name.startswith("ScarNetPlanner"):
        import importlib

        found = getattr(importlib.import_module("nnunetv2_scarnet.planners"), name, None)
        if found is not None:
            return found
    raise AttributeError(name)
