"""The DICOM SR measurement report (TID 1500) written beside the DICOM SEG by `scarnet report` (issue 23 section 7).

A real report run (DICOM written from a real EMIDEC patient, a model folder with a real nnU-Net checkpoint built
without training by `report_helpers.build_model_folder`, the patient's expert label standing in for the network's
output, so that the run is cheap and its numbers are those of a real heart) is read back with highdicom and, independently, by walking the SR content tree with plain pydicom;
every number is checked against the patient's report.json, every reference against the SEG and the source DICOM
files, and the algorithm's checkpoint SHA-256 against hashlib on the checkpoint file. The expected codes are written
here literally (AHA finding sites: pydicom's copy of DICOM CID 3717), not taken from the module under test.
Edge cases (no scar, MVO not assessed or assessed, a segment without myocardium, no AHA table, bad input) use
hand-built quantification dicts on a cheap SEG of a ring."""
import hashlib
import json
import os
import shutil
from importlib.metadata import version

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from dicom_helpers import write_series
from report_helpers import build_model_folder, ring_label

VOLUME, MASS = ("118565006", "SCT"), ("118538004", "SCT")
EXTENT, TRANSMURALITY = ("INF-EXTENT", "99SCARNET"), ("TRANSMURALITY", "99SCARNET")
MEAN, MAXIMUM = ("373098007", "SCT"), ("56851009", "SCT")
NOT_ATTEMPTED = ("114007", "DCM")
ORIENTATION = ("AHA-ORIENT", "99SCARNET")
STATE_CODES = {"ok": "ORIENT-OK", "needs review": "ORIENT-REVIEW", "not determined": "ORIENT-UNDET"}
UNITS = {VOLUME: "ml", MASS: "g", EXTENT: "%", TRANSMURALITY: "%"}
CASE = "Case_P004"


def code_of(item):
    return (str(item.CodeValue), str(item.CodingSchemeDesignator))


def concept(item):
    return code_of(item.ConceptNameCodeSequence[0])


# ---------------------------------------------------------------- expected numbers, from report.json
def expected_groups(report):
    """tracking identifier -> {(concept, derivation): value or None}, from a report.json's volumes and AHA rows."""
    v = report["volumes"]
    groups = {"LV myocardium": {(VOLUME, None): v["myocardium_ml"], (MASS, None): v["myocardium_g"]},
              "Infarct": {(VOLUME, None): v["scar_ml"], (MASS, None): v["scar_g"], (EXTENT, None): v["scar_pct_lvm"]},
              "Microvascular obstruction": {(VOLUME, None): v["mvo_ml"]}}
    for row in report.get("aha") or []:
        mean, top = row["transmurality_mean"], row["transmurality_max"]
        groups[f"AHA segment {row['segment']} ({row['name']}): infarct"] = {
            (EXTENT, None): row["scar_extent_pct"], (TRANSMURALITY, MEAN): None if mean is None else 100.0 * mean,
            (TRANSMURALITY, MAXIMUM): None if top is None else 100.0 * top}
    return groups


def cid3717_site(name):
    """The CID 3717 code of an AHA segment named as in report.json (pydicom's copy of the DICOM code tables)."""
    by_meaning = {getattr(codes.cid3717, k).meaning.lower(): getattr(codes.cid3717, k) for k in codes.cid3717.dir()}
    code = by_meaning["apex of left ventricle" if name == "apex" else f"left ventricle {name} segment"]
    return (code.value, code.scheme_designator)


# ---------------------------------------------------------------- the SR walked with plain pydicom
def walk_groups(ds):
    """Measurement groups (DCM 125007 containers) of an SR dataset, read item by item: tracking identifier, finding,
    finding sites, NUM items {(concept, derivation): item}, CODE items {concept: value}, referenced segment, source
    series and algorithm texts."""
    groups = []

    def visit(items):
        for item in items:
            if item.ValueType == "CONTAINER" and concept(item) == ("125007", "DCM"):
                groups.append(read_group(item))
            elif item.ValueType == "CONTAINER":
                visit(item.get("ContentSequence", []))

    visit(ds.ContentSequence)
    return groups


def read_group(container):
    group = {"nums": {}, "codes": {}, "sites": [], "segment": None, "source_series": None, "params": []}
    for item in container.ContentSequence:
        name = concept(item)
        if name == ("112039", "DCM"):
            group["id"] = str(item.TextValue)
        elif name == ("121071", "DCM"):
            group["finding"] = code_of(item.ConceptCodeSequence[0])
        elif name == ("276214006", "SCT"):
            group["category"] = code_of(item.ConceptCodeSequence[0])
        elif name == ("111000", "DCM"):
            group["family"] = code_of(item.ConceptCodeSequence[0])
        elif name == ("363698007", "SCT"):
            group["sites"].append(code_of(item.ConceptCodeSequence[0]))
        elif name == ("111002", "DCM"):
            group["params"].append(str(item.TextValue))
        elif name in (("111001", "DCM"), ("111003", "DCM")):
            group[{"111001": "algorithm", "111003": "version"}[name[0]]] = str(item.TextValue)
        elif name == ("121191", "DCM"):
            ref = item.ReferencedSOPSequence[0]
            group["segment"] = (str(ref.ReferencedSOPClassUID), str(ref.ReferencedSOPInstanceUID),
                                [int(n) for n in np.atleast_1d(ref.ReferencedSegmentNumber)])
        elif name == ("121232", "DCM"):
            group["source_series"] = str(item.UID)
        elif item.ValueType == "NUM":
            derivation = [code_of(c.ConceptCodeSequence[0]) for c in item.get("ContentSequence", [])
                          if concept(c) == ("121401", "DCM")]
            key = (name, derivation[0] if derivation else None)
            assert key not in group["nums"], key
            group["nums"][key] = item.MeasuredValueSequence[0]
        elif item.ValueType == "CODE":
            group["codes"][name] = code_of(item.ConceptCodeSequence[0])
    return group


def check_numbers(group, expected):
    """Every number of `expected` is a NUM of the group (double exact, DS to its 16 characters) in the right unit;
    every None is no NUM and one 'Measurement not attempted' CODE item; no other NUM."""
    written = {k: v for k, v in expected.items() if v is not None}
    assert set(group["nums"]) == set(written), (group["id"], set(group["nums"]) ^ set(written))
    for (name, derivation), value in written.items():
        measured = group["nums"][(name, derivation)]
        assert float(measured.FloatingPointValue) == value, (group["id"], name, derivation)
        assert float(measured.NumericValue) == pytest.approx(value, rel=1e-12, abs=1e-12)
        assert len(str(measured.NumericValue)) <= 16
        assert code_of(measured.MeasurementUnitsCodeSequence[0]) == (UNITS[name], "UCUM")
    for name in {name for (name, _), value in expected.items() if value is None}:
        assert group["codes"].get(name) == NOT_ATTEMPTED, (group["id"], name)


# ---------------------------------------------------------------- the report run (module scoped)
@pytest.fixture(scope="module")
def report_run(emidec_cases, tmp_path_factory):
    """`scarnet report` of three patients: a DICOM series of a real patient whose expert label is the prediction
    (SEG and SR written), a DICOM series predicted empty and a NIfTI stack (neither gets a SEG or an SR). The
    model's dataset.json declares MVO, so MVO is assessed (0 mL in this patient)."""
    from nnunetv2_scarnet.report import pipeline
    from nnunetv2_scarnet.report.predict import Prediction

    root = tmp_path_factory.mktemp("dicom_sr")
    model = build_model_folder(root / "Dataset990_Cheap" / "nnUNetTrainer__nnUNetPlans__2d")
    sources = write_series(os.path.join(emidec_cases, CASE, "image.nii.gz"), str(root / "P004"))
    write_series(os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), str(root / "Empty"), slices=[3, 4])
    shutil.copy(os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), root / "N012.nii.gz")
    expert = np.asarray(nib.load(os.path.join(emidec_cases, CASE, "label.nii.gz")).dataobj).astype(np.uint8)

    def predict(self, image_path, out_seg_path, on_member=None):
        image = nib.load(image_path)
        label = expert if os.path.basename(image_path).startswith("P004") else np.zeros(image.shape, np.uint8)
        nib.save(nib.Nifti1Image(label, image.affine), out_seg_path)
        return Prediction(label, {"myocardium": 0.97, "scar": 0.9}, {"myocardium": [0.95], "scar": [0.9]},
                          ["fold 0"], int((label == 3).sum()))

    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.ReportPredictor, "predict", predict)
        code = pipeline.run_report([str(root / "P004"), str(root / "Empty"), str(root / "N012.nii.gz")], model,
                                   str(out), ["0"], "cpu", mirroring=False)
    assert code == 0
    return {"out": out, "sources": sources, "model": model,
            "report": json.load(open(out / "P004" / "P004_report.json")),
            "seg": pydicom.dcmread(out / "P004" / "P004_seg.dcm", stop_before_pixels=True)}


def seg_numbers(seg):
    return {str(s.SegmentLabel): int(s.SegmentNumber) for s in seg.SegmentSequence}


def test_sr_read_with_pydicom_matches_report_json_and_references_the_seg(report_run):
    report, seg = report_run["report"], report_run["seg"]
    sr = pydicom.dcmread(report_run["out"] / "P004" / "P004_sr.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34" and sr.Modality == "SR"  # Comprehensive 3D SR
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert any(line.startswith("P004_sr.dcm") for line in report["outputs"])
    source = pydicom.dcmread(report_run["sources"][0], stop_before_pixels=True)
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == source.PatientID
    assert sr.SeriesInstanceUID not in (source.SeriesInstanceUID, seg.SeriesInstanceUID)
    evidence = {(s.SeriesInstanceUID, r.ReferencedSOPInstanceUID)
                for study in sr.CurrentRequestedProcedureEvidenceSequence for s in study.ReferencedSeriesSequence
                for r in s.ReferencedSOPSequence}
    sources = {(source.SeriesInstanceUID, str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID))
               for p in report_run["sources"]}
    assert evidence == sources | {(seg.SeriesInstanceUID, seg.SOPInstanceUID)}
    assert [s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence] == ["99SCARNET"]

    checkpoint = os.path.join(report_run["model"], "fold_0", "checkpoint_final.pth")
    with open(checkpoint, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert report["model"]["run_identity"]["checkpoints"] == {"fold_0/checkpoint_final.pth": digest}

    groups = {g["id"]: g for g in walk_groups(sr)}
    expected = expected_groups(report)
    assert len(report["aha"]) == 17 and set(groups) == set(expected)
    numbers = seg_numbers(seg)
    infarct_segment = ("1.2.840.10008.5.1.4.1.1.66.4", seg.SOPInstanceUID, [numbers["Infarct"]])
    state = STATE_CODES[report["orientation"]["state"]]
    assert report["volumes"]["mvo_ml"] == 0.0 and report["volumes"]["mvo_status"] == "assessed"
    for name, group in groups.items():
        check_numbers(group, expected[name])
        assert f"checkpoint fold_0/checkpoint_final.pth sha256 {digest}" in group["params"]
        assert report["model"]["trainer"] in group["algorithm"] and group["version"] == version("nnunetv2-scarnet")
        assert group["family"] == ("123110", "DCM")  # Artificial Intelligence (CID 7162)
        assert group["source_series"] == source.SeriesInstanceUID
        if name == "Microvascular obstruction":  # assessed: 0 mL is a number, on the MVO segment
            mvo = [numbers["Microvascular obstruction"]]
            assert group["segment"] == (infarct_segment[0], seg.SOPInstanceUID, mvo)
            assert group["finding"] == ("26036001", "SCT") and group["sites"] == [("49848007", "SCT")]
        elif name == "LV myocardium":
            assert group["segment"] == (infarct_segment[0], seg.SOPInstanceUID, [numbers["LV myocardium"]])
            assert group["finding"] == ("49848007", "SCT") and group["codes"][ORIENTATION] == (state, "99SCARNET")
        elif name == "Infarct":
            assert group["segment"] == infarct_segment and group["finding"] == ("55641003", "SCT")
            assert group["sites"] == [("49848007", "SCT")]
        else:  # an AHA segment: measured on the infarct segment, at its CID 3717 site
            row = next(r for r in report["aha"] if name.startswith(f"AHA segment {r['segment']} "))
            assert group["segment"] == infarct_segment and group["sites"] == [cid3717_site(row["name"])]
            assert group["codes"][ORIENTATION] == (state, "99SCARNET")
    assert groups["AHA segment 17 (apex): infarct"]["codes"][TRANSMURALITY] == NOT_ATTEMPTED
    assert sum(len(g["nums"]) for g in groups.values()) > 40  # most numbers are numbers


def test_sr_read_with_highdicom_matches_report_json(report_run):
    report, seg = report_run["report"], report_run["seg"]
    sr = hd.sr.srread(report_run["out"] / "P004" / "P004_sr.dcm")
    content = sr.content
    assert isinstance(content, hd.sr.MeasurementReport)
    device = content.get_observer_contexts()[0].observer_identifying_attributes
    assert device.model_name == "__".join(report["model"][k] for k in ("trainer", "plans", "configuration"))
    groups = content.get_volumetric_roi_measurement_groups() + content.get_image_measurement_groups()
    expected = expected_groups(report)
    assert sorted(g.tracking_identifier for g in groups) == sorted(expected)
    numbers = seg_numbers(seg)
    for group in groups:
        wanted = expected[group.tracking_identifier]
        read = {((m.name.value, m.name.scheme_designator),
                 None if m.derivation is None else (m.derivation.value, m.derivation.scheme_designator)): m
                for m in group.get_measurements()}
        assert set(read) == {k for k, v in wanted.items() if v is not None}
        for key, m in read.items():
            assert m.value == wanted[key] and m.unit.value == UNITS[key[0]]
        missing = {(e.name.value, e.name.scheme_designator) for e in group.get_qualitative_evaluations()
                   if (e.value.value, e.value.scheme_designator) == NOT_ATTEMPTED}
        assert missing == {name for (name, _), v in wanted.items() if v is None}
        if isinstance(group, hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations):
            reference = group.referenced_segment[0]
            assert reference.referenced_sop_instance_uid == seg.SOPInstanceUID
            label = group.tracking_identifier if group.tracking_identifier in numbers else "Infarct"
            assert reference.referenced_segment_numbers == [numbers[label]]
    assert not content.get_image_measurement_groups()  # MVO assessed: every group has its segment


def test_no_seg_and_no_sr_for_an_empty_segmentation_or_a_nifti_input(report_run):
    out = report_run["out"]
    for name, note in (("Empty", "empty segmentation: no DICOM SEG or SR written"),
                       ("N012", "NIfTI input: no DICOM SEG or SR written")):
        report = json.load(open(out / name / f"{name}_report.json"))
        assert not [f for f in os.listdir(out / name) if f.endswith(".dcm")]
        assert any(n.startswith(note) for n in report["notes"]), report["notes"]
        assert not any(".dcm" in line for line in report["outputs"])


# ---------------------------------------------------------------- hand-built numbers on a cheap SEG
@pytest.fixture(scope="module")
def ring_seg(emidec_cases, tmp_path_factory):
    """A DICOM series of three slices of a real image and the SEG of a ring (blood pool, myocardium, scar) on it,
    written with the default label scheme (four segments: blood pool, myocardium, infarct, MVO)."""
    from nnunetv2_scarnet.ingestion.dicom_seg import write_dicom_seg

    root = tmp_path_factory.mktemp("ring_seg")
    image = nib.load(os.path.join(emidec_cases, "Case_N012", "image.nii.gz"))
    small = nib.Nifti1Image(np.asarray(image.dataobj)[..., 3:6], image.affine)
    nib.save(small, root / "image.nii.gz")
    write_series(str(root / "image.nii.gz"), str(root / "dicom"))
    nib.save(nib.Nifti1Image(ring_label(small.shape), image.affine), root / "label.nii.gz")
    seg = write_dicom_seg(str(root / "label.nii.gz"), str(root / "dicom"), str(root / "seg.dcm"))
    return root, seg


def hand_model(digest="ab" * 32):
    return {"trainer": "ScarNetTrainerLite", "plans": "nnUNetPlans", "configuration": "2d", "folds": ["0", "1"],
            "versions": {"nnunetv2": "2.8.1"},
            "run_identity": {"checkpoints": {"fold_0/checkpoint_final.pth": digest,
                                             "fold_1/checkpoint_final.pth": "cd" * 32}}}


def hand_quant(state="needs review", mvo_ml=None, aha=True):
    """A quantification with no scar at all; segment 5 has no myocardium (its extent and transmurality are null)."""
    rows = []
    for number in range(1, 18):
        covered = number != 5
        rows.append({"segment": number, "name": f"segment {number}", "scar_extent_pct": 0.0 if covered else None,
                     "transmurality_mean": 0.0 if covered and number != 17 else None,
                     "transmurality_max": 0.0 if covered and number != 17 else None})
    quant = {"patient": {"myocardium_ml": 101.25, "myocardium_g": 106.3125, "scar_ml": 0.0, "scar_g": 0.0,
                         "scar_pct_lvm": 0.0, "mvo_ml": mvo_ml}, "orientation": {"state": state}}
    if aha:
        quant["aha"] = rows
    return quant


def write_hand_sr(ring_seg, quant, model=None, name="sr.dcm"):
    from nnunetv2_scarnet.ingestion.dicom_sr import write_dicom_sr
    from nnunetv2_scarnet.quantification import LabelScheme

    root, seg = ring_seg
    path = write_dicom_sr(quant, model or hand_model(), seg, str(root / name), LabelScheme())
    return {g["id"]: g for g in walk_groups(pydicom.dcmread(path))}


def test_no_scar_is_zero_and_mvo_not_assessed_is_never_a_number(ring_seg):
    groups = write_hand_sr(ring_seg, hand_quant())
    assert groups["Infarct"]["nums"][(EXTENT, None)].FloatingPointValue == 0.0  # a measured 0: a number
    assert groups["Infarct"]["nums"][(VOLUME, None)].FloatingPointValue == 0.0
    mvo = groups["Microvascular obstruction"]
    assert mvo["nums"] == {} and mvo["codes"] == {VOLUME: NOT_ATTEMPTED} and mvo["segment"] is None
    for number in range(1, 18):
        group = next(g for k, g in groups.items() if k.startswith(f"AHA segment {number} "))
        assert group["codes"][ORIENTATION] == ("ORIENT-REVIEW", "99SCARNET")
        if number == 5:  # no myocardium: nothing measured, nothing written as a number
            assert group["nums"] == {} and group["codes"][EXTENT] == group["codes"][TRANSMURALITY] == NOT_ATTEMPTED
        elif number == 17:  # the apical cap has no chords: extent only
            assert set(group["nums"]) == {(EXTENT, None)} and group["codes"][TRANSMURALITY] == NOT_ATTEMPTED
        else:
            assert {k: v.FloatingPointValue for k, v in group["nums"].items()} == {
                (EXTENT, None): 0.0, (TRANSMURALITY, MEAN): 0.0, (TRANSMURALITY, MAXIMUM): 0.0}
    assert groups["LV myocardium"]["nums"][(MASS, None)].FloatingPointValue == 106.3125
    params = groups["LV myocardium"]["params"]
    assert f"checkpoint fold_0/checkpoint_final.pth sha256 {'ab' * 32}" in params
    assert f"checkpoint fold_1/checkpoint_final.pth sha256 {'cd' * 32}" in params


def test_assessed_mvo_references_the_mvo_segment(ring_seg):
    root, seg_path = ring_seg
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    groups = write_hand_sr(ring_seg, hand_quant(state="ok", mvo_ml=1.375), name="sr_mvo.dcm")
    mvo = groups["Microvascular obstruction"]
    assert mvo["nums"][(VOLUME, None)].FloatingPointValue == 1.375 and mvo["codes"] == {}
    assert mvo["segment"][1:] == (seg.SOPInstanceUID, [seg_numbers(seg)["Microvascular obstruction"]])


def test_without_an_aha_table_the_sr_has_no_segments_and_says_why(ring_seg):
    groups = write_hand_sr(ring_seg, hand_quant(state="not determined", aha=False), name="sr_no_aha.dcm")
    assert set(groups) == {"LV myocardium", "Infarct", "Microvascular obstruction"}
    assert groups["LV myocardium"]["codes"][ORIENTATION] == ("ORIENT-UNDET", "99SCARNET")


def test_bad_inputs_are_refused_naming_the_problem_and_write_nothing(ring_seg, tmp_path):
    from nnunetv2_scarnet.ingestion.dicom_sr import DicomSrError, write_dicom_sr
    from nnunetv2_scarnet.quantification import LabelScheme

    _, seg = ring_seg
    out = tmp_path / "sr.dcm"
    model = hand_model()
    model["run_identity"]["checkpoints"] = {}
    with pytest.raises(DicomSrError, match="checkpoint SHA-256"):
        write_dicom_sr(hand_quant(), model, seg, str(out), LabelScheme())
    without_blood_pool = LabelScheme(blood_pool=frozenset(), myocardium=frozenset({2, 3, 4}),
                                     scar=frozenset({3, 4}), mvo=frozenset({4}))  # segment numbers shift
    with pytest.raises(DicomSrError, match=f"{seg}: segment 1 is 'LV blood pool', not 'LV myocardium'"):
        write_dicom_sr(hand_quant(), hand_model(), seg, str(out), without_blood_pool)
    not_dicom = tmp_path / "seg.dcm"
    not_dicom.write_text("not DICOM")
    with pytest.raises(DicomSrError, match=f"{not_dicom}: cannot read the DICOM SEG"):
        write_dicom_sr(hand_quant(), hand_model(), str(not_dicom), str(out), LabelScheme())
    with pytest.raises(DicomSrError, match="the SEG itself"):
        write_dicom_sr(hand_quant(), hand_model(), seg, seg, LabelScheme())
    assert sorted(os.listdir(tmp_path)) == ["seg.dcm"]  # nothing written, not even a partial file
