"""Evaluation statistics: hand-worked examples, identity and a known perturbation on real labels, bad input."""
import json
import math
import os

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from nnunetv2_scarnet.evaluation import EvaluationInputError, evaluate_folders
from nnunetv2_scarnet.evaluation.agreement import bland_altman, concordance, detection
from nnunetv2_scarnet.evaluation.overlap import dice, hd95, median_iqr

CASES = ["Case_N012", "Case_N014", "Case_P001", "Case_P002", "Case_P004", "Case_P007", "Case_P009", "Case_P010"]


def test_dice_rules_by_hand():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert dice(a, b) is None  # both empty: undefined, never 1.0
    a[0, :2] = True
    assert dice(a, b) == 0.0
    b[0, 1:4] = True
    assert dice(a, b) == pytest.approx(2 * 1 / (2 + 3))


def test_hd95_by_hand():
    a = np.zeros((20, 20, 1), bool)
    b = np.zeros((20, 20, 1), bool)
    a[5:10, 5:10] = True
    b[7:12, 5:10] = True  # shifted by 2 voxels along axis 0, 1.5 mm voxels
    # every boundary voxel of one mask is at most 2 voxels (3 mm) from the other's boundary; the top/bottom
    # rows are exactly 2 voxels away, so the 95th percentile of the symmetric distances is 3 mm
    assert hd95(a, b, (1.5, 1.0, 10.0)) == pytest.approx(3.0)
    assert hd95(a, np.zeros_like(a), (1, 1, 1)) is None


def test_concordance_and_bland_altman_by_hand():
    c = concordance([1, 2, 3], [1, 2, 4])
    assert c["ccc"] == pytest.approx(6 / 7)  # 2*1 / (2/3 + 14/9 + (2 - 7/3)^2)
    assert c["ci_low"] < c["ccc"] < c["ci_high"] <= 1
    z = math.atanh(c["ccc"])
    assert math.atanh(c["ci_high"]) - z == pytest.approx(z - math.atanh(c["ci_low"]))
    assert concordance([1, 2, 3], [1, 2, 3])["ccc"] == 1.0
    ba = bland_altman([10, 20, 30], [12, 18, 33])
    assert ba["bias"] == pytest.approx(1.0)
    assert ba["sd"] == pytest.approx(math.sqrt(7))
    assert ba["loa_low"] == pytest.approx(1 - 1.96 * math.sqrt(7))
    assert ba["percent_bias"] == pytest.approx(5.0)  # 100 * 1 / 20
    assert ba["cov_pct"] == pytest.approx(100 * math.sqrt(7) / 20.5)
    d = detection([True, True, False, False, True], [True, False, False, True, True])
    assert (d["tp"], d["fn"], d["tn"], d["fp"]) == (2, 1, 1, 1)
    assert d["sensitivity"] == pytest.approx(2 / 3) and d["specificity"] == pytest.approx(0.5)
    assert median_iqr([None, 1, 2, 3, 4])["median"] == 2.5 and median_iqr([None])["n"] == 0


@pytest.fixture()
def references(emidec_cases, tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    for case in CASES:
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), folder / f"{case}.nii.gz")
    return folder


def test_labels_against_themselves(references, tmp_path):
    result = evaluate_folders(str(references), str(references), str(tmp_path / "out"), name="identity")
    s = result["summary"]
    assert s["dice_myocardium_patient"]["median"] == 1.0 and s["dice_myocardium_patient"]["q1"] == 1.0
    assert s["dice_scar_patient"]["median"] == 1.0 and s["dice_scar_patient"]["both_empty"] == 2  # two normals
    assert s["scar_ml"]["concordance"]["ccc"] == 1.0 and s["scar_ml"]["bland_altman"]["bias"] == 0.0
    assert s["scar_pct_lvm"]["bland_altman"]["bias"] == 0.0 and s["hd95_myocardium_mm"]["median"] == 0.0
    assert s["scar_presence_patient"]["sensitivity"] == 1.0 and s["scar_presence_patient"]["specificity"] == 1.0
    for name in ("evaluation.json", "cases.csv", "slices.csv", "agreement_scar_ml.png", "agreement_scar_pct_lvm.png",
                 "dice_per_patient.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def erode_scar(label):
    """Scar (3, 4) eroded by one pixel in-plane; removed scar becomes healthy myocardium (2)."""
    scar = label >= 3
    eroded = np.zeros_like(scar)
    for k in range(label.shape[2]):
        eroded[..., k] = ndimage.binary_erosion(scar[..., k])
    out = label.copy()
    out[scar & ~eroded] = 2
    return out


def test_scar_eroded_by_one_pixel(references, tmp_path):
    predictions = tmp_path / "pred"
    predictions.mkdir()
    expected = {}
    for case in CASES:
        image = nib.load(references / f"{case}.nii.gz")
        label = np.asarray(image.dataobj)
        eroded = erode_scar(label)
        nib.save(nib.Nifti1Image(eroded, image.affine, image.header), predictions / f"{case}.nii.gz")
        a, b = int((label >= 3).sum()), int((eroded >= 3).sum())
        voxel = float(np.prod(image.header.get_zooms()[:3])) / 1000
        myo = int((label >= 2).sum())
        expected[case] = {"dice": None if a == 0 else 2 * b / (a + b), "ref_ml": a * voxel, "pred_ml": b * voxel,
                          "ref_pct": 100 * a / myo, "pred_pct": 100 * b / myo}
    result = evaluate_folders(str(predictions), str(references), None, name="eroded")
    for c in result["cases"]:
        e = expected[c["case"]]
        assert c["dice_myocardium"] == 1.0  # eroded scar stays myocardium
        assert c["dice_scar"] == (None if e["dice"] is None else pytest.approx(e["dice"]))
        assert c["scar_ml_prediction"] == pytest.approx(e["pred_ml"])
        assert c["scar_pct_lvm_prediction"] == pytest.approx(e["pred_pct"])
    diffs = np.array([e["pred_ml"] - e["ref_ml"] for e in expected.values()])
    ba = result["summary"]["scar_ml"]["bland_altman"]
    assert ba["bias"] == pytest.approx(diffs.mean()) and ba["bias"] < 0
    assert ba["sd"] == pytest.approx(diffs.std(ddof=1))
    ref_mean = np.mean([e["ref_ml"] for e in expected.values()])
    assert ba["percent_bias"] == pytest.approx(100 * diffs.mean() / ref_mean)
    dices = sorted(e["dice"] for e in expected.values() if e["dice"] is not None)
    assert result["summary"]["dice_scar_patient"]["median"] == pytest.approx(np.median(dices))


def test_mismatches_are_clear_errors(references, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    os.symlink(references / "Case_N012.nii.gz", partial / "Case_N012.nii.gz")
    with pytest.raises(EvaluationInputError, match="missing predictions \\['Case_N014'"):
        evaluate_folders(str(partial), str(references))
    bad = tmp_path / "bad"
    bad.mkdir()
    for case in CASES:
        image = nib.load(references / f"{case}.nii.gz")
        data = np.asarray(image.dataobj)
        if case == "Case_P004":
            data = data[:, :, :-1]
        if case == "Case_P007":
            data = data.copy()
            data[0, 0, 0] = 7
        nib.save(nib.Nifti1Image(data, image.affine), bad / f"{case}.nii.gz")
    with pytest.raises(EvaluationInputError, match="Case_P004.nii.gz: geometry"):
        evaluate_folders(str(bad), str(references))
    os.remove(bad / "Case_P004.nii.gz")
    os.symlink(references / "Case_P004.nii.gz", bad / "Case_P004.nii.gz")
    with pytest.raises(EvaluationInputError, match="Case_P007.nii.gz: label values \\[7\\]"):
        evaluate_folders(str(bad), str(references))
