"""nnunetv2-scarnet: makes `nnUNetv2_train ... -tr ScarNetTrainer*` find the ScarNet trainers.

Placed in nnunetv2/training/nnUNetTrainer/ by the nnunetv2-scarnet wheel (or `scarnet-nnunet-register`).
nnU-Net imports every module of that folder on each trainer lookup, so this module imports nothing at import time
and answers attribute look-ups lazily: names starting with "ScarNetTrainer" come from nnunetv2_scarnet.trainers,
every other name raises AttributeError, which is what nnU-Net's `hasattr` probe expects.
"""


def __getattr__(name):
    if name.startswith("ScarNetTrainer"):
        import importlib

        found = getattr(importlib.import_module("nnunetv2_scarnet.trainers"), name, None)
        if found is not None:
            return found
    raise AttributeError(name)
