"""nnU-Net trainers for ScarNet. `TRAINER_NAMES` lists every class nnU-Net can find by name."""
from nnunetv2_scarnet.trainers import variants
from nnunetv2_scarnet.trainers.scarnet_trainer import MEDSAM_CHECKPOINT_ENV, ScarNetTrainer
from nnunetv2_scarnet.trainers.variants import *  # noqa: F401,F403  (the trainer classes)

TRAINER_NAMES = tuple(["ScarNetTrainer"] + [name for name, obj in vars(variants).items()
                                            if isinstance(obj, type) and issubclass(obj, ScarNetTrainer)
                                            and name != "ScarNetTrainer"])

__all__ = ["MEDSAM_CHECKPOINT_ENV", "TRAINER_NAMES", *TRAINER_NAMES]
