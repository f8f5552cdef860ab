"""MVO is reported as assessed only when the labels declare it (a dataset.json names an MVO label) or carry it (value 4
occurs): the converter's default label folder (MVO merged into scar, no dataset.json next to the labels) must give
"not assessed" in `quantify` and `evaluate`, never 0 mL."""
import csv
import json
import os

import numpy as np
import nibabel as nib
import pytest

from nnunetv2_scarnet.cli import main
from nnunetv2_scarnet.data.emidec import convert_emidec

CASES = ["Case_N012", "Case_N014", "Case_P002", "Case_P004"]


@pytest.fixture(scope="module")
def converted(emidec_cases, tmp_path_factory):
    """The converter's default output (MVO merged) and the --keep-mvo output of the same four patients."""
    raw = tmp_path_factory.mktemp("raw")
    merged = convert_emidec(emidec_cases, str(raw), 901, "Merged", cases=CASES, num_folds=2)
    kept = convert_emidec(emidec_cases, str(raw), 902, "Kept", cases=CASES, num_folds=2, merge_mvo=False)
    return os.path.join(merged, "labelsTr"), os.path.join(kept, "labelsTr")


def _patients_csv(folder):
    with open(os.path.join(folder, "patients.csv")) as f:
        return list(csv.DictReader(f))


def test_quantify_reports_mvo_not_assessed_for_the_converters_default_labels(converted, emidec_cases, tmp_path):
    merged, kept = converted
    assert not os.path.exists(os.path.join(merged, "dataset.json"))  # as the converter leaves its label folder
    # the expert labels hold MVO (value 4) in Case_P002: the merged folder must not read as "MVO 0 mL"
    assert (np.asarray(nib.load(os.path.join(emidec_cases, "Case_P002", "label.nii.gz")).dataobj) == 4).any()
    assert main(["quantify", merged, str(tmp_path / "q_merged"), "--no-pictures"]) == 0
    report = json.loads((tmp_path / "q_merged" / "report.json").read_text())
    for case in report["cases"]:
        p = case["patient"]
        assert p["mvo_status"].startswith("not_assessed") and "dataset.json" in p["mvo_status"]
        assert p["mvo_ml"] is None and p["mvo_pct_lvm"] is None and p["mvo_pct_infarct"] is None
    assert report["mvo_status"].startswith("not_assessed")
    assert all(row["mvo_ml"] == "" for row in _patients_csv(tmp_path / "q_merged"))
    # --keep-mvo labels carry value 4: assessed for every case of the folder, 0 mL where a patient has none
    assert main(["quantify", kept, str(tmp_path / "q_kept"), "--no-pictures"]) == 0
    cases = {c["case"]: c["patient"] for c in json.loads((tmp_path / "q_kept" / "report.json").read_text())["cases"]}
    manifest = {p["patient_id"]: p for p in
                json.load(open(os.path.join(os.path.dirname(emidec_cases), "manifest.json")))["patients"]}
    for case, p in cases.items():
        assert p["mvo_status"] == "assessed"
        assert p["mvo_ml"] == pytest.approx(manifest[case]["volumes"]["mvo_ml"], abs=0.1)
    assert cases["Case_N012"]["mvo_ml"] == 0.0 and cases["Case_P002"]["mvo_ml"] > 0
    # a dataset.json naming an MVO label declares it, even when no patient of the folder has any MVO
    declared = tmp_path / "declared"
    declared.mkdir()
    for case in ("Case_N012", "Case_N014"):
        os.symlink(os.path.join(merged, f"{case}.nii.gz"), declared / f"{case}.nii.gz")
    (declared / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3, "mvo": 4}}))
    assert main(["quantify", str(declared), str(tmp_path / "q_declared"), "--no-pictures"]) == 0
    for case in json.loads((tmp_path / "q_declared" / "report.json").read_text())["cases"]:
        assert case["patient"]["mvo_status"] == "assessed" and case["patient"]["mvo_ml"] == 0.0


def test_evaluate_says_mvo_not_assessed_for_the_converters_default_labels(converted, emidec_cases, tmp_path,
                                                                           capsys):
    merged, kept = converted
    experts = tmp_path / "experts"  # EMIDEC expert labels, with MVO (value 4)
    experts.mkdir()
    for case in CASES:
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), experts / f"{case}.nii.gz")
    # merged predictions against expert references: the predictions carry no MVO
    assert main(["evaluate", merged, str(experts), str(tmp_path / "e1")]) == 0
    printed = capsys.readouterr().out
    assert "MVO: not_assessed" in printed and "MVO: assessed" not in printed
    result = json.loads((tmp_path / "e1" / "evaluation.json").read_text())
    assert "mvo_ml" not in result["summary"]
    for c in result["cases"]:
        assert c["mvo_status"].startswith("not_assessed") and c["mvo_ml_prediction"] is None
        assert c["dice_mvo"] is None
    # merged labels on both sides (the converter's default labelsTr as references): nothing to assess either
    assert main(["evaluate", merged, merged, str(tmp_path / "e2")]) == 0
    assert "MVO: not_assessed" in capsys.readouterr().out
    result = json.loads((tmp_path / "e2" / "evaluation.json").read_text())
    assert all(c["mvo_status"].startswith("not_assessed (the references") for c in result["cases"])
    assert all("mvo_ml_reference" not in c for c in result["cases"])
    # --keep-mvo predictions (value 4 occurs) against the experts: assessed, identical labels give Dice 1
    assert main(["evaluate", kept, str(experts), str(tmp_path / "e3")]) == 0
    assert "MVO: assessed" in capsys.readouterr().out
    result = json.loads((tmp_path / "e3" / "evaluation.json").read_text())
    assert result["summary"]["dice_mvo_patient"]["median"] == 1.0
