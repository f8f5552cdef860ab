"""Cohorts (issue 16): study index of an export tree, parts, resume after a kill, merge and the cohort summary,
and bad input at cohort scale (unreadable study, one patient with two studies, unsafe or colliding patient names).

The export tree is written here: small phantom LGE stacks (a myocardial ring with a bright scar sector, placed in
world coordinates) as DICOM series via `dicom_helpers.write_series`, with cine series, non-DICOM files and hidden
files mixed in, at several depths. The model is the cheap random-weight nnU-Net folder of test_report_safety
(`build_model_folder`): predictions are poor, the pipeline (conversion, nnUNetPredictor, quantification, DICOM SEG,
HTML) is real."""
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicom_helpers import write_series
from test_report_safety import build_model_folder, ring_prediction

from nnunetv2_scarnet.cli import main
from nnunetv2_scarnet.report.cohort_index import build_index, read_index, studies_of, write_index
from nnunetv2_scarnet.report.cohort_run import part_of
from nnunetv2_scarnet.report.predict import ReportPredictor


def phantom(path, shape=(48, 48, 4), spacing=(1.5, 1.5, 8.0)):
    """A short-axis LGE-like stack: blood pool, myocardial ring (r 8-12 mm), a bright 60-degree scar sector."""
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    r = np.hypot((ii - shape[0] / 2) * spacing[0], (jj - shape[1] / 2) * spacing[1])
    angle = np.degrees(np.arctan2(jj - shape[1] / 2, ii - shape[0] / 2)) % 360
    plane = np.full(shape[:2], 50.0)
    plane[r < 8] = 400
    plane[(r >= 8) & (r < 12)] = 80
    plane[(r >= 8) & (r < 12) & (angle < 60)] = 600
    data = np.repeat(plane[..., None], shape[2], axis=2).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), path)
    return path


def set_tags(paths, **tags):
    for path in paths:
        ds = pydicom.dcmread(path)
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(path)


def write_study(root, folder, nifti, patient_id, study_date, name=None, cine=True):
    """One study: an LGE series (4 slices, TI 300 ms) and, with `cine`, a single-slice cine series, both under
    `root/folder` (the cine one level deeper). Returns (StudyInstanceUID, LGE SeriesInstanceUID, LGE files)."""
    study_uid = pydicom.uid.generate_uid()
    lge = write_series(nifti, os.path.join(root, folder, "lge"), study_uid=study_uid, description="LGE PSIR SAX",
                       inversion_time=300)
    paths = list(lge)
    if cine:
        paths += write_series(nifti, os.path.join(root, folder, "more", "cine"), study_uid=study_uid,
                              description="CINE SAX", slices=[1], names=[None, "cine.dcm"])
    set_tags(paths, PatientID=patient_id, PatientName=name or f"{patient_id}^Test", StudyDate=study_date)
    return study_uid, str(pydicom.dcmread(lge[0]).SeriesInstanceUID), lge


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("cheap") / "nnUNetTrainer__nnUNetPlans__2d")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """An export tree: 5 studies at depths 1-3 (two of patient P1, names to sanitise, one unreadable), README and
    hidden files. Returns (root, {label: (study_uid, lge_series_uid)})."""
    tmp = tmp_path_factory.mktemp("export")
    nifti = phantom(str(tmp / "phantom.nii.gz"))
    root = str(tmp / "export")
    studies = {
        "p1_first": write_study(root, "site_a/P1/2020", nifti, "P1", "20200101"),
        "p1_second": write_study(root, "site_a/P1/2021", nifti, "P1", "20210101"),
        "traversal": write_study(root, "site_b/x", nifti, "../../etc", "", name="../../etc"),
        "space": write_study(root, "site_b/y/deeper/still", nifti, "P 2", "20220202", cine=False),
        "slash": write_study(root, "z", nifti, "P/2", "20220202", cine=False),
    }
    broken_uid, broken_series, broken_files = write_study(root, "site_c/broken", nifti, "BROKEN", "20230303")
    for path in broken_files:  # header intact, pixel data cut short: readable index, unreadable image
        ds = pydicom.dcmread(path)
        ds.PixelData = ds.PixelData[:100]
        ds.save_as(path)
    studies["broken"] = (broken_uid, broken_series, broken_files)
    with open(os.path.join(root, "README.txt"), "w") as f:
        f.write("export notes, not DICOM\n")
    with open(os.path.join(root, "site_a", "P1", "DICOMDIR.txt"), "wb") as f:
        f.write(b"\0" * 300)
    os.makedirs(os.path.join(root, ".hidden"))
    shutil.copy(studies["p1_first"][2][0], os.path.join(root, ".hidden", "copy.dcm"))  # hidden: not indexed
    return root, {k: v[:2] for k, v in studies.items()}
