"""`scarnet report`: LGE series choice, QC flags, the self-contained HTML, and the whole command end to end on
DICOM written from real EMIDEC patients with a tiny trained model (CPU), the HTML opened in headless Chromium."""
import csv
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from conftest import python_cli
from dicom_helpers import set_tags, write_series
from nnunetv2_scarnet.quantification import LabelScheme
from nnunetv2_scarnet.report.html import render_report
from nnunetv2_scarnet.report.inputs import ReportInputError, choose_lge_series, resolve_inputs
from nnunetv2_scarnet.report.qc import agreement_flags, confidence_flags, plausibility_flags, shape_flags


def lge_study(emidec_cases, folder, case="Case_P004"):
    """A study folder as a scanner exports it: the LGE stack, a cine stack and a TI scout; returns the LGE UID."""
    image = os.path.join(emidec_cases, case, "image.nii.gz")
    lge = write_series(image, os.path.join(folder, "lge"), description="LGE SAX stack")
    set_tags(lge, InversionTime=310.0, ImageType=["ORIGINAL", "PRIMARY", "M", "NONE"])
    cine = write_series(image, os.path.join(folder, "cine"), description="cine_retro SAX")
    set_tags(cine, ImageType=["ORIGINAL", "PRIMARY", "M", "NONE"])
    scout = write_series(image, os.path.join(folder, "scout"), description="SAX stack", slices=[3, 4, 5])
    for i, path in enumerate(scout):
        set_tags([path], InversionTime=150.0 + 50 * i)
    return str(pydicom.dcmread(lge[0]).SeriesInstanceUID)


def test_lge_series_is_chosen_by_the_documented_heuristic(emidec_cases, tmp_path):
    uid = lge_study(emidec_cases, str(tmp_path / "study"))
    choice = choose_lge_series(str(tmp_path / "study"))
    assert choice.uid == uid and any("says LGE" in r for r in choice.reasons)
    # two equally plausible series: refused with the list, and --series-uid decides
    image = os.path.join(emidec_cases, "Case_N012", "image.nii.gz")
    a = write_series(image, str(tmp_path / "two" / "a"), description="LGE 1")
    b = write_series(image, str(tmp_path / "two" / "b"), description="LGE 2")
    with pytest.raises(ReportInputError, match="--series-uid.*score"):
        choose_lge_series(str(tmp_path / "two"))
    uid_b = str(pydicom.dcmread(b[0]).SeriesInstanceUID)
    assert choose_lge_series(str(tmp_path / "two"), [uid_b]).uid == uid_b
    assert a  # both written


def test_inputs_are_one_patient_per_dicom_folder_or_nifti_file(emidec_cases, tmp_path):
    niftis = tmp_path / "niftis"
    niftis.mkdir()
    for case in ("Case_N012", "Case_P001"):
        shutil.copy(os.path.join(emidec_cases, case, "image.nii.gz"), niftis / f"{case}_0000.nii.gz")
    (tmp_path / "dicom" / "Patient A").mkdir(parents=True)
    found = resolve_inputs([str(niftis), str(tmp_path / "dicom" / "Patient A"),
                            os.path.join(emidec_cases, "Case_N012", "image.nii.gz")])
    assert [(p.name, p.kind) for p in found] == [("Case_N012", "nifti"), ("Case_P001", "nifti"),
                                                 ("Patient_A", "dicom"), ("Case_N012_2", "nifti")]
    with pytest.raises(ReportInputError, match="no such file"):
        resolve_inputs([str(tmp_path / "missing")])


def ring(shape=(64, 64), center=(32, 32), r_in=10, r_out=16):
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    radius = np.hypot(ii - center[0], jj - center[1])
    angle = np.degrees(np.arctan2(jj - center[1], ii - center[0])) % 360
    return radius, angle, (radius >= r_in) & (radius < r_out), radius < r_in


def test_shape_flags_open_ring_and_non_endocardial_scar():
    radius, angle, myo, pool = ring()
    label = np.zeros((64, 64, 3), np.int16)
    for k in range(3):
        label[..., k][pool] = 1
        label[..., k][myo] = 2
    label[..., 0][myo & (angle < 60) & (radius < 13)] = 3      # subendocardial scar: fine
    label[..., 1][myo & (angle < 60) & (radius >= 13)] = 3     # epicardial scar: flagged
    label[..., 2][myo & (angle < 60)] = 3
    label[..., 2][myo & (angle > 170) & (angle < 190)] = 0    # a gap in the ring: flagged
    flags = {f.code: f.slices for f in shape_flags(label, LabelScheme())}
    assert flags == {"scar_not_endocardial": [1], "open_ring": [2]}


def test_confidence_agreement_and_plausibility_flags():
    assert [f.code for f in confidence_flags({"myocardium": 0.95, "scar": 0.9})] == []
    assert [f.code for f in confidence_flags({"myocardium": 0.6, "scar": None})] == ["low_confidence"]
    members = ["fold 0", "fold 1"]
    assert agreement_flags({"myocardium": [0.95, 0.7], "scar": [0.9, 0.9]}, members, 100)[0].code == \
        "member_disagreement"
    assert agreement_flags({"myocardium": [0.7]}, ["fold 0"], 0) == []  # one member: nothing to compare
    slices = [{"slice": 0, "myocardium_ml": 10.0}, {"slice": 1, "myocardium_ml": 60.0}]  # 60 mL / 1 cm: 60 cm2
    codes = [f.code for f in plausibility_flags({"myocardium_g": 500.0}, slices, (1.5, 1.5, 10.0))]
    assert codes == ["implausible_mass", "implausible_slice_area"]
    assert [f.code for f in plausibility_flags({"myocardium_g": 120.0}, [], (0.1, 1.5, 10.0))] == \
        ["implausible_spacing"]


def test_html_is_self_contained():
    page = render_report("P1", {"PatientName": "Doe^<script>"}, "src", {"patient": {"myocardium_ml": 100.0}},
                         [{"code": "open_ring", "title": "t", "detail": "d", "slices": [2]}],
                         [("b", b"\x89PNG")], [("o", b"\x89PNG")], {"trainer": "T"}, {}, ["x"])
    assert "<script>" not in page and "Doe^&lt;script&gt;" in page
    assert not re.search(r"(src|href)=['\"](?!data:)", page) and "http" not in page
    assert page.count("data:image/png;base64,") == 2


# ---------------------------------------------------------------- end to end (slow)
def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium not installed (.ci/run installs Debian's chromium; apt-get was not available)")


def screenshot(html_path, png_path, height=2000):
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png_path}", f"--window-size=1200,{height}", f"file://{html_path}"],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image
    return np.asarray(Image.open(png_path).convert("RGB")).astype(int)


def coloured_pixels(rgb):
    """Pixels of a saturated colour (contours, bullseye), not grey, white or black."""
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum())


@pytest.mark.slow
def test_report_outputs_with_the_expert_label_as_prediction(tiny_model, emidec_cases, tmp_path, monkeypatch):
    """The output stage on a non-empty segmentation (the tiny model mostly predicts background): the expert label of
    a real patient stands in for the prediction; DICOM SEG, QC and the HTML in Chromium are checked on it."""
    import nibabel as nib

    from nnunetv2_scarnet.report import pipeline
    from nnunetv2_scarnet.report.predict import Prediction

    expert = np.asarray(nib.load(os.path.join(emidec_cases, "Case_P004", "label.nii.gz")).dataobj)

    def expert_as_prediction(self, image_path, out_seg_path, on_member=None):
        image = nib.load(image_path)
        nib.save(nib.Nifti1Image(expert.astype(np.uint8), image.affine), out_seg_path)
        for _ in range(self.n_members):
            on_member()
        return Prediction(expert, {"myocardium": 0.97, "scar": 0.9}, {"myocardium": [0.95], "scar": [0.9]},
                          ["fold 0"], int((expert >= 3).sum()))

    monkeypatch.setattr(pipeline.ReportPredictor, "predict", expert_as_prediction)
    lge_uid = lge_study(emidec_cases, str(tmp_path / "Patient_P004"))
    out = tmp_path / "out"
    assert pipeline.run_report([str(tmp_path / "Patient_P004")], tiny_model, str(out), ["0"], "cpu",
                               mirroring=False) == 0
    folder = out / "Patient_P004"
    seg = pydicom.dcmread(folder / "Patient_P004_seg.dcm")
    assert seg.Modality == "SEG" and seg.ReferencedSeriesSequence[0].SeriesInstanceUID == lge_uid
    assert {s.SegmentLabel for s in seg.SegmentSequence} >= {"LV myocardium", "Infarct"}
    report = json.load(open(folder / "Patient_P004_report.json"))
    volumes = report["volumes"]
    assert volumes["scar_ml"] > 1 and 40 < volumes["myocardium_g"] < 350
    assert not {"implausible_mass", "low_confidence", "no_myocardium"} & {f["code"] for f in report["qc_flags"]}
    assert not (out / "cohort.csv").exists()  # one patient: no cohort table
    check_in_chromium(folder / "Patient_P004_report.html", tmp_path)


def check_in_chromium(html_path, tmp_path, contours=True):
    """The page in a real browser shows the figures: every slice picture (>= 256 px wide, an LGE image that is
    mostly dark) adds at least half of 256 x 256 non-white pixels to the same page without its images (the whole
    page, 8000 px tall, is captured); with `contours`, many coloured pixels (contours, bullseyes)."""
    page = html_path.read_text()
    n_slices = len(re.findall(r"<img alt='slice \d", page))
    assert n_slices >= 1
    with_figures = screenshot(str(html_path), str(tmp_path / "with.png"), height=8000)
    stripped = tmp_path / "stripped.html"
    stripped.write_text(re.sub(r"<img [^>]*>", "", page))
    without = screenshot(str(stripped), str(tmp_path / "without.png"), height=8000)
    assert with_figures.shape[0] >= 7900 and with_figures.shape[1] >= 1100
    if contours:
        assert coloured_pixels(with_figures) > coloured_pixels(without) + 5000
    extra_dark = int((with_figures < 230).any(axis=2).sum() - (without < 230).any(axis=2).sum())
    assert extra_dark >= 0.5 * n_slices * 256 * 256, (extra_dark, n_slices)
    return with_figures


@pytest.mark.slow
def test_report_end_to_end_on_dicom_and_nifti(tiny_model, emidec_cases, tmp_path):
    lge_uid = lge_study(emidec_cases, str(tmp_path / "Patient_P004"))
    single = write_series(os.path.join(emidec_cases, "Case_N014", "image.nii.gz"), str(tmp_path / "Patient_N014"))
    broken = tmp_path / "Patient_broken"
    broken.mkdir()
    (broken / "notes.txt").write_text("not DICOM")
    nifti = os.path.join(emidec_cases, "Case_P009", "image.nii.gz")
    out = tmp_path / "out"
    env = dict(os.environ, nnUNet_def_n_proc="1", PYTHONWARNINGS="ignore")
    cmd = python_cli("nnunetv2_scarnet.cli", "report", str(tmp_path / "Patient_P004"), str(tmp_path / "Patient_N014"),
                     str(broken), nifti, "--model", tiny_model, str(out), "--device", "cpu")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 1, result.stderr[-3000:]  # one patient failed, the others went on
    assert "Patient_broken" in result.stderr and "no DICOM image files found" in result.stderr
    for stage in ("[1/4] loading the model", "[2/4] reading inputs", "[3/4] predicting", "[4/4] quantification"):
        assert stage in result.stderr
    assert sorted(os.listdir(out)) == [".scarnet-lock", ".scarnet-output", "Case_P009", "Patient_N014", "Patient_P004",
                                       "cohort.csv"]  # nothing partial

    report = json.load(open(out / "Patient_P004" / "Patient_P004_report.json"))
    assert lge_uid in report["series"] and report["identifiers"]["PatientID"] == "LGE001"
    assert report["model"]["trainer"] == "ScarNetTrainerTiny_smoke" and report["model"]["folds"] == ["0"]
    assert report["model"]["members"] == 4 and "nnunetv2" in report["model"]["versions"]  # 1 fold x 4 mirrorings
    assert len(report["prediction_qc"]["members"]) == 4
    conf = report["prediction_qc"]["confidence"]
    assert conf["myocardium"] is None or 0 < conf["myocardium"] <= 1
    codes = {f["code"] for f in report["qc_flags"]}
    assert codes <= {"low_confidence", "low_confidence_scar", "member_disagreement", "member_disagreement_scar",
                     "implausible_mass", "implausible_slice_area", "no_myocardium", "open_ring",
                     "scar_not_endocardial", "implausible_spacing", "orientation_review",
                     "orientation_not_determined"}
    seg_files = [f for f in os.listdir(out / "Patient_P004") if f.endswith("_seg.dcm")]
    if report["volumes"]["myocardium_ml"] + report["volumes"].get("blood_pool_ml", 0) > 0:
        seg = pydicom.dcmread(out / "Patient_P004" / seg_files[0])
        assert seg.Modality == "SEG"
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == lge_uid
    assert (out / "Patient_P004" / "quantification" / "patients.csv").exists()
    assert (out / "Case_P009" / "Case_P009_report.html").exists()  # the NIfTI patient, named by its folder
    assert not [f for f in os.listdir(out / "Case_P009") if f.endswith(".dcm")]
    rows = list(csv.DictReader(open(out / "cohort.csv")))
    assert {r["patient"]: r["status"] for r in rows} == {"Patient_P004": "ok", "Patient_N014": "ok",
                                                         "Patient_broken": "failed", "Case_P009": "ok"}
    states = {r["patient"]: r["orientation_state"] for r in rows}  # issue 23: the review is a column of its own
    assert states["Patient_broken"] == "" and {states[p] for p in states if p != "Patient_broken"} <= \
        {"ok", "needs review", "not determined"}
    for row in rows:
        assert (row["review"] == "") == (row["orientation_state"] in ("ok", ""))
    assert single

    page = (out / "Patient_P004" / "Patient_P004_report.html").read_text()
    assert "LGE001" in page and "ScarNetTrainerTiny_smoke" in page and "Scar % of LV myocardium" in page
    assert not re.search(r"(src|href)=['\"](?!data:)", page) and "http" not in page
    assert page.count("data:image/png;base64,") >= 3  # overlay of every slice, two bullseyes
    check_in_chromium(out / "Patient_P004" / "Patient_P004_report.html", tmp_path, contours=False)


@pytest.mark.slow
def test_report_refuses_bad_arguments_before_writing(tiny_model, emidec_cases, tmp_path):
    out = tmp_path / "out"
    image = os.path.join(emidec_cases, "Case_N012", "image.nii.gz")
    result = subprocess.run(python_cli("nnunetv2_scarnet.cli", "report", image, "--model", str(tmp_path / "nope"),
                                       str(out)), capture_output=True, text=True)
    assert result.returncode == 2 and "scarnet report:" in result.stderr and "model folder not found" in result.stderr
    result = subprocess.run(python_cli("nnunetv2_scarnet.cli", "report", image, "--model", tiny_model, str(out),
                                       "--folds", "4"), capture_output=True, text=True)
    assert result.returncode == 2 and "fold_4" in result.stderr
    assert not out.exists()
