"""The `scarnet` command line: quantify and evaluate on real labels, label schemes from dataset.json, exit codes."""
import json
import os
import subprocess
import sys

import pytest

from nnunetv2_scarnet.quantification.label_scheme import LabelScheme


def scarnet(*args):
    return subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture()
def labels(emidec_cases, tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    for case in ("Case_N012", "Case_P004"):
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), folder / f"{case}.nii.gz")
    return folder


def test_quantify_and_evaluate_commands(labels, tmp_path):
    done = scarnet("quantify", str(labels), str(tmp_path / "report"), "--no-pictures")
    assert done.returncode == 0, done.stderr
    assert "Case_P004: LV myocardium 126.5 mL (132.8 g), scar 28.7 mL = 22.7% LVM" in done.stdout
    assert not any(f.endswith(".png") for f in os.listdir(tmp_path / "report"))
    # labels alone: no septum, the orientation is not determined, and the console says so with the options
    assert "Case_P004: orientation not determined\n" in done.stdout
    assert "Case_P004: AHA segments need the user's orientation (--septum-deg" in done.stdout
    done = scarnet("evaluate", str(labels), str(labels), str(tmp_path / "eval"), "--name", "self")
    assert done.returncode == 0, done.stderr
    summary = json.load(open(tmp_path / "eval" / "evaluation.json"))["summary"]
    assert summary["dice_myocardium_patient"]["median"] == 1.0


def test_quantify_prints_each_orientation_state_and_assumption(labels, emidec_cases, tmp_path):
    """Issue 23: the console printed only warnings, so an assumed handedness and the state went unseen. With the
    images, N012's image septum lies 80 deg from the standard display's (needs review, as the cardiologist read
    it), P004's within it (ok); both stacks carry no patient orientation, so their handedness is assumed."""
    images = tmp_path / "images"
    images.mkdir()
    for case in ("Case_N012", "Case_P004"):
        os.symlink(os.path.join(emidec_cases, case, "image.nii.gz"), images / f"{case}_0000.nii.gz")
    done = scarnet("quantify", str(labels), str(tmp_path / "report"), "--images", str(images), "--no-pictures")
    assert done.returncode == 0, done.stderr
    assert "Case_N012: orientation needs review: septum from the image alone" in done.stdout
    assert "Case_P004: orientation ok" in done.stdout
    for case in ("Case_N012", "Case_P004"):
        assert f"{case}: assumed: handedness assumed from the affine's determinant" in done.stdout


def test_errors_exit_2_with_one_line(labels, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = scarnet("evaluate", str(empty), str(labels), str(tmp_path / "eval"))
    assert done.returncode == 2
    assert done.stderr.startswith("scarnet evaluate: prediction folder") and "Case_N012" in done.stderr
    assert not (tmp_path / "eval").exists()
    done = scarnet("dicom2nifti", str(tmp_path / "nowhere"), str(tmp_path / "x.nii.gz"))
    assert done.returncode == 2 and "not a folder" in done.stderr


def test_label_scheme_from_dataset_json(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3, "mvo": 4}}))
    scheme = LabelScheme.from_dataset_json(str(path))
    assert scheme.myocardium == {2, 3, 4} and scheme.scar == {3, 4} and scheme.mvo == {4}
    path.write_text(json.dumps({"labels": {"background": 0, "myocardium": 1, "scar": 2}}))
    scheme = LabelScheme.from_dataset_json(str(path))
    assert scheme.myocardium == {1, 2} and scheme.scar == {2} and not scheme.mvo and not scheme.blood_pool
    path.write_text(json.dumps({"labels": {"background": 0, "lv": 1}}))
    with pytest.raises(ValueError, match="dataset.json: labels \\['myocardium', 'scar'\\] not defined"):
        LabelScheme.from_dataset_json(str(path))
