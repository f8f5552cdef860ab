"""MVO is reported as assessed only when the labels declare it (a dataset.json names an MVO label) or carry it (value 4
occurs in the patient's own label map): the converter's default label folder (MVO merged into scar, no dataset.json
next to the labels) must give "not assessed" in `quantify` and `evaluate`, never 0 mL; and a patient's MVO status
never depends on the other patients of the run."""
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
    # --keep-mvo labels with the dataset's dataset.json (it names label 4 "mvo"): assessed for every case, 0 mL where
    # a patient has none
    declaration = os.path.join(os.path.dirname(kept), "dataset.json")
    assert main(["quantify", kept, str(tmp_path / "q_kept"), "--no-pictures", "--dataset-json", declaration]) == 0
    cases = {c["case"]: c["patient"] for c in json.loads((tmp_path / "q_kept" / "report.json").read_text())["cases"]}
    manifest = {p["patient_id"]: p for p in
                json.load(open(os.path.join(os.path.dirname(emidec_cases), "manifest.json")))["patients"]}
    for case, p in cases.items():
        assert p["mvo_status"] == "assessed"
        assert p["mvo_ml"] == pytest.approx(manifest[case]["volumes"]["mvo_ml"], abs=0.1)
    assert cases["Case_N012"]["mvo_ml"] == 0.0 and cases["Case_P002"]["mvo_ml"] > 0
    # without the declaration each patient's own label map decides: value 4 in Case_P002 only
    assert main(["quantify", kept, str(tmp_path / "q_undeclared"), "--no-pictures"]) == 0
    report = json.loads((tmp_path / "q_undeclared" / "report.json").read_text())
    cases = {c["case"]: c["patient"] for c in report["cases"]}
    assert cases["Case_P002"]["mvo_status"] == "assessed" and cases["Case_P002"]["mvo_ml"] > 0
    assert cases["Case_N012"]["mvo_status"].startswith("not_assessed") and cases["Case_N012"]["mvo_ml"] is None
    assert report["mvo_status"] == "assessed in 1 of 4 cases (decided per patient)"
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
        # the normals' references hold no MVO either (no MVO columns); Case_P002's prediction has none
        assert c["mvo_status"].startswith("not_assessed") and c.get("mvo_ml_prediction") is None
        assert c.get("dice_mvo") is None
    # merged labels on both sides (the converter's default labelsTr as references): nothing to assess either
    assert main(["evaluate", merged, merged, str(tmp_path / "e2")]) == 0
    assert "MVO: not_assessed" in capsys.readouterr().out
    result = json.loads((tmp_path / "e2" / "evaluation.json").read_text())
    assert all(c["mvo_status"].startswith("not_assessed (the reference does not") for c in result["cases"])
    assert all("mvo_ml_reference" not in c for c in result["cases"])
    # --keep-mvo predictions against the experts: assessed where both carry value 4 (Case_P002), identical labels
    # give Dice 1; with the dataset's declaration for every patient
    assert main(["evaluate", kept, str(experts), str(tmp_path / "e3")]) == 0
    assert "MVO: assessed in 1 of 4 cases" in capsys.readouterr().out
    result = json.loads((tmp_path / "e3" / "evaluation.json").read_text())
    assert result["summary"]["dice_mvo_patient"]["median"] == 1.0
    declaration = os.path.join(os.path.dirname(kept), "dataset.json")
    assert main(["evaluate", kept, str(experts), str(tmp_path / "e4"), "--dataset-json", declaration]) == 0
    assert "MVO: assessed\n" in capsys.readouterr().out


def _mvo_of(report_json, case):
    cases = {c["case"]: c for c in json.loads(report_json.read_text())["cases"]}
    return cases[case]


def test_a_patients_mvo_status_does_not_depend_on_the_other_patients_of_the_run(emidec_cases, tmp_path, capsys):
    """Issue 20 item 13: a normal patient quantified alone read MVO "not assessed", beside a patient with MVO (value 4
    in the expert labels, no dataset.json) "0.00 mL". Run the CLI on the same normal patient alone and beside an MVO
    patient, for `quantify` and `evaluate`, undeclared and declared: its MVO answer is the same each time."""
    alone, beside = tmp_path / "alone", tmp_path / "beside"
    for folder, cases in ((alone, ["Case_N012"]), (beside, ["Case_N012", "Case_P002"])):
        folder.mkdir()
        for case in cases:
            os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), folder / f"{case}.nii.gz")
    assert (np.asarray(nib.load(beside / "Case_P002.nii.gz").dataobj) == 4).any()
    labels = tmp_path / "dataset.json"
    labels.write_text(json.dumps({"labels": {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3, "mvo": 4}}))
    for declared in ([], ["--dataset-json", str(labels)]):
        seen = []
        for folder in (alone, beside):
            out = tmp_path / f"q_{folder.name}_{len(declared)}"
            assert main(["quantify", str(folder), str(out), "--no-pictures"] + declared) == 0
            p = _mvo_of(out / "report.json", "Case_N012")["patient"]
            seen.append((p["mvo_status"], p["mvo_ml"], p["mvo_pct_lvm"]))
        assert seen[0] == seen[1], (declared, seen)
        assert seen[0][1] == (0.0 if declared else None)  # declared: 0 mL; undeclared: not assessed
        seen = []
        for folder in (alone, beside):
            out = tmp_path / f"e_{folder.name}_{len(declared)}"
            assert main(["evaluate", str(folder), str(folder), str(out)] + declared) == 0
            c = json.loads((out / "evaluation.json").read_text())
            case = {c["case"]: c for c in c["cases"]}["Case_N012"]
            seen.append((case["mvo_status"], case.get("mvo_ml_prediction"), case.get("dice_mvo")))
        assert seen[0] == seen[1], (declared, seen)
        assert seen[0][0] == "assessed" if declared else seen[0][0].startswith("not_assessed")
    capsys.readouterr()
