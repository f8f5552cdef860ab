"""Prediction for `scarnet report` through nnU-Net's own `nnUNetPredictor`, keeping what the QC needs.

The predictor is initialised from the model folder (any nnU-Net model folder, stock trainers included) with the
chosen folds and checkpoint. nnU-Net's preprocessing, sliding-window inference and export to the original grid
are used as they are; the only difference to `nnUNetv2_predict` is that each ensemble member, one fold with one
mirroring, is run separately (nnU-Net averages the same members inside one call), so that the members' own
segmentations are available to measure their disagreement. The average of the members' logits is nnU-Net's
prediction; its probabilities stay in memory, are used by the QC and are never written.
"""
import contextlib
import glob
import io
import itertools
import os
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from nnunetv2_scarnet.model_loading import ModelFolderError, initialize_predictor, read_model_json
from nnunetv2_scarnet.quantification import LabelScheme



def resolve_device(name: str) -> torch.device:
    """`auto`: CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available")
    return torch.device(name)


def package_versions() -> Dict[str, str]:
    out = {}
    for package in ("nnunetv2-scarnet", "nnunetv2", "torch", "numpy", "pydicom", "highdicom", "SimpleITK"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def available_folds(model_folder: str, checkpoint: str) -> List[str]:
    found = sorted(glob.glob(os.path.join(model_folder, "fold_*", checkpoint)))
    return [os.path.basename(os.path.dirname(p))[len("fold_"):] for p in found]


def check_model_folder(model_folder: str, folds: Optional[Sequence[str]], checkpoint: str) -> List[str]:
    """Raise (naming the file) unless the folder holds valid plans.json and dataset.json and each fold's
    checkpoint; the checkpoints themselves are read (with the trust policy) when the predictor is built."""
    if not os.path.isdir(model_folder):
        raise ModelFolderError(f"{model_folder}: model folder not found")
    for name in ("plans.json", "dataset.json"):
        read_model_json(os.path.join(model_folder, name))
    plans_path = os.path.join(model_folder, "plans.json")
    if not isinstance(read_model_json(plans_path).get("configurations"), dict):
        raise ModelFolderError(f"{plans_path}: no 'configurations' in the plans; not an nnU-Net plans file")
    folds = [str(f) for f in folds] if folds else available_folds(model_folder, checkpoint)
    if not folds:
        raise ModelFolderError(f"{model_folder}: no fold_*/{checkpoint} found")
    for f in folds:
        path = os.path.join(model_folder, f"fold_{f}", checkpoint)
        if not os.path.isfile(path):
            raise ModelFolderError(f"{path}: checkpoint of fold {f} not found")
    return folds


@dataclass
class Prediction:
    segmentation: np.ndarray                  # label values, nnU-Net reader's axis order (written to disk)
    confidence: Dict[str, Optional[float]]    # mean max probability inside predicted myocardium / scar
    member_dice: Dict[str, List[float]]       # each member's Dice with the ensemble, per structure
    members: List[str] = field(default_factory=list)
    ensemble_scar_voxels: int = 0             # scar voxels of the ensemble on nnU-Net's preprocessed grid


def dice(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    total = int(a.sum()) + int(b.sum())
    return None if total == 0 else 2.0 * int((a & b).sum()) / total


class ReportPredictor:
    """An `nnUNetPredictor` on one model folder, predicting one stack at a time."""

    def __init__(self, model_folder: str, folds: Optional[Sequence[str]] = None,
                 checkpoint: str = "checkpoint_final.pth", device: str = "auto", mirroring: bool = True,
                 scheme: Optional[LabelScheme] = None, trust_model: bool = False):
        """`scheme`: which label values are which structure (`--dataset-json`), refused when it declares a value
        the model never predicts; default: mapped by name from the model's labels (those of the checkpoint, which
        the folder's dataset.json must repeat), refused when they cannot be mapped. `trust_model`: load checkpoints
        with pickle execution and plans that name code outside the allow-lists (`model_loading`)."""
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        self.model_folder = os.path.abspath(model_folder)
        self.folds = check_model_folder(self.model_folder, folds, checkpoint)
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net's prints would break the progress bars
            self.predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                             perform_everything_on_device=self.device.type == "cuda",
                                             device=self.device, verbose=False, allow_tqdm=False)
            initialize_predictor(self.predictor, self.model_folder, [f if f == "all" else int(f) for f in self.folds],
                                 checkpoint, trust_model)
        self.scheme = self._checked_override(scheme) if scheme else self._label_scheme()
        axes = self.predictor.allowed_mirroring_axes if mirroring else None
        self.mirror_combos = [()] + ([c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]
                                     if axes else [])

    def _label_scheme(self) -> LabelScheme:
        """The model's labels mapped by name. Read from the folder's dataset.json, which `initialize_predictor`
        has checked to hold the checkpoint's labels (so messages name the file the user can see)."""
        path = os.path.join(self.model_folder, "dataset.json")
        try:
            return LabelScheme.from_dataset_json(path)
        except ValueError as exc:
            raise ModelFolderError(f"{exc}; give the label values with --dataset-json") from None

    def _checked_override(self, scheme: LabelScheme) -> LabelScheme:
        """The user's `--dataset-json` scheme, refused when it declares a value the model never predicts (that
        structure would be reported as absent: a plausible wrong number)."""
        dataset = self.predictor.dataset_json
        values = {v for v in dataset["labels"].values() if isinstance(v, int)}
        values |= set(dataset.get("regions_class_order") or [])
        unknown = sorted(scheme.valid - values)
        if unknown:
            found = ", ".join(f"{k}={v}" for k, v in dataset["labels"].items())
            raise ModelFolderError(f"{self.model_folder}: --dataset-json declares label value(s) {unknown}, which the "
                                   f"model never predicts (its labels, from the checkpoint: {found})")
        return scheme

    @property
    def n_members(self) -> int:
        return len(self.folds) * len(self.mirror_combos)

    def identity(self) -> Dict:
        """What the report prints as the model's identity."""
        p = self.predictor
        return {"model_folder": self.model_folder, "trainer": p.trainer_name, "plans": p.plans_manager.plans_name,
                "dataset": p.plans_manager.dataset_name,
                "configuration": os.path.basename(self.model_folder).split("__")[-1],
                "folds": list(self.folds), "checkpoint": self.checkpoint,
                "mirroring_axes": [list(c) for c in self.mirror_combos[1:]], "members": self.n_members,
                "device": str(self.device), "labels": p.dataset_json.get("labels", {}),
                "versions": package_versions()}

    @torch.inference_mode()
    def predict(self, image_path: str, out_seg_path: str, on_member=None) -> Prediction:
        """Predict `image_path` (one-channel NIfTI), write the segmentation to `out_seg_path` on its grid."""
        from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

        p = self.predictor
        pm, cm, lm = p.plans_manager, p.configuration_manager, p.label_manager
        preprocessor = cm.preprocessor_class(verbose=False)
        data, _, properties = preprocessor.run_case([image_path], None, pm, cm, p.dataset_json)
        data = torch.from_numpy(np.ascontiguousarray(data)).float()
        offset = data.ndim - len(cm.patch_size)  # (c, z, x, y) with a 2D patch: spatial axis a is dim a + 2
        total, member_segs, names = None, [], []
        for fold, params in zip(self.folds, p.list_of_parameters):
            p.network.load_state_dict(params) if not hasattr(p.network, "_orig_mod") else \
                p.network._orig_mod.load_state_dict(params)
            for combo in self.mirror_combos:
                dims = [a + offset for a in combo]
                logits = p.predict_sliding_window_return_logits(torch.flip(data, dims) if dims else data)
                logits = (torch.flip(logits, dims) if dims else logits).float().cpu()
                total = logits.clone() if total is None else total.add_(logits)
                member_segs.append(np.asarray(lm.convert_logits_to_segmentation(logits)))
                names.append(f"fold {fold}" + (f", mirrored {list(combo)}" if combo else ""))
                if on_member:
                    on_member()
        total /= len(member_segs)
        ensemble = np.asarray(lm.convert_logits_to_segmentation(total))
        segmentation, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
            total, pm, cm, lm, properties, return_probabilities=True)
        probabilities = np.asarray(probabilities)
        pm.image_reader_writer_class().write_seg(segmentation, out_seg_path, properties)

        myo, scar, _, _ = self.scheme.masks(segmentation)
        top = probabilities.max(axis=0)
        confidence = {"myocardium": float(top[myo].mean()) if myo.any() else None,
                      "scar": float(top[scar].mean()) if scar.any() else None}
        del probabilities, top
        e_myo, e_scar, _, _ = self.scheme.masks(ensemble)
        member_dice = {"myocardium": [], "scar": []}
        for seg in member_segs:
            m_myo, m_scar, _, _ = self.scheme.masks(seg)
            for key, a, b in (("myocardium", m_myo, e_myo), ("scar", m_scar, e_scar)):
                d = dice(a, b)
                if d is not None:
                    member_dice[key].append(d)
        return Prediction(segmentation, confidence, member_dice, names, int(e_scar.sum()))
