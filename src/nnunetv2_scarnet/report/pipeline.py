"""`scarnet report`: DICOM folders or NIfTI stacks -> nnU-Net prediction -> quantification, DICOM SEG, CSV/JSON,
QC flags and one self-contained HTML report per patient (+ a cohort CSV).

Per patient OUT_DIR/<patient>/ holds input/<patient>_0000.nii.gz (the converted stack), segmentation/<patient>.nii.gz,
quantification/ (CSV, JSON, PNG of `scarnet quantify` with default options), <patient>_seg.dcm and <patient>_sr.dcm
(DICOM inputs), <patient>_report.json and <patient>_report.html. A patient is written to its own hidden
`.<patient>.*.partial` folder first and renamed when complete; a failing patient is reported, nothing of it is left,
and the others go on.

Order (docs/report.md): OUT_DIR is checked, inputs are listed and the model is loaded (device, checkpoints with the
trust policy, label mapping) before OUT_DIR is touched; then OUT_DIR is locked against a second run, emptied if an
earlier scarnet run wrote it (stale cohort.csv, `.partial` folders of a killed run) and marked (io_safety.py).
"""
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence

from tqdm import tqdm

from nnunetv2_scarnet.io_safety import LOCK, OutputDirLock, check_apart, check_output_dir, prepare_output_dir
from nnunetv2_scarnet.quantification import quantify_folder, read_label_stack, read_stack
from nnunetv2_scarnet.quantification.report import write_csv
from nnunetv2_scarnet.report.figures import slice_overlays, transmurality_bullseye
from nnunetv2_scarnet.report.html import render_report
from nnunetv2_scarnet.report.inputs import (PatientInput, ReportInputError, choose_lge_series, dicom_identifiers,
                                            resolve_inputs)
from nnunetv2_scarnet.report.predict import ReportPredictor
from nnunetv2_scarnet.report.qc import all_flags, review_cells
from nnunetv2_scarnet.report.run_identity import model_file_states, run_identity

MARKER = ".scarnet-report"


def _bar(iterable=None, **kwargs):
    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kwargs)


class Patient:
    def __init__(self, source: PatientInput, out_dir: str):
        self.source = source
        self.name = source.name
        self.out_dir = out_dir
        self.final = os.path.join(out_dir, self.name)
        self.work = ""  # its own hidden folder, made by `_prepare`
        self.identifiers: Dict[str, str] = {}
        self.dicom_files: List[str] = []  # the images converted, when --image-type / --inversion-time chose some
        self.prediction = None
        self.summary: Dict = {}
        self.error: Optional[str] = None

    @property
    def image(self) -> str:
        return os.path.join(self.work, "input", f"{self.name}_0000.nii.gz")

    @property
    def segmentation(self) -> str:
        return os.path.join(self.work, "segmentation", f"{self.name}.nii.gz")


def _prepare(patient: Patient) -> None:
    """A private work folder (a fresh name no other patient or run can share)."""
    if os.path.lexists(patient.final):
        raise ReportInputError(f"{patient.final}: already exists in this run's output folder; not replaced")
    patient.work = tempfile.mkdtemp(prefix=f".{patient.name}.", suffix=".partial", dir=patient.out_dir)
    os.makedirs(os.path.dirname(patient.image))
    os.makedirs(os.path.dirname(patient.segmentation))


def convert(patient: Patient, series_uids: Sequence[str], image_type: Optional[str] = None,
            inversion_time: Optional[float] = None) -> None:
    """DICOM -> NIfTI of the chosen LGE series (or a copy of the NIfTI stack), with its identifiers.
    `image_type` / `inversion_time`: which images of a series that mixes kinds (`dicom_to_nifti`)."""
    from nnunetv2_scarnet.ingestion import dicom_to_nifti

    _prepare(patient)
    src = patient.source
    if src.kind == "dicom":
        choice = choose_lge_series(src.path, series_uids, image_type is not None or inversion_time is not None)
        src.series_uid = choice.uid
        src.series_choice = f"series {choice.uid} ({choice.description or 'no description'}): " + \
            "; ".join(choice.reasons)
        stack = dicom_to_nifti(src.path, patient.image, choice.uid, image_type=image_type,
                               inversion_time=inversion_time)
        if image_type or inversion_time is not None:
            patient.dicom_files = list(dict.fromkeys(stack.files))
            src.series_choice += "; images chosen with " + ", ".join(
                ([f"--image-type {image_type}"] if image_type else []) +
                ([f"--inversion-time {inversion_time:g}"] if inversion_time is not None else []))
        patient.identifiers = dicom_identifiers(stack.files)
    else:
        read_stack(src.path)  # a clear error for an unreadable or non-3D file
        if src.path.endswith(".nii"):
            import nibabel as nib
            nib.save(nib.load(src.path), patient.image)
        else:
            shutil.copyfile(src.path, patient.image)
        patient.identifiers = {"File": os.path.basename(src.path)}


def write_outputs(patient: Patient, predictor: ReportPredictor, model: Dict,
                  stage_seconds: Optional[Dict[str, float]] = None,
                  before_final: Optional[Callable[[str], None]] = None) -> None:
    """Quantification, DICOM SEG and SR, QC flags, JSON and HTML of one predicted patient; then the folder is final.
    `stage_seconds`, when given, receives the wall time of `quantification` (volumes, AHA segments, transmurality,
    QC flags) and of `writing` (DICOM SEG and SR, pictures, JSON, HTML). `before_final(work folder)` runs after the last
    report file and before the marker (a cohort part writes the study's checksum manifest there)."""
    started = time.perf_counter()
    scheme = predictor.scheme
    quant_dir = os.path.join(patient.work, "quantification")
    report = quantify_folder(os.path.dirname(patient.segmentation), quant_dir, os.path.dirname(patient.image),
                             scheme)
    quant = report["cases"][0]
    label = read_label_stack(patient.segmentation, scheme)
    image = read_stack(patient.image)
    flags = all_flags(label.data, label.spacing, scheme, quant, patient.prediction)
    quantified = time.perf_counter()
    outputs = [os.path.relpath(patient.image, patient.work), os.path.relpath(patient.segmentation, patient.work),
               "quantification/ (patients.csv, slices.csv, sectors.csv, report.json, PNG)"]
    notes = []
    if patient.source.kind == "dicom":
        if label.data.any():
            from nnunetv2_scarnet.ingestion.dicom_seg import write_dicom_seg
            source = _chosen_images(patient)
            try:
                write_dicom_seg(patient.segmentation, source, os.path.join(patient.work, f"{patient.name}_seg.dcm"),
                                patient.source.series_uid, algorithm_name=f"ScarNet report ({model.get('trainer')})")
            finally:
                if source != patient.source.path:
                    shutil.rmtree(source)
            outputs.append(f"{patient.name}_seg.dcm (DICOM SEG referencing series {patient.source.series_uid})")
            from nnunetv2_scarnet.ingestion.dicom_sr import write_dicom_sr
            write_dicom_sr(quant, model, os.path.join(patient.work, f"{patient.name}_seg.dcm"),
                           os.path.join(patient.work, f"{patient.name}_sr.dcm"), scheme)
            outputs.append(f"{patient.name}_sr.dcm (DICOM SR measurement report, TID 1500, referencing the SEG)")
        else:
            notes.append("empty segmentation: no DICOM SEG or SR written")
    else:
        notes.append("NIfTI input: no DICOM SEG or SR written (they reference the source DICOM images)")
    title = patient.identifiers.get("PatientName", patient.name)
    overlays = slice_overlays(image, label, scheme, quant)  # with the orientation's septum line
    bullseyes = []
    extent = os.path.join(quant_dir, f"{patient.name}_bullseye.png")  # drawn by the quantification
    if os.path.isfile(extent):
        with open(extent, "rb") as f:
            bullseyes.append(("Scar extent per segment", f.read()))
    bullseyes.append(("Transmurality: Kim category per segment",
                      transmurality_bullseye(quant, f"{title}: scar transmurality")))
    pred = patient.prediction
    prediction_qc = {"confidence": pred.confidence, "member_dice": pred.member_dice, "members": pred.members}
    outputs += [f"{patient.name}_report.json", f"{patient.name}_report.html"]
    patient.summary = {"patient": patient.name, "source": patient.source.path, "kind": patient.source.kind,
                       "series": patient.source.series_choice, "identifiers": patient.identifiers,
                       "volumes": quant.get("patient", {}), "orientation": quant.get("orientation"),
                       "aha_status": quant.get("aha_status"), "aha_summary": quant.get("aha_summary"),
                       "aha": quant.get("aha"), "qc_flags": flags, "prediction_qc": prediction_qc,
                       "model": model, "notes": notes, "outputs": outputs}
    with open(os.path.join(patient.work, f"{patient.name}_report.json"), "w") as f:
        json.dump(patient.summary, f, indent=1, default=str)
    page = render_report(patient.name, patient.identifiers, f"{patient.source.path} - {patient.source.series_choice}",
                         quant, flags, bullseyes, overlays, model, prediction_qc, outputs + notes)
    with open(os.path.join(patient.work, f"{patient.name}_report.html"), "w", encoding="utf-8") as f:
        f.write(page)
    if before_final is not None:
        before_final(patient.work)
    open(os.path.join(patient.work, MARKER), "w").close()
    os.rename(patient.work, patient.final)  # unique names: never an existing folder
    if stage_seconds is not None:
        stage_seconds.update(quantification=quantified - started, writing=time.perf_counter() - quantified)


def _chosen_images(patient: Patient) -> str:
    """The folder the DICOM SEG references: the source folder, or (a series mixing image kinds, one chosen with
    --image-type / --inversion-time) a private copy of the chosen images only, removed after the SEG is written."""
    if not patient.dicom_files:
        return patient.source.path
    folder = os.path.join(patient.work, "chosen_dicom")
    os.makedirs(folder)
    for i, path in enumerate(patient.dicom_files):
        shutil.copyfile(path, os.path.join(folder, f"{i:05d}_{os.path.basename(path)}"))
    return folder


def _fail(patient: Patient, stage: str, exc: Exception, debug: bool) -> None:
    patient.error = f"{stage}: {exc}"
    if patient.work:
        shutil.rmtree(patient.work, ignore_errors=True)
    tqdm.write(f"scarnet report: {patient.name} ({patient.source.path}) failed at {patient.error}", file=sys.stderr)
    if debug:
        traceback.print_exc()


def cohort_row(patient: Patient) -> Dict:
    v = patient.summary.get("volumes", {})
    flags = patient.summary.get("qc_flags", [])
    return {"patient": patient.name, "status": "failed" if patient.error else "ok", "error": patient.error,
            "source": patient.source.path, "patient_id": patient.identifiers.get("PatientID"),
            "series_uid": patient.source.series_uid, "myocardium_ml": v.get("myocardium_ml"),
            "myocardium_g": v.get("myocardium_g"), "scar_ml": v.get("scar_ml"), "scar_g": v.get("scar_g"),
            "scar_pct_lvm": v.get("scar_pct_lvm"), "mvo_ml": v.get("mvo_ml"), "n_qc_flags": len(flags),
            "qc_flags": " ".join(f["code"] for f in flags),
            **(review_cells(patient.summary) if patient.summary and not patient.error
               else {"orientation_state": None, "review": None}),
            "report_html": None if patient.error else os.path.join(patient.final, f"{patient.name}_report.html")}


def run_report(inputs: Sequence[str], model_folder: str, out_dir: str, folds: Optional[Sequence[str]] = None,
               device: str = "auto", series_uids: Sequence[str] = (), mirroring: bool = True,
               checkpoint: str = "checkpoint_final.pth", debug: bool = False, scheme=None, trust_model: bool = False,
               image_type: Optional[str] = None, inversion_time: Optional[float] = None) -> int:
    """The whole job; returns 0 when every patient succeeded, 1 when any failed. Bad arguments (missing input,
    unusable or untrusted model folder, unavailable device, unusable OUT_DIR or one another run is writing) raise
    before anything is written."""
    out_dir = os.path.abspath(out_dir)
    check_output_dir(out_dir)
    sources = resolve_inputs(inputs, series_uids)
    for source in sources:
        check_apart(source.path, out_dir)
    with _bar(total=1, desc="[1/4] loading the model", unit="model") as bar:
        files_before = model_file_states(model_folder, checkpoint)
        predictor = ReportPredictor(model_folder, folds, checkpoint, device, mirroring, scheme, trust_model)
        model = dict(predictor.identity(), run_identity=run_identity(predictor, files_before))  # hashes: the SR
        bar.update()
    with OutputDirLock(out_dir):
        prepare_output_dir(out_dir, keep=(LOCK,))
        patients = [Patient(s, out_dir) for s in sources]
        _run_patients(patients, predictor, model, series_uids, image_type, inversion_time, debug)
        if len(patients) > 1:
            write_csv(os.path.join(out_dir, "cohort.csv"), [cohort_row(p) for p in patients])
    failed = [p for p in patients if p.error]
    for p in patients:
        if p.error is None:
            flags = p.summary.get("qc_flags", [])
            print(f"{p.name}: {os.path.join(p.final, p.name + '_report.html')}"
                  f"  ({len(flags)} QC flag{'s' if len(flags) != 1 else ''}"
                  f"{': ' + ', '.join(f['code'] for f in flags) if flags else ''})")
    return report_failures([(p.name, p.error) for p in failed], f"{len(failed)} of {len(patients)} patient(s)")


def report_failures(failures: Sequence, what: str) -> int:
    """One stderr line '<what> failed: name: error; ...' for the (name, error) pairs; the exit code, 1 or 0."""
    if not failures:
        return 0
    print(f"{what} failed: " + "; ".join(f"{name}: {error}" for name, error in failures), file=sys.stderr)
    return 1


def _run_patients(patients: List[Patient], predictor: ReportPredictor, model: Dict, series_uids: Sequence[str],
                  image_type: Optional[str], inversion_time: Optional[float], debug: bool) -> None:
    """Stages 2-4 for every patient; a failing patient is recorded and removed, the others go on."""
    for patient in _bar(patients, desc="[2/4] reading inputs", unit="patient"):
        try:
            convert(patient, series_uids, image_type, inversion_time)
        except Exception as exc:  # noqa: BLE001 - a failing patient must not stop the batch
            _fail(patient, "reading the input", exc, debug)
    todo = [p for p in patients if p.error is None]
    with _bar(total=len(todo) * predictor.n_members, desc="[3/4] predicting", unit="pass") as bar:
        for patient in todo:
            try:
                patient.prediction = predictor.predict(patient.image, patient.segmentation, bar.update)
            except Exception as exc:  # noqa: BLE001
                _fail(patient, "prediction", exc, debug)
    for patient in _bar([p for p in patients if p.error is None], desc="[4/4] quantification and reports",
                        unit="patient"):
        try:
            write_outputs(patient, predictor, model)
        except Exception as exc:  # noqa: BLE001
            _fail(patient, "writing the report", exc, debug)
