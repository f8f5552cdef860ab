"""Evaluation statistics: hand-worked examples, identity and a known perturbation on real labels, bad input."""
import json
import math
import os

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from nnunetv2_scarnet.evaluation import EvaluationInputError, evaluate_folders
from nnunetv2_scarnet.evaluation.agreement import (bland_altman, concordance, detection, icc_a1, icc_agreement,
                                                   weighted_kappa, wilson_interval)
from nnunetv2_scarnet.evaluation.overlap import dice, hd95, hd95_per_slice, median_iqr
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, case_id_of, read_label_stack
from nnunetv2_scarnet.quantification.volumes import patient_volumes

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
    # an uncompressed .nii prediction is named, never skipped silently
    nib.save(nib.load(references / "Case_N014.nii.gz"), str(partial / "Case_N014.nii"))
    with pytest.raises(EvaluationInputError, match="Case_N014.nii: evaluate reads <case>.nii.gz"):
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


def test_degenerate_agreement_does_not_crash_or_mislead():
    c = concordance([1, 2, 3], [3, 2, 1])  # perfect disagreement used to divide by zero
    assert c["ccc"] == pytest.approx(-1.0) and c["ci_low"] is None and c["ci_high"] is None
    assert concordance([1], [2])["ccc"] is None
    assert concordance([1, None, 3, 4], [1, 5, 3, 4.5])["n"] == 3  # undefined pairs are dropped, and counted
    one = bland_altman([10], [12])
    assert one["bias"] == 2.0 and one["sd"] is None and one["loa_low"] is None and one["cov_pct"] is None
    assert bland_altman([], [])["bias"] is None
    assert icc_agreement([1], [1])["icc"] is None


def _icc_a1_from_anova_table(ratings):
    """ICC(A,1) written out from the two-way ANOVA table (McGraw & Wong 1996, case 2A; pingouin's "ICC2"):
    sums of squares by explicit loops over subjects and raters."""
    n, k = len(ratings), len(ratings[0])
    grand = sum(sum(row) for row in ratings) / (n * k)
    subject_means = [sum(row) / k for row in ratings]
    rater_means = [sum(row[j] for row in ratings) / n for j in range(k)]
    ss_total = sum((v - grand) ** 2 for row in ratings for v in row)
    ss_subjects = k * sum((m - grand) ** 2 for m in subject_means)
    ss_raters = n * sum((m - grand) ** 2 for m in rater_means)
    ms_subjects, ms_raters = ss_subjects / (n - 1), ss_raters / (k - 1)
    ms_error = (ss_total - ss_subjects - ss_raters) / ((n - 1) * (k - 1))
    return (ms_subjects - ms_error) / (ms_subjects + (k - 1) * ms_error + k * (ms_raters - ms_error) / n)


def test_icc_of_anti_correlated_and_one_constant_series_is_the_textbook_value_not_a_crash():
    # anti-correlated: MSR = 0, MSC = 0, MSE = 10/3, so ICC(A,1) = -MSE / (MSE - 2/4 MSE) = -2 by hand
    anti = icc_agreement([1, 2, 3, 4], [4, 3, 2, 1])
    assert anti["icc"] == pytest.approx(-2.0) == pytest.approx(_icc_a1_from_anova_table([[1, 4], [2, 3], [3, 2],
                                                                                          [4, 1]]))
    assert anti["ci_low"] is None and anti["ci_high"] is None  # the F interval needs between-subject variance
    # one rater constant, the other not: defined (the ANOVA value), as Lin's CCC is (0 there)
    one_constant = icc_agreement([5, 5, 5, 5], [4, 5, 6, 7])
    assert one_constant["icc"] == pytest.approx(_icc_a1_from_anova_table([[5, 4], [5, 5], [5, 6], [5, 7]]))
    rng = np.random.default_rng(7)
    for _ in range(20):
        ratings = rng.normal(size=(int(rng.integers(3, 9)), int(rng.integers(2, 5)))).round(1)
        ratings[:, 1] = -ratings[:, 0] + rng.normal(scale=0.1, size=len(ratings))  # mostly anti-correlated
        result = icc_a1(ratings)
        assert result["icc"] == pytest.approx(_icc_a1_from_anova_table(ratings.tolist()), abs=1e-9)
        assert all(v is None or math.isfinite(v) for v in (result["ci_low"], result["ci_high"]))


def test_ccc_and_icc_are_undefined_for_the_same_reasons_never_1_0_or_nan():
    """Lin (1989) CCC = r * C_b needs the Pearson r; ICC(A,1) (McGraw & Wong 1996) is the share of variance between
    subjects. Without any variance, with an infinite value or with fewer than 3 pairs neither says anything about
    agreement: both are null with the same reason, never 1.0 (identical constants), 0 (different constants) or NaN."""
    cases = {
        "identical constants": ([2, 2, 2], [2, 2, 2], "no variance in either series"),
        "different constants": ([1, 1, 1], [2, 2, 2], "no variance in either series"),
        "an infinite prediction": ([1, 2, 3, 4], [1, 2, float("inf"), 4], "1 infinite value"),
        "infinite on both sides": ([1, float("-inf"), 3, 4], [1, 2, float("inf"), 4], "2 infinite values"),
        "two pairs": ([1, 2], [1.5, 2.5], "at least 3 needed"),
    }
    for name, (x, y, reason) in cases.items():
        c, i = concordance(x, y), icc_agreement(x, y)
        assert c["ccc"] is None and c["ci_low"] is None and reason in c["undefined"], name
        assert i["icc"] is None and i["ci_low"] is None and reason in i["undefined"], name
        assert c["undefined"] == i["undefined"], name
    matrix = np.array([[1.0, 2.0], [2.0, float("nan")], [3.0, 3.5], [4.0, 4.0]])
    assert icc_a1(matrix)["icc"] is None and "NaN" in icc_a1(matrix)["undefined"]
    assert icc_a1(np.array([[3.0, 3.0, 3.0]] * 4))["undefined"].startswith("no variance")
    # a missing measurement (None or NaN) is not an infinite one: dropped, counted, the rest is defined
    assert concordance([1, None, 3, 4, 6], [1, 5, 3, 4.5, float("nan")])["n"] == 3
    # one series constant and the other not: defined; Lin's formula gives 2 s_xy / (...) = 0, no CI
    varying = concordance([1.0, 1.0, 1.0, 1.0], [0.5, 1.0, 1.5, 2.0])
    assert varying["ccc"] == pytest.approx(0.0) and varying["undefined"] is None and varying["ci_low"] is None
    assert concordance([1, 2, 3], [1, 2, 3])["ccc"] == 1.0  # varying identical series: perfect agreement


def test_undefined_agreement_reads_undefined_with_its_reason_in_every_table(emidec_cases, tmp_path):
    """Three normal patients evaluated against themselves: scar 0 mL on both sides for each, no variance at all.
    The CCC and ICC of scar volume are undefined and every table says why (they read 1.0 before)."""
    from nnunetv2_scarnet.benchmark.budget_table import accuracy_lines
    from nnunetv2_scarnet.evaluation import comparison_rows

    folder = tmp_path / "normals"
    folder.mkdir()
    for case in ("Case_N012", "Case_N014", "Case_N016"):
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), folder / f"{case}.nii.gz")
    result = evaluate_folders(str(folder), str(folder), str(tmp_path / "out"), name="normals")
    s = result["summary"]
    for quantity in ("scar_ml", "scar_pct_lvm"):
        assert s[quantity]["concordance"]["ccc"] is None and s[quantity]["icc"]["icc"] is None
        assert s[quantity]["concordance"]["undefined"].startswith("no variance in either series")
    assert s["myocardium_ml"]["concordance"]["ccc"] == 1.0  # the myocardium varies between patients
    counts = s["transmurality"]["transmural_ge_50_count_per_case"]["concordance"]  # 0 segments > 50% everywhere
    assert counts["ccc"] is None and counts["undefined"].startswith("no variance")
    row = comparison_rows([result])[0]
    for key in ("scar_ml_ccc", "scar_pct_lvm_ccc", "scar_ml_icc", "scar_pct_lvm_icc"):
        assert row[key].startswith("undefined (no variance in either series"), key
    line = accuracy_lines([{"trainer": "t", "epoch_iterations": [2], "epochs": 1, "batch_size": 2,
                            "training_seconds": 1.0, "evaluation": s}])[-1]
    assert line.split("|")[-2].strip().startswith("undefined (no variance in either series")  # the %LVM CCC cell


def test_wilson_intervals_by_hand():
    # p = 0.5, n = 10: centre 0.5, half-width z/(1+z^2/n) sqrt(p(1-p)/n + z^2/(4n^2))
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 0) == (None, None)
    d = detection([True] * 9 + [False] * 3, [True] * 8 + [False] + [False, False, True])
    assert d["sensitivity"] == pytest.approx(8 / 9)
    assert (d["sensitivity_ci_low"], d["sensitivity_ci_high"]) == pytest.approx(wilson_interval(8, 9))
    assert (d["specificity_ci_low"], d["specificity_ci_high"]) == pytest.approx(wilson_interval(2, 3))


def test_icc_on_shrout_fleiss_1979_example():
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    icc = icc_a1(np.array(ratings))
    # Shrout & Fleiss (1979) table 4: ICC(2,1) = .29; McGraw & Wong F-based CI as irr::icc / psych::ICC
    assert icc["icc"] == pytest.approx(0.2898, abs=1e-4)
    assert (icc["ci_low"], icc["ci_high"]) == pytest.approx((0.0188, 0.7611), abs=1e-4)
    x = [10.0, 20.0, 30.0, 40.0]
    assert icc_agreement(x, x)["icc"] == 1.0
    shifted = icc_agreement(x, [v + 5 for v in x])  # a constant bias lowers absolute agreement, unlike Pearson
    assert 0 < shifted["icc"] < 1 and shifted["ci_low"] < shifted["icc"] < shifted["ci_high"]


def test_weighted_kappa_by_hand():
    a = ["none", "none", "low", "high", "high", "low"]
    b = ["none", "low", "low", "high", "low", "none"]
    order = ["none", "low", "high"]
    # observed: diagonal 3/6; 2 one-step and 1... disagreements: (none,low) (high,low) (low,none) = 3 one-step
    # linear weights 0.5 per step: observed disagreement 3 * 0.5 / 6 = 0.25; marginals a (2,2,2)/6, b (2,3,1)/6
    expected = sum(abs(i - j) / 2 * (2 / 6) * ([2, 3, 1][j] / 6) for i in range(3) for j in range(3))
    kappa = weighted_kappa(a, b, order, "linear")
    assert kappa["kappa"] == pytest.approx(1 - 0.25 / expected)
    from sklearn.metrics import cohen_kappa_score
    x, y = [0, 1, 2, 2, 1, 0, 3, 3, 2, 1], [0, 2, 2, 1, 1, 0, 3, 2, 2, 0]
    for w in ("linear", "quadratic"):
        assert weighted_kappa(x, y, weights=w)["kappa"] == pytest.approx(cohen_kappa_score(x, y, weights=w))
    assert weighted_kappa(x, y, weights="none")["kappa"] == pytest.approx(cohen_kappa_score(x, y))
    assert weighted_kappa(x, x, weights="quadratic")["kappa"] == 1.0
    assert weighted_kappa([1, 1], [1, 1], [0, 1, 2])["kappa"] is None  # no expected disagreement: undefined
    with pytest.raises(ValueError, match="weights"):
        weighted_kappa(x, y, weights="cubic")
    with pytest.raises(ValueError, match="not among the categories"):
        weighted_kappa([0, 5], [0, 1], [0, 1, 2])


def test_hd95_per_slice_and_the_3d_slice_coverage_effect(references):
    stack = read_label_stack(str(references / "Case_P004.nii.gz"))
    myo = stack.data >= 2
    a = np.zeros((20, 20, 2), bool)
    b = np.zeros((20, 20, 2), bool)
    a[5:10, 5:10, 0] = b[7:12, 5:10, 0] = True  # slice 0: shifted 2 voxels (3 mm), as in test_hd95_by_hand
    a[5:10, 5:10, 1] = b[5:10, 5:10, 1] = True  # slice 1: identical
    assert hd95_per_slice(a, b, (1.5, 1.0, 10.0)) == pytest.approx([3.0, 0.0])
    # a prediction that misses the apical slice is perfect in 2D but the 3D HD95 sees a whole slice step
    last = max(k for k in range(myo.shape[2]) if myo[..., k].any())
    missing = myo.copy()
    missing[..., last] = False
    per_slice = hd95_per_slice(missing, myo, stack.spacing)
    assert all(d == 0.0 for d in per_slice if d is not None) and per_slice[last] is None
    assert hd95(missing, myo, stack.spacing) >= 0.5 * stack.spacing[2]


def _write(folder, case, data, like):
    nib.save(nib.Nifti1Image(data.astype(np.uint8), like.affine, like.header), folder / f"{case}.nii.gz")


def test_no_myocardium_presence_size_and_mvo(references, tmp_path):
    predictions = tmp_path / "pred"
    predictions.mkdir()
    for case in CASES:
        image = nib.load(references / f"{case}.nii.gz")
        label = np.asarray(image.dataobj).copy()
        if case == "Case_N012":
            label[label >= 2] = 0  # no myocardium at all
        if case == "Case_N014":
            myo = np.argwhere(label == 2)
            label[tuple(myo[0])] = 3  # one scar voxel is not "scar present"
        label[label == 4] = 3  # MVO called scar
        _write(predictions, case, label, image)
    result = evaluate_folders(str(predictions), str(references), str(tmp_path / "out"), name="mvo")
    cases = {c["case"]: c for c in result["cases"]}
    assert cases["Case_N012"]["scar_pct_lvm_prediction"] is None  # as quantify says, not 0.0
    quantify_says = patient_volumes(read_label_stack(str(predictions / "Case_N012.nii.gz")), LabelScheme())
    assert quantify_says["scar_pct_lvm"] is None
    s = result["summary"]
    assert s["scar_pct_lvm"]["n_undefined"] == 1 and s["scar_pct_lvm"]["concordance"]["n"] == len(CASES) - 1
    assert cases["Case_N014"]["scar_ml_prediction"] > 0 and not cases["Case_N014"]["scar_present_prediction"]
    assert s["scar_presence_patient"]["specificity"] == 1.0 and s["scar_presence_patient"]["sensitivity"] == 1.0
    assert s["scar_presence_patient"]["specificity_ci_low"] == pytest.approx(wilson_interval(2, 2)[0])
    with_mvo = [c for c in CASES if (np.asarray(nib.load(references / f"{c}.nii.gz").dataobj) == 4).any()]
    assert len(with_mvo) >= 3
    # a model whose dataset.json declares an MVO label, and that found none, says 0 mL and Dice 0
    with_mvo_labels = {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3, "mvo": 4}
    (predictions / "dataset.json").write_text(json.dumps({"labels": with_mvo_labels, "file_ending": ".nii.gz"}))
    declared = evaluate_folders(str(predictions), str(references), None, name="declared", transmurality=False)
    # the (undeclared) references carry MVO per patient: where their label map holds value 4
    for c in declared["cases"]:
        if c["case"] in with_mvo:
            assert c["mvo_status"] == "assessed" and c["dice_mvo"] == 0.0 and c["mvo_ml_prediction"] == 0.0
        else:
            assert c["mvo_status"].startswith("not_assessed (the reference does not carry MVO")
    assert declared["summary"]["mvo_status"] == f"assessed in {len(with_mvo)} of {len(CASES)} cases"
    # declared on both sides (--dataset-json): every patient, 0 mL and Dice undefined where neither has MVO
    both = evaluate_folders(str(predictions), str(references), None, name="declared", transmurality=False,
                            scheme=LabelScheme.from_dataset_json(str(predictions / "dataset.json")))
    os.remove(predictions / "dataset.json")
    for c in both["cases"]:
        assert c["mvo_status"] == "assessed"
        assert c["dice_mvo"] == (0.0 if c["case"] in with_mvo else None) and c["mvo_ml_prediction"] == 0.0
    ba = both["summary"]["mvo_ml"]["bland_altman"]
    assert ba["bias"] == pytest.approx(-np.mean([c["mvo_ml_reference"] for c in both["cases"]]))
    assert both["summary"]["dice_mvo_patient"]["both_empty"] == len(CASES) - len(with_mvo)
    # without a dataset.json and without any MVO voxel (the converter's default labels) MVO is not assessed
    # MVO merged into scar on the prediction side (its dataset.json has no mvo label, or --mvo-merged): MVO is not
    # assessed, null and out of the MVO statistics, never 0 mL or Dice 0
    merged_labels = {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3}
    (predictions / "dataset.json").write_text(json.dumps({"labels": merged_labels, "file_ending": ".nii.gz"}))
    merged = evaluate_folders(str(predictions), str(references), str(tmp_path / "merged"), name="merged")
    os.remove(predictions / "dataset.json")
    from nnunetv2_scarnet.cli import main  # --mvo-merged: the same, without a dataset.json

    assert main(["evaluate", str(predictions), str(references), str(tmp_path / "flag"), "--mvo-merged"]) == 0
    flagged = json.loads((tmp_path / "flag" / "evaluation.json").read_text())
    for result_merged in (result, merged, flagged):
        sm = result_merged["summary"]
        assert sm["mvo_status"].startswith("not_assessed")
        assert not {"dice_mvo_patient", "dice_mvo_slice", "mvo_ml", "mvo_pct_lvm", "mvo_pct_infarct"} & set(sm)
        for c in result_merged["cases"]:
            assert c["mvo_status"].startswith("not_assessed")
            if c["case"] not in with_mvo:  # no MVO in this patient's reference: no MVO columns
                assert "mvo_ml_reference" not in c and "dice_mvo" not in c
                continue
            assert c["dice_mvo"] is None and c["mvo_ml_prediction"] is None
            assert c["mvo_pct_lvm_prediction"] is None and c["mvo_pct_infarct_prediction"] is None
            assert all(sl["dice_mvo"] is None for sl in c["slices"])
            assert c["mvo_ml_reference"] == cases[c["case"]]["mvo_ml_reference"]  # the reference is still reported
        assert sm["scar_ml"] == s["scar_ml"]  # the rest is unchanged
    assert merged["prediction_label_scheme_file"] == str(predictions / "dataset.json")
    import csv

    rows = {r["case"]: r for r in csv.DictReader(open(tmp_path / "merged" / "cases.csv"))}
    assert rows[with_mvo[0]]["mvo_ml_prediction"] == ""  # empty cell, not 0.0
    assert s["scar_ml"]["icc"]["icc"] == pytest.approx(1.0) and s["scar_pct_lvm"]["icc"]["ci_low"] is not None
    assert "20 mm^2" in result["scar_presence_rule"]
    # a 20 mm^2 scar region is present
    image = nib.load(references / "Case_N014.nii.gz")
    label = np.asarray(image.dataobj).copy()
    area = float(np.prod(image.header.get_zooms()[:2]))
    n = int(np.ceil(20 / area))  # a line of n pixels covers >= 20 mm^2, one pixel less < 20 mm^2
    label[label == 3] = 2
    label[10, 10:10 + n, 3] = 3
    _write(predictions, "Case_N014", label, image)
    again = evaluate_folders(str(predictions), str(references), None, name="blob")
    assert [c for c in again["cases"] if c["case"] == "Case_N014"][0]["scar_present_prediction"]
    label[10, 10 + n - 1, 3] = 2
    assert (label == 3).sum() * area < 20
    _write(predictions, "Case_N014", label, image)
    again = evaluate_folders(str(predictions), str(references), None, name="blob")
    assert not [c for c in again["cases"] if c["case"] == "Case_N014"][0]["scar_present_prediction"]


def test_label_names_keep_their_digits(references, tmp_path):
    assert case_id_of("Heart_0001.nii.gz") == "Heart_0001" and case_id_of("x/Heart_0002_0000.nii.gz",
                                                                            image=True) == "Heart_0002"
    with pytest.raises(ValueError, match="channel suffix"):
        case_id_of("Heart.nii.gz", image=True)
    ref, pred = tmp_path / "heart_ref", tmp_path / "heart_pred"
    ref.mkdir()
    pred.mkdir()
    for i, case in enumerate(["Case_P001", "Case_N012"], start=1):
        for folder in (ref, pred):
            os.symlink(references / f"{case}.nii.gz", folder / f"Heart_{i:04d}.nii.gz")
    result = evaluate_folders(str(pred), str(ref), str(tmp_path / "out"), name="heart")
    assert [c["case"] for c in result["cases"]] == ["Heart_0001", "Heart_0002"]
    assert result["cases"][0]["scar_ml_reference"] > 0 and result["cases"][1]["scar_ml_reference"] == 0


def test_mvo_percentages_of_lvm_and_infarct(references, tmp_path):
    """Both sides carry MVO: MVO % LVM and % of infarct per case, as `quantify` computes them, and their agreement."""
    predictions = tmp_path / "pred"
    predictions.mkdir()
    changed = None
    for case in CASES:
        image = nib.load(references / f"{case}.nii.gz")
        label = np.asarray(image.dataobj).copy()
        if changed is None and (label == 4).sum() > 10:
            mvo = np.argwhere(label == 4)
            label[tuple(mvo[: len(mvo) // 2].T)] = 3  # half the MVO called scar: MVO % falls, infarct unchanged
            changed = case
        _write(predictions, case, label, image)
    assert changed
    declaration = tmp_path / "dataset.json"  # MVO declared for both sides: assessed in every patient
    declaration.write_text(json.dumps({"labels": {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3,
                                                  "mvo": 4}}))
    result = evaluate_folders(str(predictions), str(references), str(tmp_path / "out"), name="pct",
                              scheme=LabelScheme.from_dataset_json(str(declaration)))
    differences = {}
    for c in result["cases"]:
        assert c["mvo_status"] == "assessed"
        for side, folder in (("reference", references), ("prediction", predictions)):
            quantify_says = patient_volumes(read_label_stack(str(folder / f"{c['case']}.nii.gz")), LabelScheme(),
                                            mvo_assessed=True)  # as quantify with the declaration
            for key in ("mvo_pct_lvm", "mvo_pct_infarct"):
                assert c[f"{key}_{side}"] == pytest.approx(quantify_says[key]) if quantify_says[key] is not None \
                    else c[f"{key}_{side}"] is None, (c["case"], key, side)
        for key in ("mvo_pct_lvm", "mvo_pct_infarct"):
            if c[f"{key}_reference"] is not None:
                differences.setdefault(key, []).append(c[f"{key}_prediction"] - c[f"{key}_reference"])
    c = [c for c in result["cases"] if c["case"] == changed][0]
    assert 0 < c["mvo_pct_lvm_prediction"] < c["mvo_pct_lvm_reference"]
    assert c["mvo_pct_infarct_prediction"] == pytest.approx(c["mvo_pct_infarct_reference"] / 2, rel=0.05)
    assert c["mvo_pct_lvm_reference"] == pytest.approx(100 * c["mvo_ml_reference"] / c["myocardium_ml_reference"])
    assert c["mvo_pct_infarct_reference"] == pytest.approx(100 * c["mvo_ml_reference"] / c["scar_ml_reference"])
    s = result["summary"]
    for key in ("mvo_pct_lvm", "mvo_pct_infarct"):
        assert s[key]["bland_altman"]["bias"] == pytest.approx(np.mean(differences[key]))
        assert s[key]["bland_altman"]["bias"] < 0
    # the normals have no scar: MVO % of infarct is undefined (null), not 0
    assert s["mvo_pct_infarct"]["n_undefined"] == sum(c["scar_ml_reference"] == 0 for c in result["cases"]) >= 2
    header = open(tmp_path / "out" / "cases.csv").readline().strip().split(",")
    assert {"mvo_pct_lvm_reference", "mvo_pct_lvm_prediction", "mvo_pct_infarct_reference",
            "mvo_pct_infarct_prediction", "mvo_status"} <= set(header)


def test_one_patient_draws_its_agreement_plots(emidec_cases, tmp_path):
    """With one patient there are no limits of agreement (null); the plots are still drawn, without those lines
    (the demo evaluates its held-out phantoms this way)."""
    folder = tmp_path / "one"
    folder.mkdir()
    os.symlink(os.path.join(emidec_cases, "Case_P004", "label.nii.gz"), folder / "Case_P004.nii.gz")
    result = evaluate_folders(str(folder), str(folder), str(tmp_path / "out"), name="one")
    assert result["summary"]["scar_ml"]["bland_altman"]["loa_low"] is None
    assert (tmp_path / "out" / "agreement_scar_ml.png").stat().st_size > 0
