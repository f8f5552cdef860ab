"""EMIDEC-style folders -> nnU-Net raw dataset (dataset.json, imagesTr, labelsTr, patient-level splits_final.json).

Input layout: `<source>/<case>/image.nii.gz` and `<source>/<case>/label.nii.gz` (EMIDEC), or generic pairs
`<images>/<case>.nii.gz` + `<labels>/<case>.nii.gz`; labels 0 background, 1 LV blood pool, 2 healthy myocardium,
3 infarct (scar), 4 microvascular obstruction (MVO). One case is one patient.
Everything is validated before anything is written, and the dataset appears by one atomic rename, so a bad input
leaves no partial dataset behind.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np

from nnunetv2_scarnet.quantification.label_scheme import stored_zooms, check_finite, check_spacing

EMIDEC_LABELS = (0, 1, 2, 3, 4)
NNUNET_LABELS = {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3}
NNUNET_LABELS_WITH_MVO = {**NNUNET_LABELS, "mvo": 4}


class DatasetConversionError(ValueError):
    """An input case cannot be converted; the message names the file and the problem."""


@dataclass
class EmidecCase:
    case_id: str
    image_path: str
    label_path: str
    label: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header

    @property
    def has_infarct(self) -> bool:
        return bool(np.any(self.label >= 3))


def list_cases(source: str, cases: Optional[Sequence[str]] = None) -> List[str]:
    """Case folder names under `source` (sorted), or the given subset (each must exist)."""
    if not os.path.isdir(source):
        raise DatasetConversionError(f"{source}: not a folder")
    found = sorted(d for d in os.listdir(source) if os.path.isfile(os.path.join(source, d, "image.nii.gz")))
    if cases is None:
        if not found:
            raise DatasetConversionError(f"{source}: no <case>/image.nii.gz found")
        return found
    missing = [c for c in cases if c not in found]
    if missing:
        raise DatasetConversionError(f"{source}: cases without image.nii.gz: {', '.join(missing)}")
    return list(cases)


def emidec_pairs(source: str, cases: Optional[Sequence[str]] = None) -> List[Tuple[str, str, str]]:
    """(case id, image path, label path) of the EMIDEC layout `<source>/<case>/{image,label}.nii.gz`."""
    return [(c, os.path.join(source, c, "image.nii.gz"), os.path.join(source, c, "label.nii.gz"))
            for c in list_cases(source, cases)]


def nifti_pairs(images_dir: str, labels_dir: str, cases: Optional[Sequence[str]] = None) -> List[Tuple[str, str, str]]:
    """(case id, image path, label path) of generic pairs: `images_dir/<case>.nii.gz` (or nnU-Net's
    `<case>_0000.nii.gz`) with `labels_dir/<case>.nii.gz`."""
    for folder in (images_dir, labels_dir):
        if not os.path.isdir(folder):
            raise DatasetConversionError(f"{folder}: not a folder")
    images = {}
    for name in sorted(os.listdir(images_dir)):
        if name.endswith(".nii.gz"):
            stem = name[:-len(".nii.gz")]
            images[stem[:-5] if stem.endswith("_0000") else stem] = os.path.join(images_dir, name)
    if not images:
        raise DatasetConversionError(f"{images_dir}: no .nii.gz images found")
    chosen = list(cases) if cases is not None else sorted(images)
    missing = [c for c in chosen if c not in images]
    if missing:
        raise DatasetConversionError(f"{images_dir}: no image for cases {', '.join(missing)}")
    return [(c, images[c], os.path.join(labels_dir, f"{c}.nii.gz")) for c in chosen]


def load_case(case_id: str, image_path: str, label_path: str) -> EmidecCase:
    """Read and validate one case: 3D image and label on the same grid, only EMIDEC label values."""
    if not os.path.isfile(label_path):
        raise DatasetConversionError(f"{label_path}: missing label file")
    try:
        image = nib.load(image_path)
        label = nib.load(label_path)
    except Exception as exc:
        raise DatasetConversionError(f"{case_id}: cannot read NIfTI ({exc})") from None
    if len(image.shape) != 3:
        raise DatasetConversionError(f"{image_path}: expected a 3D stack (x, y, slice), got shape {image.shape}")
    if tuple(label.shape) != tuple(image.shape):
        raise DatasetConversionError(f"{label_path}: shape {label.shape} differs from image shape {image.shape}")
    if not np.allclose(label.affine, image.affine, atol=1e-3):
        raise DatasetConversionError(f"{label_path}: geometry (affine) differs from {image_path}")
    for path, what in ((image_path, image), (label_path, label)):
        try:
            data = np.asarray(what.dataobj)  # the whole file: a truncated one fails here, not in nnU-Net
        except Exception as exc:
            raise DatasetConversionError(f"{path}: cannot read the voxel data, truncated or corrupt file "
                                         f"({type(exc).__name__}: {exc})") from None
        try:
            check_finite(path, data)
            check_spacing(path, stored_zooms(path, what))
        except ValueError as exc:
            raise DatasetConversionError(str(exc)) from None
    values = np.asarray(label.dataobj)
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise DatasetConversionError(f"{label_path}: label values must be integers")
    values = values.astype(np.int16)
    unknown = sorted(set(np.unique(values).tolist()) - set(EMIDEC_LABELS))
    if unknown:
        raise DatasetConversionError(f"{label_path}: unknown label values {unknown}; expected {list(EMIDEC_LABELS)}")
    return EmidecCase(case_id, image_path, label_path, values, image.affine, image.header)


def patient_splits(cases: Sequence[EmidecCase], num_folds: int = 5, seed: int = 12345) -> List[Dict[str, List[str]]]:
    """nnU-Net splits_final.json content: folds of whole patients, normal and infarct patients dealt evenly."""
    if len(cases) < num_folds:
        raise DatasetConversionError(f"{len(cases)} cases cannot fill {num_folds} folds")
    rng = np.random.default_rng(seed)
    folds: List[List[str]] = [[] for _ in range(num_folds)]
    position = 0
    for group in (sorted(c.case_id for c in cases if not c.has_infarct),
                  sorted(c.case_id for c in cases if c.has_infarct)):
        for case_id in rng.permutation(group).tolist():
            folds[position % num_folds].append(case_id)
            position += 1
    every = sorted(c.case_id for c in cases)
    return [{"train": [c for c in every if c not in set(val)], "val": sorted(val)} for val in folds]


def dataset_json(num_training: int, merge_mvo: bool, reader: Optional[str] = None) -> dict:
    content = {
        "channel_names": {"0": "LGE"},
        "labels": dict(NNUNET_LABELS if merge_mvo else NNUNET_LABELS_WITH_MVO),
        "numTraining": num_training,
        "file_ending": ".nii.gz",
        "name": "ScarNet LGE",
        "description": "Short-axis LGE; labels: blood pool, healthy myocardium, scar"
                       + (" (MVO merged into scar)" if merge_mvo else ", MVO") + ". Converted by nnunetv2-scarnet.",
    }
    if reader:
        content["overwrite_image_reader_writer"] = reader
    return content


def write_label(case: EmidecCase, path: str, merge_mvo: bool) -> None:
    label = case.label.copy()
    if merge_mvo:
        label[label == 4] = 3
    header = case.header.copy()
    header.set_data_dtype(np.uint8)
    image = nib.Nifti1Image(label.astype(np.uint8), case.affine, header)
    image.set_qform(case.header.get_qform(), code=int(case.header["qform_code"]))
    image.set_sform(case.header.get_sform(), code=int(case.header["sform_code"]))
    nib.save(image, path)


def convert_emidec(source: str, nnunet_raw: str, dataset_id: int, dataset_name: str = "EMIDEC",
                   cases: Optional[Sequence[str]] = None, **options) -> str:
    """Convert EMIDEC-style cases into `nnunet_raw/DatasetXXX_NAME`; returns that folder (options: see
    `convert_pairs`)."""
    return convert_pairs(emidec_pairs(source, cases), nnunet_raw, dataset_id, dataset_name, **options)


def convert_nifti_pairs(images_dir: str, labels_dir: str, nnunet_raw: str, dataset_id: int, dataset_name: str,
                        cases: Optional[Sequence[str]] = None, **options) -> str:
    """Convert generic NIfTI image/label pairs (labels in the EMIDEC codes 0-4) like `convert_emidec`."""
    return convert_pairs(nifti_pairs(images_dir, labels_dir, cases), nnunet_raw, dataset_id, dataset_name,
                         **options)


def convert_pairs(pairs: Sequence[Tuple[str, str, str]], nnunet_raw: str, dataset_id: int, dataset_name: str,
                  merge_mvo: bool = True, num_folds: int = 5, seed: int = 12345, reader: Optional[str] = None,
                  overwrite: bool = False) -> str:
    """Write validated (case id, image, label) triples as `nnunet_raw/DatasetXXX_NAME` with dataset.json and a
    patient-level stratified splits_final.json; nothing is written unless every case is valid."""
    if not 1 <= int(dataset_id) <= 999:
        raise DatasetConversionError(f"dataset id must be 1..999, got {dataset_id}")
    if os.path.lexists(nnunet_raw) and not os.path.isdir(nnunet_raw):
        raise DatasetConversionError(f"{nnunet_raw}: nnU-Net raw folder is a file")
    target = os.path.join(nnunet_raw, f"Dataset{int(dataset_id):03d}_{dataset_name}")
    if os.path.exists(target) and not overwrite:
        raise DatasetConversionError(f"{target} already exists (pass overwrite=True / --overwrite to replace it)")
    loaded = [load_case(*pair) for pair in pairs]
    splits = patient_splits(loaded, num_folds, seed)
    os.makedirs(nnunet_raw, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", dir=nnunet_raw)
    try:
        os.makedirs(os.path.join(staging, "imagesTr"))
        os.makedirs(os.path.join(staging, "labelsTr"))
        for case in loaded:
            shutil.copyfile(case.image_path, os.path.join(staging, "imagesTr", f"{case.case_id}_0000.nii.gz"))
            write_label(case, os.path.join(staging, "labelsTr", f"{case.case_id}.nii.gz"), merge_mvo)
        with open(os.path.join(staging, "dataset.json"), "w") as f:
            json.dump(dataset_json(len(loaded), merge_mvo, reader), f, indent=2)
        with open(os.path.join(staging, "splits_final.json"), "w") as f:
            json.dump(splits, f, indent=2)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Convert EMIDEC-style LGE cases (or generic NIfTI image/label "
                                                 "pairs) to an nnU-Net v2 raw dataset.")
    parser.add_argument("source", nargs="?", help="folder with <case>/image.nii.gz and <case>/label.nii.gz")
    parser.add_argument("--images", help="instead of SOURCE: folder of <case>.nii.gz (or <case>_0000.nii.gz) images")
    parser.add_argument("--labels", help="with --images: folder of <case>.nii.gz labels (0 bg, 1 blood pool, "
                                         "2 myocardium, 3 scar, 4 MVO)")
    parser.add_argument("-d", "--dataset-id", type=int, required=True)
    parser.add_argument("-n", "--name", default="EMIDEC")
    parser.add_argument("-o", "--nnunet-raw", default=os.environ.get("nnUNet_raw"),
                        help="nnU-Net raw folder (default: $nnUNet_raw)")
    parser.add_argument("--cases", nargs="+", help="convert only these case folders")
    parser.add_argument("--keep-mvo", action="store_true", help="keep MVO as its own label 4 instead of scar")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--reader", choices=["SimpleITKIO", "NibabelIO"], default=None,
                        help="set dataset.json's overwrite_image_reader_writer")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if not args.nnunet_raw:
        parser.error("give -o/--nnunet-raw or set nnUNet_raw")
    if bool(args.source) == bool(args.images) or bool(args.images) != bool(args.labels):
        parser.error("give either SOURCE (EMIDEC layout) or both --images and --labels")
    options = dict(merge_mvo=not args.keep_mvo, num_folds=args.folds, seed=args.seed, reader=args.reader,
                   overwrite=args.overwrite)
    try:
        if args.source:
            target = convert_emidec(args.source, args.nnunet_raw, args.dataset_id, args.name, args.cases, **options)
        else:
            target = convert_nifti_pairs(args.images, args.labels, args.nnunet_raw, args.dataset_id, args.name,
                                         args.cases, **options)
    except (DatasetConversionError, OSError) as exc:  # OSError: e.g. the raw folder is not writable
        print(f"scarnet-convert-emidec: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
