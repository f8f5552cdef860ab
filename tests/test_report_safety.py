"""`scarnet report` patient safety (issue 13): unique output names, one run per output folder, OUT_DIR checked
first, checkpoints loaded without pickle execution, labels mapped by name, patient names of NIfTI folders, the
`--inversion-time` / `--image-type` choice, clear messages for a bad model folder, and no leftovers.

The model folder is built without training and, where a test needs a segmentation, `ring_prediction` stands in
for the network (tests/report_helpers.py)."""
import json
import os
import shutil
import subprocess
import sys
import threading

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from dicom_helpers import write_series
from report_helpers import EMIDEC_LABELS, build_model_folder, ring_prediction
from nnunetv2_scarnet.cli import main
from nnunetv2_scarnet.quantification import LabelScheme
from nnunetv2_scarnet.report import pipeline
from nnunetv2_scarnet.report.inputs import resolve_inputs
from nnunetv2_scarnet.report.predict import ReportPredictor

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("cheap") / "nnUNetTrainer__nnUNetPlans__2d")


def dicom_patient(emidec_cases, folder, case, name, slices=(2, 3, 4)):
    """A DICOM series of a real EMIDEC image (three slices) with its own PatientName / PatientID."""
    paths = write_series(os.path.join(emidec_cases, case, "image.nii.gz"), str(folder), slices=list(slices))
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID = f"{name}^Test", f"ID-{name}"
        ds.save_as(path)
    return str(pydicom.dcmread(paths[0]).SeriesInstanceUID)


def last_line(err):
    """The last line of stderr (progress bars redraw with carriage returns)."""
    return err.strip().splitlines()[-1].split("\r")[-1]


def run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


# ---------------------------------------------------------------- item 1: unique names, private work folders
NAME_ROWS = {
    "dicom_P_P_and_an_input_called_P_2": (["a/P/", "b/P/", "c/P_2/"], ["P", "P_3", "P_2"]),
    "nifti_P_P_and_an_input_called_P_2": (["a/P.nii.gz", "b/P.nii.gz", "c/P_2.nii.gz"], ["P", "P_3", "P_2"]),
    "input_P_2_before_the_duplicates": (["c/P_2/", "a/P/", "b/P/"], ["P_2", "P", "P_3"]),
    "names_differing_only_in_case": (["a/P/", "b/p/"], ["P", "p_2"]),
}


@pytest.mark.parametrize("row", sorted(NAME_ROWS))
def test_output_names_are_unique_by_construction(row, emidec_cases, tmp_path):
    paths, expected = NAME_ROWS[row]
    image = os.path.join(emidec_cases, "Case_N012", "image.nii.gz")
    for path in paths:
        full = tmp_path / path
        if path.endswith("/"):
            full.mkdir(parents=True)
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(image, full)
    names = [p.name for p in resolve_inputs([str(tmp_path / p) for p in paths])]
    assert names == expected and len({n.lower() for n in names}) == len(names)


def test_colliding_names_never_mix_patients(model, emidec_cases, tmp_path, monkeypatch):
    """Three patients whose folders are called P, P and P_2: each report, input stack and DICOM SEG belongs to the
    patient of its source folder (before: two patients shared `.P_2.partial`, one report over another's image)."""
    monkeypatch.setattr(ReportPredictor, "predict", ring_prediction)
    cases = {"ALPHA": ("a/P", "Case_N012"), "BRAVO": ("b/P", "Case_P001"), "CHARLIE": ("c/P_2", "Case_P002")}
    uids = {name: dicom_patient(emidec_cases, tmp_path / folder, case, name)
            for name, (folder, case) in cases.items()}
    out = tmp_path / "out"
    assert pipeline.run_report([str(tmp_path / f) for f, _ in cases.values()], model, str(out), device="cpu",
                               mirroring=False) == 0
    folders = sorted(f for f in os.listdir(out) if not f.startswith("."))
    assert folders == ["P", "P_2", "P_3", "cohort.csv"]
    for folder in ("P", "P_2", "P_3"):
        report = json.load(open(out / folder / f"{folder}_report.json"))
        name = [n for n, (f, _) in cases.items() if str(tmp_path / f) == report["source"]][0]
        assert report["identifiers"]["PatientName"] == f"{name}^Test"
        assert report["identifiers"]["SeriesInstanceUID"] == uids[name]
        seg = pydicom.dcmread(out / folder / f"{folder}_seg.dcm")
        assert str(seg.PatientName) == f"{name}^Test"
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uids[name]
        original = np.asarray(nib.load(os.path.join(emidec_cases, cases[name][1], "image.nii.gz")).dataobj)
        converted = np.asarray(nib.load(out / folder / "input" / f"{folder}_0000.nii.gz").dataobj)
        # orientation-free comparison of the voxel values with the three slices written for this patient
        assert np.array_equal(np.sort(converted.ravel()), np.sort(original[..., 2:5].astype(np.int16).ravel()))


# ---------------------------------------------------------------- item 2: one run per output folder
def test_second_concurrent_run_is_refused(model, emidec_cases, tmp_path, monkeypatch, capsys):
    """Run A holds OUT_DIR while it predicts; run B into the same folder is refused with one message and exit 2,
    writes nothing there; A then finishes with its own patient (before: B ran too and the patients were mixed)."""
    first_started, release = threading.Event(), threading.Event()

    def slow_for_first_run(self, image_path, out_seg_path, on_member=None):
        if threading.current_thread().name == "run-A":
            first_started.set()
            release.wait(120)
        return ring_prediction(self, image_path, out_seg_path, on_member)

    monkeypatch.setattr(ReportPredictor, "predict", slow_for_first_run)
    dicom_patient(emidec_cases, tmp_path / "alpha" / "P", "Case_N012", "ALPHA")
    dicom_patient(emidec_cases, tmp_path / "bravo" / "P", "Case_P001", "BRAVO")
    out = tmp_path / "out"
    result = {}
    run_a = threading.Thread(name="run-A", target=lambda: result.update(a=pipeline.run_report(
        [str(tmp_path / "alpha" / "P")], model, str(out), device="cpu", mirroring=False)))
    run_a.start()
    try:
        assert first_started.wait(120)
        before = sorted(os.listdir(out))
        code, err = run_cli(["report", str(tmp_path / "bravo" / "P"), "--model", model, str(out), "--device", "cpu",
                             "--disable-mirroring"], capsys)
        assert code == 2 and "in use by another scarnet run" in err and str(out) in err
        assert last_line(err).startswith(f"scarnet report: {out}: output folder is in use") and "Traceback" not in err
        assert sorted(os.listdir(out)) == before
    finally:
        release.set()
        run_a.join(120)
    assert result["a"] == 0
    report = json.load(open(out / "P" / "P_report.json"))
    assert report["identifiers"]["PatientName"] == "ALPHA^Test"


def test_lock_holds_across_processes_and_is_released_when_a_run_ends(tmp_path):
    from nnunetv2_scarnet.io_safety import OutputDirLock, OutputPathError

    out = str(tmp_path / "out")
    other = [sys.executable, "-c", "import sys; from nnunetv2_scarnet.io_safety import OutputDirLock; "
             "OutputDirLock(sys.argv[1]).release()", out]
    with OutputDirLock(out):
        with pytest.raises(OutputPathError, match="in use"):
            OutputDirLock(out)
        refused = subprocess.run(other, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "in use by another scarnet run (process" in refused.stderr
    assert subprocess.run(other, capture_output=True, text=True, timeout=60).returncode == 0  # free again


# ---------------------------------------------------------------- item 3 and 14: OUT_DIR and model folder refused
def _foreign(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cohort.csv").write_text("someone's table\n")
    return out, "not empty and was not written by scarnet"


def _file(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file")
    return out, "output folder is a file"


def _read_only(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out, "output folder is not writable"


OUT_DIR_ROWS = {"foreign_non_empty_folder": _foreign, "out_dir_is_a_file": _file, "read_only_folder": _read_only}


@pytest.mark.parametrize("row", sorted(OUT_DIR_ROWS))
def test_output_folder_is_checked_before_anything_is_loaded(row, model, emidec_cases, tmp_path, monkeypatch,
                                                           capsys):
    out, expected = OUT_DIR_ROWS[row](tmp_path)
    if row == "read_only_folder":  # as root every folder is writable: make os.access tell the truth of a chmod 555
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == str(out)
                            else real_access(p, mode, **kw))
    loaded = []

    def load_model(self, *args, **kwargs):
        loaded.append(args)
        raise AssertionError("the model was loaded before OUT_DIR was checked")

    monkeypatch.setattr(ReportPredictor, "__init__", load_model)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.is_dir() else out.read_bytes()
    code, err = run_cli(["report", os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), "--model", model,
                         str(out), "--device", "cpu"], capsys)
    assert code == 2 and expected in err and str(out) in err and len(err.strip().splitlines()) == 1
    assert not loaded  # refused before the model (or any input) was loaded
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.is_dir() else out.read_bytes()
    assert after == before


def test_output_folder_inside_an_input_folder_is_refused(model, emidec_cases, tmp_path, capsys):
    """A report written into a patient's folder would be read back as input, and its DICOM SEG into its source."""
    patient = tmp_path / "Case_N012"
    patient.mkdir()
    shutil.copy(os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), patient / "image.nii.gz")
    out = patient / "reports"
    code, err = run_cli(["report", str(patient), "--model", model, str(out), "--device", "cpu"], capsys)
    assert code == 2 and "inside the input folder" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and sorted(os.listdir(patient)) == ["image.nii.gz"]


def _plans_not_json(folder):
    (folder / "plans.json").write_text('{"configurations": {"2d": ')
    return "plans.json", "not valid JSON"


def _plans_without_architecture(folder):
    plans = json.loads((folder / "plans.json").read_text())
    del plans["configurations"]["2d"]["architecture"]
    (folder / "plans.json").write_text(json.dumps(plans))
    return "plans.json", "not usable nnU-Net plans"


def _checkpoint_truncated(folder):
    path = folder / "fold_0" / "checkpoint_final.pth"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return os.path.join("fold_0", "checkpoint_final.pth"), "not a PyTorch checkpoint"


def _checkpoint_plain_text(folder):
    (folder / "fold_0" / "checkpoint_final.pth").write_text("{}\n")
    return os.path.join("fold_0", "checkpoint_final.pth"), "not a PyTorch checkpoint"


def _checkpoint_without_weights(folder):
    torch.save({"epoch": 3}, folder / "fold_0" / "checkpoint_final.pth")
    return os.path.join("fold_0", "checkpoint_final.pth"), "not an nnU-Net checkpoint"


MODEL_ROWS = {"plans_not_json": _plans_not_json, "plans_without_architecture": _plans_without_architecture,
              "checkpoint_truncated": _checkpoint_truncated, "checkpoint_plain_text": _checkpoint_plain_text,
              "checkpoint_without_weights": _checkpoint_without_weights}


@pytest.mark.parametrize("row", sorted(MODEL_ROWS))
def test_bad_model_folder_is_one_message_naming_the_file_and_leaves_no_out_dir(row, model, emidec_cases, tmp_path,
                                                                              capsys):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    name, expected = MODEL_ROWS[row](folder)
    out = tmp_path / "out"
    code, err = run_cli(["report", os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), "--model", str(folder),
                         str(out), "--device", "cpu"], capsys)
    assert code == 2 and expected in err and str(folder / name) in err, err
    assert last_line(err).startswith("scarnet report: ") and expected in last_line(err) and "Traceback" not in err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_gpu_leaves_no_out_dir(model, emidec_cases, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(["report", os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), "--model", model,
                         str(out), "--device", "cuda"], capsys)
    assert code == 2 and "no CUDA device" in err
    assert not out.exists()


# ---------------------------------------------------------------- item 9: checkpoints never run code
class CreatesAFile:
    """Unpickling this object opens (creates) `path`: the stand-in for code hidden in a checkpoint."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def hostile_model(model, tmp_path):
    folder = tmp_path / "hostile" / "nnUNetTrainer__nnUNetPlans__2d"
    shutil.copytree(model, folder)
    marker = tmp_path / "code_was_run"
    checkpoint = torch.load(os.path.join(model, "fold_0", "checkpoint_final.pth"), weights_only=False)  # our own
    checkpoint["logging"]["note"] = CreatesAFile(str(marker))
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    assert not marker.exists()
    return str(folder), marker


def test_checkpoint_with_code_is_refused_by_report(hostile_model, emidec_cases, tmp_path, capsys):
    folder, marker = hostile_model
    out = tmp_path / "out"
    code, err = run_cli(["report", os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), "--model", folder,
                         str(out), "--device", "cpu"], capsys)
    assert code == 2 and "--trust-model" in err and "checkpoint_final.pth" in err and "io.open" in err
    assert not marker.exists() and not out.exists()
    ReportPredictor(folder, ["0"], device="cpu", trust_model=True)  # the user's explicit choice: loaded as nnU-Net
    assert marker.exists()


def test_checkpoint_with_code_is_refused_by_noise(hostile_model, emidec_cases, tmp_path, capsys):
    folder, marker = hostile_model
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    shutil.copy(os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), images / "Case_N012_0000.nii.gz")
    shutil.copy(os.path.join(emidec_cases, "Case_N012", "label.nii.gz"), labels / "Case_N012.nii.gz")
    out = tmp_path / "out"
    code, err = run_cli(["noise", "--model", f"m={folder}", str(images), str(labels), str(out), "--snr", "10",
                         "--repeats", "1"], capsys)
    assert code == 2 and "--trust-model" in err and "checkpoint_final.pth" in err
    assert not marker.exists() and not out.exists()


def test_nnunet_checkpoint_loads_without_trust(model):
    from nnunetv2_scarnet.model_loading import load_checkpoint

    checkpoint = load_checkpoint(os.path.join(model, "fold_0", "checkpoint_final.pth"))
    assert checkpoint["trainer_name"] == "nnUNetTrainer" and isinstance(checkpoint["init_args"]["device"],
                                                                         torch.device)


# ---------------------------------------------------------------- item 7: labels mapped by name
LABEL_ROWS = {  # labels -> (blood pool, myocardium, scar, mvo) or the words of the refusal
    "acdc_names_refused": ({"background": 0, "RV": 1, "MLV": 2, "LVC": 3}, ["['scar'] not defined", "RV=1",
                                                                          "MLV=2", "LVC=3"]),
    "unmappable_extra_label": ({"background": 0, "LVC": 1, "MLV": 2, "scar": 3, "RV": 4},
                               ["['RV'] are none of blood pool, myocardium, scar, MVO", "RV=4"]),
    "two_names_one_structure": ({"background": 0, "myo": 1, "myocardium": 2, "scar": 3},
                                ["two names for one structure", "myocardium"]),
    "emidec_words": ({"background": 0, "cavity": 1, "normal myocardium": 2, "infarction": 3, "no-reflow": 4},
                     ({1}, {2, 3, 4}, {3, 4}, {4})),
    "acdc_style_with_scar": ({"background": 0, "LVC": 3, "MLV": 1, "Scar": 2}, ({3}, {1, 2}, {2}, set())),
    "other_order": ({"background": 0, "myocardium": 1, "scar": 2, "blood_pool": 3}, ({3}, {1, 2}, {2}, set())),
}


@pytest.mark.parametrize("row", sorted(LABEL_ROWS))
def test_labels_are_mapped_by_name(row, tmp_path):
    labels, expected = LABEL_ROWS[row]
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": labels}))
    if isinstance(expected, list):
        with pytest.raises(ValueError) as info:
            LabelScheme.from_dataset_json(str(path))
        assert str(path) in str(info.value) and all(w in str(info.value) for w in expected), str(info.value)
    else:
        scheme = LabelScheme.from_dataset_json(str(path))
        assert (scheme.blood_pool, scheme.myocardium, scheme.scar, scheme.mvo) == expected


def test_report_refuses_a_model_with_unmappable_labels_and_dataset_json_overrides(emidec_cases, tmp_path, monkeypatch,
                                                                                  capsys):
    # a model trained with ACDC names (its checkpoint holds them too: the folder's dataset.json must agree, issue 20)
    folder = build_model_folder(tmp_path / "acdc" / "nnUNetTrainer__nnUNetPlans__2d",
                                labels={"background": 0, "RV": 1, "MLV": 2, "LVC": 3, "MI": 4})
    image = os.path.join(emidec_cases, "Case_N012", "image.nii.gz")
    out = tmp_path / "out"
    code, err = run_cli(["report", image, "--model", str(folder), str(out), "--device", "cpu"], capsys)
    assert code == 2 and "RV=1" in err and "LVC=3" in err and "--dataset-json" in err and not out.exists()
    # the user states what the values mean: RV (1) is declared as the blood pool here only to test the override
    override = tmp_path / "labels.json"
    override.write_text(json.dumps({"labels": {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3,
                                               "mvo": 4}}))
    monkeypatch.setattr(ReportPredictor, "predict", ring_prediction)
    code, err = run_cli(["report", image, "--model", str(folder), str(out), "--device", "cpu",
                         "--dataset-json", str(override)], capsys)
    assert code == 0, err
    report = json.load(open(out / "Case_N012" / "Case_N012_report.json"))
    assert report["volumes"]["scar_ml"] > 0


# ---------------------------------------------------------------- item 8: patient names of NIfTI folders
def test_emidec_case_folder_is_one_patient_named_after_the_folder(emidec_cases, tmp_path, monkeypatch):
    case = tmp_path / "Case_P001"
    shutil.copytree(os.path.join(emidec_cases, "Case_P001"), case)
    elsewhere = tmp_path / "somewhere_else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = resolve_inputs([str(case)])
    assert [(p.name, os.path.basename(p.path)) for p in found] == [("Case_P001", "image.nii.gz")]


# ---------------------------------------------------------------- item 13: --inversion-time / --image-type
def test_report_takes_the_inversion_time_and_image_type_choice(model, emidec_cases, tmp_path, monkeypatch, capsys):
    """One series with two inversion times at the same positions (TI 300: the image, TI 350: twice as bright), and
    one mixing magnitude and PSIR: refused without a choice, converted with the option the refusal names."""
    image = os.path.join(emidec_cases, "Case_N012", "image.nii.gz")
    original = np.asarray(nib.load(image).dataobj)[..., 2:5].astype(np.int16)
    uid = pydicom.uid.generate_uid()
    ti = tmp_path / "ti" / "P"
    chosen = write_series(image, str(ti / "a"), series_uid=uid, slices=[2, 3, 4], inversion_time=300.0)
    write_series(image, str(ti / "b"), series_uid=uid, slices=[2, 3, 4], inversion_time=350.0, scale=2)
    uid = pydicom.uid.generate_uid()
    kinds = tmp_path / "kinds" / "Q"
    write_series(image, str(kinds / "m"), series_uid=uid, slices=[2, 3, 4], image_type=["ORIGINAL", "PRIMARY", "M"])
    write_series(image, str(kinds / "psir"), series_uid=uid, slices=[2, 3, 4], scale=2,
                 image_type=["ORIGINAL", "PRIMARY", "PSIR"])
    monkeypatch.setattr(ReportPredictor, "predict", ring_prediction)
    for folder, option, value in ((ti, "--inversion-time", "300"), (kinds, "--image-type", "M")):
        out = tmp_path / f"out_{folder.name}"
        code, err = run_cli(["report", str(folder), "--model", model, str(out), "--device", "cpu"], capsys)
        assert code == 1 and option in err  # the patient fails, the refusal names the option
        code, err = run_cli(["report", str(folder), "--model", model, str(out), "--device", "cpu", option, value],
                            capsys)
        assert code == 0, err
        converted = np.asarray(nib.load(out / folder.name / "input" / f"{folder.name}_0000.nii.gz").dataobj)
        assert np.array_equal(np.sort(converted.ravel()), np.sort(original.ravel()))
        report = json.load(open(out / folder.name / f"{folder.name}_report.json"))
        assert f"images chosen with {option} {value}" in report["series"]
    seg = pydicom.dcmread(tmp_path / "out_P" / "P" / "P_seg.dcm")  # references the TI 300 ms images only
    referenced = {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {str(pydicom.dcmread(p).SOPInstanceUID) for p in chosen}
    assert sorted(os.listdir(tmp_path / "out_P" / "P")) == sorted(
        ["P_report.html", "P_report.json", "P_seg.dcm", "P_sr.dcm", "input", "quantification", "segmentation",
         ".scarnet-report"])


# ---------------------------------------------------------------- item 15: leftovers
def test_rerun_removes_partial_folders_and_a_stale_cohort_table(model, emidec_cases, tmp_path, monkeypatch):
    monkeypatch.setattr(ReportPredictor, "predict", ring_prediction)
    a = os.path.join(emidec_cases, "Case_N012", "image.nii.gz")
    b = os.path.join(emidec_cases, "Case_P001", "image.nii.gz")
    out = tmp_path / "out"
    assert pipeline.run_report([a, b], model, str(out), device="cpu", mirroring=False) == 0
    assert (out / "cohort.csv").exists()
    killed = out / ".Case_P001.partial" / "input"  # what a run killed while converting leaves
    killed.mkdir(parents=True)
    shutil.copy(b, killed / "Case_P001_0000.nii.gz")
    assert pipeline.run_report([a], model, str(out), device="cpu", mirroring=False) == 0
    assert sorted(os.listdir(out)) == [".scarnet-lock", ".scarnet-output", "Case_N012"]


# ---------------------------------------------------------------- the safe loader predicts as nnU-Net does
@pytest.mark.slow
def test_safely_loaded_model_predicts_in_report_and_noise(model, emidec_cases, tmp_path, capsys):
    """No stub: the checkpoint read by the trust policy goes through nnU-Net's preprocessing, sliding window and
    export, in `report` (in process) and in `noise` (its prediction subprocess)."""
    image = os.path.join(emidec_cases, "Case_N012", "image.nii.gz")
    code, err = run_cli(["report", image, "--model", model, str(tmp_path / "report"), "--device", "cpu",
                         "--disable-mirroring"], capsys)
    assert code == 0, err
    segmentation = nib.load(tmp_path / "report" / "Case_N012" / "segmentation" / "Case_N012.nii.gz")
    assert segmentation.shape == nib.load(image).shape
    assert set(np.unique(np.asarray(segmentation.dataobj)).tolist()) <= set(EMIDEC_LABELS.values())
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    shutil.copy(image, images / "Case_N012_0000.nii.gz")
    shutil.copy(os.path.join(emidec_cases, "Case_N012", "label.nii.gz"), labels / "Case_N012.nii.gz")
    code, err = run_cli(["noise", "--model", f"m={model}", str(images), str(labels), str(tmp_path / "noise"),
                         "--snr", "10", "--repeats", "1"], capsys)
    assert code == 0, err
    rows = json.load(open(tmp_path / "noise" / "noise_robustness.json"))["table"]
    assert [r["snr"] for r in rows] == ["clean", 10.0]
