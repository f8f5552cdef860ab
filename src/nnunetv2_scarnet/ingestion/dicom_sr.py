"""DICOM SR (TID 1500 Measurement Report, highdicom `Comprehensive3DSR`) of one patient's quantification, written
beside its DICOM SEG: every measurement group references the SEG segment it was measured on.

Content (codes and their sources: docs/report.md, "DICOM SR"):

- Observation context: the device observer (this package, the model as its model name, a UID derived from the
  checkpoints' SHA-256); procedure reported: MRI of heart.
- Patient-level groups (TID 1411, Referenced Segment = the SEG segment): LV myocardium (volume mL, mass g, and the
  orientation state of the AHA segments), infarct (volume mL, mass g, infarct extent % of LV myocardium) and MVO
  (volume mL; TID 1501 without a segment when MVO was not assessed).
- One group per AHA segment (Cerqueira et al. 2002; CID 3717 finding site), referencing the SEG's infarct segment:
  infarct extent (% of the segment's myocardium), transmurality mean and maximum (% of wall thickness), and the
  orientation state.
- Every group: the algorithm (TID 4019: model name, package version, the SHA-256 of each checkpoint used and of
  plans.json / dataset.json as parameters).

A quantity the report holds as null (MVO not assessed, a segment without myocardium, the apical cap's
transmurality) is never written as a number: the group carries a CODE item, concept = the measurement's name,
value = (114007, DCM, "Measurement not attempted") from CID 42. (The standard's other form, a NUM item with an empty
Measured Value Sequence and that qualifier, cannot be read back by highdicom 0.28, which indexes the first measured
value of every NUM item.)
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple

import highdicom as hd
import pydicom
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from nnunetv2_scarnet import __version__
from nnunetv2_scarnet.ingestion.dicom_seg import (ANATOMICAL_STRUCTURE, INFARCT, LV_MYOCARDIUM,
                                                   MORPHOLOGICALLY_ABNORMAL, OBSTRUCTION, STRUCTURES, segment_numbers)
from nnunetv2_scarnet.quantification.aha import AHA_NAMES
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme

SCT, DCM, UCUM = "SCT", "DCM", "UCUM"
PRIVATE = "99SCARNET"  # private coding scheme ("99" prefix: PS3.16 section 8.2), declared in the SR

VOLUME = Code("118565006", SCT, "Volume")
MASS = Code("118538004", SCT, "Mass")
MEAN = Code("373098007", SCT, "Mean")
MAXIMUM = Code("56851009", SCT, "Maximum")
MRI_OF_HEART = Code("241620005", SCT, "Magnetic resonance imaging of heart")
NOT_ATTEMPTED = Code("114007", DCM, "Measurement not attempted")
MILLILITER = Code("ml", UCUM, "milliliter")
GRAM = Code("g", UCUM, "gram")
PERCENT = Code("%", UCUM, "Percent")
INFARCT_EXTENT = Code("INF-EXTENT", PRIVATE, "Infarct extent, % of myocardium")
TRANSMURALITY = Code("TRANSMURALITY", PRIVATE, "Infarct transmurality, % of wall thickness")
ORIENTATION_STATE = Code("AHA-ORIENT", PRIVATE, "AHA segment orientation state")
STATES = {"ok": Code("ORIENT-OK", PRIVATE, "Orientation ok"),
          "needs review": Code("ORIENT-REVIEW", PRIVATE, "Orientation needs review"),
          "not determined": Code("ORIENT-UNDET", PRIVATE, "Orientation not determined")}
PRIVATE_SCHEME = CodingSchemeIdentificationItem(
    designator=PRIVATE, name="nnunetv2-scarnet measurement codes", version="1",
    responsible_organization="nnunetv2-scarnet (docs/report.md, DICOM SR)")

#: AHA segment number -> its code in CID 3717 "Left Ventricle Myocardial Wall 17 Segment Model" (SNOMED CT)
AHA_SEGMENT_CODES: Dict[int, Code] = {
    1: Code("264850008", SCT, "left ventricle basal anterior segment"),
    2: Code("396482007", SCT, "left ventricle basal anteroseptal segment"),
    3: Code("396646008", SCT, "left ventricle basal inferoseptal segment"),
    4: Code("264846001", SCT, "left ventricle basal inferior segment"),
    5: Code("396652009", SCT, "left ventricle basal inferolateral segment"),
    6: Code("396654005", SCT, "left ventricle basal anterolateral segment"),
    7: Code("264848000", SCT, "left ventricle mid anterior segment"),
    8: Code("396647004", SCT, "left ventricle mid anteroseptal segment"),
    9: Code("396649001", SCT, "left ventricle mid inferoseptal segment"),
    10: Code("264847005", SCT, "left ventricle mid inferior segment"),
    11: Code("396655006", SCT, "left ventricle mid inferolateral segment"),
    12: Code("396656007", SCT, "left ventricle mid anterolateral segment"),
    13: Code("264844003", SCT, "left ventricle apical anterior segment"),
    14: Code("264845002", SCT, "left ventricle apical septal segment"),
    15: Code("264849008", SCT, "left ventricle apical inferior segment"),
    16: Code("264853005", SCT, "left ventricle apical lateral segment"),
    17: Code("128564006", SCT, "Apex of left ventricle"),
}
SR_SERIES_NUMBER = 901  # the SEG is series 900


class DicomSrError(ValueError):
    """The SR cannot be written (a SEG that does not match the scheme, a model without checkpoint hashes)."""


def model_name(model: Dict) -> str:
    """trainer__plans__configuration, nnU-Net's name of a model folder."""
    return "__".join(str(model.get(k)) for k in ("trainer", "plans", "configuration"))


def algorithm_parameters(model: Dict) -> List[str]:
    """The run identity's hashes and options as TID 4019 'Algorithm Parameters' texts."""
    identity = model.get("run_identity") or {}
    checkpoints = identity.get("checkpoints") or {}
    if not checkpoints:
        raise DicomSrError("the model identity has no checkpoint SHA-256 (run_identity.checkpoints); the DICOM SR "
                           "must name the weights its numbers come from")
    params = [f"checkpoint {name} sha256 {digest}" for name, digest in sorted(checkpoints.items())]
    params += [f"{name} sha256 {identity[key]}" for name, key in (("plans.json", "plans_sha256"),
                                                                  ("dataset.json", "dataset_json_sha256"))
               if identity.get(key)]
    params.append("folds " + " ".join(str(f) for f in model.get("folds", [])))
    versions = model.get("versions") or {}
    params += [f"{package} {versions[package]}" for package in ("nnunetv2", "torch") if package in versions]
    return params


def _algorithm(model: Dict) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=f"ScarNet report: {model_name(model)}", version=__version__,
                                         parameters=algorithm_parameters(model),
                                         family=codes.cid7162.ArtificialIntelligence, manufacturer="nnunetv2-scarnet")


def _device_observer(model: Dict) -> hd.sr.ObservationContext:
    """The algorithm as the observer; its UID is derived from the checkpoints' SHA-256 (same weights, same UID)."""
    digests = sorted(model["run_identity"]["checkpoints"].values())
    uid = generate_uid(prefix=None, entropy_srcs=[model_name(model), __version__, *digests])
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=uid, name="nnunetv2-scarnet",
                                                        manufacturer_name="nnunetv2-scarnet",
                                                        model_name=model_name(model))
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _measurements(items) -> Tuple[List[hd.sr.Measurement], List[hd.sr.QualitativeEvaluation]]:
    """(name, value or None, unit, derivation) -> NUM measurements; a None -> 'Measurement not attempted' (once per
    name)."""
    numbers, missing = [], []
    for name, value, unit, derivation in items:
        if value is None:
            if name not in missing:
                missing.append(name)
            continue
        numbers.append(hd.sr.Measurement(name=name, value=float(value), unit=unit, derivation=derivation))
    return numbers, [hd.sr.QualitativeEvaluation(name=n, value=NOT_ATTEMPTED) for n in missing]


def _group(label: str, finding_type: Code, category: Code, sites: Sequence[Code], items, algorithm,
           segment: Optional[hd.sr.ReferencedSegment], extra: Sequence[hd.sr.QualitativeEvaluation] = ()):
    numbers, missing = _measurements(items)
    common = dict(tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
                  finding_type=finding_type, finding_category=category, algorithm_id=algorithm,
                  finding_sites=[hd.sr.FindingSite(s) for s in sites] or None, measurements=numbers or None,
                  qualitative_evaluations=[*missing, *extra] or None)
    if segment is None:
        return hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=segment, **common)


def _seg_segments(seg: Dataset, scheme: LabelScheme, seg_path: str) -> Dict[str, int]:
    """Structure -> SEG segment number, checked against the SEG's own segment labels."""
    numbers = segment_numbers(scheme)
    labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.get("SegmentSequence", [])}
    for name, number in numbers.items():
        if labels.get(number) != STRUCTURES[name][0]:
            raise DicomSrError(f"{seg_path}: segment {number} is {labels.get(number)!r}, not "
                               f"{STRUCTURES[name][0]!r}; the SEG was not written with this label scheme")
    return numbers


def _evidence(seg: Dataset) -> List[Dataset]:
    """The SEG and the source images it references (their UIDs as the SEG records them)."""
    evidence = [seg]
    for series in seg.ReferencedSeriesSequence:
        for image in series.ReferencedInstanceSequence:
            ds = Dataset()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = seg.StudyInstanceUID, series.SeriesInstanceUID
            ds.SOPClassUID, ds.SOPInstanceUID = image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID
            evidence.append(ds)
    return evidence


def _pct(fraction):
    return None if fraction is None else 100.0 * fraction


def measurement_groups(quant: Dict, model: Dict, seg: Dataset, scheme: LabelScheme, seg_path: str = "SEG"):
    """The TID 1500 measurement groups of one case's quantification (`quantify_folder` case: `patient`, `aha`,
    `orientation`), referencing the segments of `seg`."""
    numbers = _seg_segments(seg, scheme, seg_path)
    source_series = hd.sr.SourceSeriesForSegmentation(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)

    def segment(name):
        return hd.sr.ReferencedSegment(sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                                       segment_number=numbers[name], source_series=source_series)

    algorithm = _algorithm(model)
    v = quant["patient"]
    state = (quant.get("orientation") or {}).get("state")
    if state not in STATES:
        raise DicomSrError(f"orientation state {state!r}: not one of {', '.join(STATES)}")
    orientation = [hd.sr.QualitativeEvaluation(name=ORIENTATION_STATE, value=STATES[state])]
    groups = [
        _group("LV myocardium", LV_MYOCARDIUM, ANATOMICAL_STRUCTURE, [],
               [(VOLUME, v["myocardium_ml"], MILLILITER, None), (MASS, v["myocardium_g"], GRAM, None)],
               algorithm, segment("myocardium"), orientation),
        _group("Infarct", INFARCT, MORPHOLOGICALLY_ABNORMAL, [LV_MYOCARDIUM],
               [(VOLUME, v["scar_ml"], MILLILITER, None), (MASS, v["scar_g"], GRAM, None),
                (INFARCT_EXTENT, v["scar_pct_lvm"], PERCENT, None)], algorithm, segment("scar"))]
    mvo_assessed = v.get("mvo_ml") is not None
    groups.append(_group("Microvascular obstruction", OBSTRUCTION, MORPHOLOGICALLY_ABNORMAL, [LV_MYOCARDIUM],
                         [(VOLUME, v.get("mvo_ml"), MILLILITER, None)], algorithm,
                         segment("mvo") if mvo_assessed else None))
    for row in quant.get("aha") or []:
        number = int(row["segment"])
        groups.append(_group(
            f"AHA segment {number} ({AHA_NAMES[number]}): infarct", INFARCT, MORPHOLOGICALLY_ABNORMAL,
            [AHA_SEGMENT_CODES[number]],
            [(INFARCT_EXTENT, row["scar_extent_pct"], PERCENT, None),
             (TRANSMURALITY, _pct(row["transmurality_mean"]), PERCENT, MEAN),
             (TRANSMURALITY, _pct(row["transmurality_max"]), PERCENT, MAXIMUM)],
            algorithm, segment("scar"), orientation))
    return groups


def write_dicom_sr(quant: Dict, model: Dict, seg_path: str, out_path: str, scheme: Optional[LabelScheme] = None) -> str:
    """Write the measurement report of `quant` (one case of `quantify_folder`) as a DICOM SR referencing the DICOM
    SEG `seg_path` (written by `write_dicom_seg` with the same scheme); `model`: `ReportPredictor.identity()` with
    `run_identity`."""
    scheme = scheme or LabelScheme()
    if os.path.isdir(out_path) or os.path.realpath(out_path) == os.path.realpath(seg_path):
        raise DicomSrError(f"{out_path}: is a folder or the SEG itself; give the DICOM SR output file name")
    try:
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    except (OSError, InvalidDicomError) as exc:
        raise DicomSrError(f"{seg_path}: cannot read the DICOM SEG ({exc})") from None
    if seg.get("Modality") != "SEG" or "ReferencedSeriesSequence" not in seg:
        raise DicomSrError(f"{seg_path}: not a DICOM SEG with a referenced series")
    report = hd.sr.MeasurementReport(observation_context=_device_observer(model), procedure_reported=MRI_OF_HEART,
                                     imaging_measurements=measurement_groups(quant, model, seg, scheme, seg_path),
                                     title=codes.cid7021.ImagingMeasurementReport)
    sr = hd.sr.Comprehensive3DSR(
        evidence=_evidence(seg), content=report[0], series_instance_uid=hd.UID(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="nnunetv2-scarnet", is_complete=True,
        is_final=False, is_verified=False, series_description="ScarNet measurements (TID 1500)",
        coding_schemes=[PRIVATE_SCHEME], software_versions=__version__, manufacturer_model_name=model_name(model))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    partial = f"{out_path}.partial"
    try:
        sr.save_as(partial)
        os.replace(partial, out_path)  # never a half-written SR under the final name
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return out_path
