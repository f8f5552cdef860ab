"""Learning-curve trainers (benchmark only; `benchmarks/learning_curve.py`): `LearningCurve_<base>` trains `<base>`
(stock `nnUNetTrainer` or any ScarNet trainer) on a short, identical schedule and records its curve.

Not part of the installed package: nnU-Net finds these classes only through `nnUNet_extTrainer` pointing at this
folder, which `benchmarks/learning_curve.py` sets for its own `nnUNetv2_train` runs. A user's `-tr` names and the
discovery shim (names starting with "ScarNetTrainer", from `nnunetv2_scarnet.trainers`) never see them.

Compared with `<base>` it changes only what a like-for-like curve needs:
- schedule and batch size from the environment (read in __init__, written to the training log):
  SCARNET_CURVE_EPOCHS, SCARNET_CURVE_ITERATIONS (per epoch), SCARNET_CURVE_VAL_BATCHES, SCARNET_CURVE_BATCH_SIZE,
  SCARNET_CURVE_SEED; the poly learning rate (and ScarNet's warm-up) follow nnU-Net's rules for that many epochs;
- the same training batches for every trainer (a random stream of their own, seeded), and one fixed set of
  validation batches drawn once, so the pseudo-Dice of every epoch is measured on the same patches;
- it records, per training step, the trainer's own loss, stock nnU-Net's Dice + CE at full resolution (the one
  loss every trainer can be compared on), the seconds spent in `train_step` and a fingerprint of the batch, and
  writes them with nnU-Net's per-epoch pseudo-Dice to `learning_curve.json` in the fold folder after every step;
- no final sliding-window validation (the curve is the result; the log says so).
"""
import itertools
import json
import os
import random
import time

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import join
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from learning_curve_recording import ReferenceLossRecorder, SeparateRngIterator, batch_fingerprint
from nnunetv2_scarnet.trainers import variants
from nnunetv2_scarnet.trainers.scarnet_trainer import ScarNetTrainer

CURVE_PREFIX = "LearningCurve_"
#: environment variable -> (trainer attribute, default)
CURVE_SETTINGS = {"SCARNET_CURVE_EPOCHS": ("curve_epochs", 10), "SCARNET_CURVE_ITERATIONS": ("curve_iterations", 15),
                  "SCARNET_CURVE_VAL_BATCHES": ("curve_val_batches", 5),
                  "SCARNET_CURVE_BATCH_SIZE": ("curve_batch_size", 2), "SCARNET_CURVE_SEED": ("curve_seed", 12345)}
CURVE_FILE = "learning_curve.json"
#: optional: torch CPU threads for the run (nnU-Net's run_training sets one per core; on a CPU shared with other
#: jobs, one thread avoids the threads waiting on each other). Not a curve setting: the batches do not change.
THREADS_VARIABLE = "SCARNET_CURVE_THREADS"


def curve_settings_from_environment() -> dict:
    """The curve settings (attribute -> int), each from its environment variable or its default."""
    settings = {}
    for variable, (attribute, default) in CURVE_SETTINGS.items():
        text = os.environ.get(variable, str(default))
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{variable}={text!r} is not an integer") from None
        if value < (0 if attribute == "curve_seed" else 1):
            raise ValueError(f"{variable}={value} must be {'>= 0' if attribute == 'curve_seed' else '>= 1'}")
        settings[attribute] = value
    return settings


class LearningCurveMixin:
    """Put before an nnU-Net trainer class in the bases (see the module docstring)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        settings = curve_settings_from_environment()
        threads = os.environ.get(THREADS_VARIABLE)
        if threads is not None:
            if not threads.isdigit() or int(threads) < 1:
                raise ValueError(f"{THREADS_VARIABLE}={threads!r} is not a positive integer")
            torch.set_num_threads(int(threads))
        plans["configurations"][configuration]["batch_size"] = settings["curve_batch_size"]
        random.seed(settings["curve_seed"])  # the network's initialisation
        np.random.seed(settings["curve_seed"])
        torch.manual_seed(settings["curve_seed"])
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.curve_settings = settings
        self.num_epochs = settings["curve_epochs"]
        self.num_iterations_per_epoch = settings["curve_iterations"]
        self.num_val_iterations_per_epoch = settings["curve_val_batches"]
        self.curve_steps = []  # one dict per training step
        self.curve_epochs = []  # one dict per epoch
        self._reference_losses = []

    def initialize(self):
        super().initialize()
        reference = DC_and_CE_loss({"batch_dice": self.configuration_manager.batch_dice, "smooth": 1e-5,
                                    "do_bg": False, "ddp": False}, {}, weight_ce=1, weight_dice=1,
                                   ignore_label=self.label_manager.ignore_label,
                                   dice_class=MemoryEfficientSoftDiceLoss)
        self.loss = ReferenceLossRecorder(self.loss, reference, self._reference_losses)

    def on_train_start(self):
        super().on_train_start()
        seed = self.curve_settings["curve_seed"]
        validation = SeparateRngIterator(self.dataloader_val, seed + 1)
        fixed = [next(validation) for _ in range(self.num_val_iterations_per_epoch)]
        self.curve_validation_fingerprints = [batch_fingerprint(b) for b in fixed]
        self.dataloader_val = itertools.cycle(fixed)
        self.dataloader_train = SeparateRngIterator(self.dataloader_train, seed)
        self.print_to_log_file(f"learning curve: {self.curve_settings}, {self.num_val_iterations_per_epoch} fixed "
                               f"validation batches, torch threads {torch.get_num_threads()}; no final validation")

    def train_step(self, batch: dict) -> dict:
        start = time.perf_counter()
        result = super().train_step(batch)
        own_loss = float(result["loss"])  # also waits for the step to finish
        seconds = time.perf_counter() - start
        if len(self._reference_losses) != len(self.curve_steps) + 1:
            raise RuntimeError("the reference loss was not recorded for this training step")
        self.curve_steps.append({"epoch": self.current_epoch, "loss": own_loss,
                                 "reference_loss": self._reference_losses[-1], "seconds": seconds,
                                 "batch": batch_fingerprint(batch)})
        self.write_curve()  # a run stopped early keeps every finished step
        return result

    def on_epoch_end(self):
        epoch = self.current_epoch
        super().on_epoch_end()
        steps = [s for s in self.curve_steps if s["epoch"] == epoch]
        def logged(key):
            return self.logger.get_value(key, step=epoch)

        self.curve_epochs.append({
            "epoch": epoch, "iterations": len(self.curve_steps),
            "samples_seen": len(self.curve_steps) * self.batch_size,
            "train_step_seconds": float(sum(s["seconds"] for s in self.curve_steps)),
            "lr": float(logged("lrs")), "loss": float(logged("train_losses")),
            "reference_loss": float(np.mean([s["reference_loss"] for s in steps])),
            "val_loss": float(logged("val_losses")),
            "pseudo_dice": [float(v) for v in logged("dice_per_class_or_region")],
            "mean_fg_dice": float(logged("mean_fg_dice")),
            "epoch_seconds": float(logged("epoch_end_timestamps") - logged("epoch_start_timestamps"))})
        self.write_curve()

    def write_curve(self) -> None:
        labels = {int(v): k for k, v in self.dataset_json["labels"].items() if isinstance(v, int)}
        content = {"trainer": type(self).__name__, "base_trainer": type(self).__name__[len(CURVE_PREFIX):],
                   "settings": self.curve_settings, "batch_size": self.batch_size,
                   "patch_size": [int(v) for v in self.configuration_manager.patch_size],
                   "classes": [labels[c] for c in self.label_manager.foreground_labels],
                   "n_parameters": sum(p.numel() for p in self.network.parameters()),
                   "torch_threads": torch.get_num_threads(), "fold": self.fold,
                   "validation_batches": self.curve_validation_fingerprints,
                   "complete": len(self.curve_epochs) == self.num_epochs,
                   "epochs": self.curve_epochs, "steps": self.curve_steps}
        path = join(self.output_folder, CURVE_FILE)
        with open(path + ".part", "w") as f:
            json.dump(content, f, indent=1)
        os.replace(path + ".part", path)

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("learning curve: final sliding-window validation skipped (the curve is the result)")


def curve_trainer(base: type) -> type:
    """`LearningCurve_<base>`: the learning-curve variant of an nnU-Net trainer class."""
    return type(CURVE_PREFIX + base.__name__, (LearningCurveMixin, base),
                {"__module__": __name__, "__doc__": f"Learning-curve variant of {base.__name__} (benchmark only)."})


_BASES = [nnUNetTrainer, ScarNetTrainer] + [obj for name, obj in sorted(vars(variants).items())
                                            if isinstance(obj, type) and issubclass(obj, ScarNetTrainer)
                                            and obj is not ScarNetTrainer]
for _base in _BASES:
    globals()[CURVE_PREFIX + _base.__name__] = curve_trainer(_base)

__all__ = [CURVE_PREFIX + b.__name__ for b in _BASES]
