"""`scarnet report EXPORT_ROOT --model MODEL OUT_DIR [--num-parts N --part-id K] [--overwrite]`: one part of a
cohort, resumable.

- Parts (nnUNetv2_predict's convention): study S belongs to part `int(sha256(StudyInstanceUID)) % N`, a rule that
  depends on the study alone, never on the order of the file walk or on the other studies.
- The model is loaded once; the part's studies are then read, predicted, quantified and written one after another.
- OUT_DIR of a cohort part holds `.scarnet-output` (io_safety's marker), `.scarnet-cohort` (JSON: part, parts,
  root, index digest, model names and the run identity of `run_identity.py`: checkpoint, plans and label-map
  hashes, prediction options, versions), `index.csv` (the whole cohort's index), one folder per finished study
  and, when the part is complete, `cohort.csv` (one row per study of the part, failures included, its numbers,
  QC flags and orientation state / review reasons read from each study's report.json). `timings.csv` gets one row per study attempt (seconds of reading,
  prediction, quantification and writing), appended as each study ends (a resumed part keeps the rows of its
  earlier runs; a failed study retried gets a second row), and `run_timings.json` the index and model-loading
  seconds of the last run.
- A study is complete when its folder exists: `pipeline.write_outputs` writes the study's checksum manifest
  (`study_manifest.py`) and then its `.scarnet-report` marker last, and renames the private `.partial` folder
  into place in one step (atomic on one file system). Its report.json holds the run identity.
- Rerun into a folder holding `.scarnet-cohort` (resume): first checked, before anything in OUT_DIR changes: the
  same part, number of parts, root, index, model names and run identity (a difference is refused naming each key
  with the stored and the new value), and every complete study verified against its manifest and run identity.
  Then the folder is NOT emptied; the stored index is used; complete studies are skipped; `.partial` folders of
  a killed run are removed and their studies redone; failed studies are retried. `--overwrite` empties the
  folder (io_safety's policy for a scarnet folder) and redoes everything.
- OutputDirLock holds OUT_DIR for the whole run: two processes never write one part.
"""
import csv
import hashlib
import json
import os
import shutil
import time
from typing import Dict, List, Optional, Sequence

from nnunetv2_scarnet.io_safety import LOCK, OutputDirLock, check_output_dir, prepare_output_dir
from nnunetv2_scarnet.report.cohort_index import (Study, build_index, index_digest, read_index,
                                                  studies_of, write_index)
from nnunetv2_scarnet.report.inputs import PatientInput, ReportInputError, dicom_identifiers
from nnunetv2_scarnet.report.pipeline import MARKER as STUDY_MARKER
from nnunetv2_scarnet.report.pipeline import Patient, _bar, _fail, _prepare, report_failures, write_outputs
from nnunetv2_scarnet.report.predict import ReportPredictor
from nnunetv2_scarnet.report.qc import review_cells, with_orientation_flags
from nnunetv2_scarnet.report.run_identity import describe, differences, model_file_states, run_identity
from nnunetv2_scarnet.report.study_manifest import StudyFolderError, verified_report, write_manifest

COHORT_MARKER = ".scarnet-cohort"
#: columns of a part's (and the merged) cohort.csv
ROW_FIELDS = ["study", "status", "error", "patient_id", "study_uid", "study_date", "series_uid", "part",
              "myocardium_ml", "myocardium_g", "scar_ml", "scar_g", "scar_pct_lvm", "mvo_ml", "n_qc_flags",
              "qc_flags", "orientation_state", "review", "report_html"]
#: columns of a part's timings.csv (seconds per stage of one study run by this process)
TIMING_FIELDS = ["study", "status", "reading_s", "prediction_s", "quantification_s", "writing_s"]


class CohortStateError(ValueError):
    """OUT_DIR holds another cohort run (part, index, model) than the one asked for; the message says which."""


def part_of(study_uid: str, num_parts: int) -> int:
    """The part of a study: SHA-256 of its StudyInstanceUID modulo the number of parts."""
    return int(hashlib.sha256(study_uid.encode()).hexdigest(), 16) % num_parts


def study_is_complete(out_dir: str, name: str) -> bool:
    folder = os.path.join(out_dir, name)
    return os.path.isfile(os.path.join(folder, STUDY_MARKER)) and \
        os.path.isfile(os.path.join(folder, f"{name}_report.json"))


def _state(root: str, num_parts: int, part_id: int, digest: str, model: Dict, identity: Dict) -> Dict:
    return {"root": os.path.abspath(root), "num_parts": num_parts, "part_id": part_id, "index_digest": digest,
            "model": {k: model[k] for k in ("model_folder", "trainer", "plans", "configuration", "folds",
                                            "checkpoint", "mirroring_axes")},
            "run_identity": identity}


def read_state(folder: str, error=ValueError) -> Dict:
    """A part's `.scarnet-cohort`, checked: a JSON object with every key `_state` writes, of the right type;
    otherwise `error` naming the file and the key."""
    path = os.path.join(folder, COHORT_MARKER)
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (ValueError, OSError) as exc:
        raise error(f"{path}: not a readable cohort part marker (not valid JSON: {exc})") from None
    if not isinstance(state, dict):
        raise error(f"{path}: not a cohort part marker (a JSON {type(state).__name__}, not an object)")
    for key, kind in (("root", str), ("num_parts", int), ("part_id", int), ("index_digest", str), ("model", dict),
                      ("run_identity", dict)):
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise error(f"{path}: no valid '{key}' in the cohort part marker (written by an older or another "
                        f"program, or edited); rerun the part with --overwrite")
    if not 0 <= state["part_id"] < state["num_parts"]:
        raise error(f"{path}: part_id {state['part_id']} is not a part of {state['num_parts']}")
    return state


def _check_resume(out_dir: str, wanted: Dict) -> None:
    stored = read_state(out_dir, CohortStateError)
    for key, what in (("num_parts", "number of parts"), ("part_id", "part"), ("root", "export root"),
                      ("index_digest", "study index"), ("model", "model")):
        if stored.get(key) != wanted[key]:
            raise CohortStateError(f"{out_dir}: holds a cohort run with another {what} ({stored.get(key)} instead of "
                                   f"{wanted[key]}); rerun with the same arguments to resume, or add --overwrite")
    diffs = differences(stored["run_identity"], wanted["run_identity"])
    if diffs:
        raise CohortStateError(f"{out_dir}: holds a cohort part run with another model or options, whose numbers "
                               f"would mix with this run's: {describe(diffs, 'stored', 'now')}; resume with the "
                               f"model and options it was run with, or add --overwrite to redo the part")


def checked_report(out_dir: str, study: Study, identity: Dict) -> Dict:
    """The report.json of a complete study of a part, verified (`study_manifest.verified_report`), written with
    run identity `identity` and of the study the index names (patient, study and series UIDs)."""
    report = verified_report(out_dir, study.name)
    model = report.get("model") if isinstance(report.get("model"), dict) else {}
    diffs = differences(model.get("run_identity"), identity)
    if diffs:
        raise StudyFolderError(f"{os.path.join(out_dir, study.name)}: written by another run than its part's: "
                               f"{describe(diffs, 'study', 'part')}")
    ids = report.get("identifiers") if isinstance(report.get("identifiers"), dict) else {}
    for key, wanted in (("PatientID", study.patient_id), ("StudyInstanceUID", study.uid),
                        ("SeriesInstanceUID", study.chosen["series_uid"] if study.chosen else None)):
        if ids.get(key, "") != wanted:
            raise StudyFolderError(f"{os.path.join(out_dir, study.name)}: its report is of {key} "
                                   f"{ids.get(key, '(none)')}, the index says {wanted}")
    return report


def load_or_build_index(root: str, out_dir: str, resume: bool, index_path: Optional[str], workers: Optional[int]):
    """(index rows, where they came from): `index_path` when given, else OUT_DIR's stored index.csv on a resume,
    else a new scan."""
    stored = os.path.join(out_dir, "index.csv")
    if index_path:
        return read_index(index_path), "--index"
    if resume and os.path.isfile(stored):
        return read_index(stored), "index.csv of the resumed part"
    return build_index(root, workers), "scan"


def convert_study(patient: Patient, study: Study) -> None:
    """The chosen series of an indexed study -> NIfTI (its files only, whatever else shares their folders)."""
    from nnunetv2_scarnet.ingestion import dicom_to_nifti

    if study.chosen is None:  # refused at indexing, or no LGE series: no work folder, nothing predicted
        raise ReportInputError(f"{study.folder}: {study.reason}")
    _prepare(patient)
    links = os.path.join(patient.work, "series_files")
    os.makedirs(links)
    original = {}
    for k, path in enumerate(study.files):
        link = os.path.join(links, f"{k:05d}.dcm")
        os.symlink(path, link)
        original[link] = path
    try:
        try:
            stack = dicom_to_nifti(links, patient.image, study.chosen["series_uid"])
        except Exception as exc:  # noqa: BLE001 - the message names the source files, not the private links
            message = str(exc)
            for link, path in original.items():
                message = message.replace(link, path)
            raise ReportInputError(message.replace(links, study.folder)) from None
        patient.dicom_files = [original[f] for f in dict.fromkeys(stack.files)]
        patient.identifiers = dicom_identifiers(patient.dicom_files)
    finally:
        shutil.rmtree(links)
    patient.source.series_uid = study.chosen["series_uid"]


def study_row(study: Study, part_id: int, error: Optional[str], report: Optional[Dict] = None) -> Dict:
    """The cohort row of a study: identifiers from the index, numbers, QC flags (the orientation's included) and the
    orientation state with its review reasons from its report.json (`report`, so a resumed, an uninterrupted and a
    merged run agree), the error of a failed one."""
    row = {k: None for k in ROW_FIELDS}
    row.update(study=study.name, status="failed" if error else "ok", error=error, patient_id=study.patient_id,
               study_uid=study.uid, study_date=study.study_date, part=part_id,
               series_uid=study.chosen["series_uid"] if study.chosen else None)
    if error is None:
        v, flags = report.get("volumes", {}), with_orientation_flags(report.get("qc_flags", []), report)
        row.update({k: v.get(k) for k in ("myocardium_ml", "myocardium_g", "scar_ml", "scar_g", "scar_pct_lvm",
                                          "mvo_ml")})
        row.update(n_qc_flags=len(flags), qc_flags=" ".join(f["code"] for f in flags),
                   report_html=f"{study.name}/{study.name}_report.html", **review_cells(report))
    return row


def write_rows(path: str, rows: List[Dict]) -> None:
    """A cohort table (`ROW_FIELDS`, header also when empty; None as an empty cell), atomically."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows({k: "" if row[k] is None else row[k] for k in ROW_FIELDS} for row in rows)
    os.replace(tmp, path)


def _clean_for_resume(out_dir: str) -> None:
    """Remove the `.partial` leftovers of a killed run and the part's old cohort.csv (rewritten at the end)."""
    for name in os.listdir(out_dir):
        if name.startswith(".") and name.endswith(".partial"):
            shutil.rmtree(os.path.join(out_dir, name))
    if os.path.exists(os.path.join(out_dir, "cohort.csv")):
        os.remove(os.path.join(out_dir, "cohort.csv"))


def run_cohort(root: str, model_folder: str, out_dir: str, num_parts: int = 1, part_id: int = 0,
               overwrite: bool = False, index_path: Optional[str] = None, workers: Optional[int] = None,
               folds: Optional[Sequence[str]] = None, device: str = "auto", mirroring: bool = True,
               checkpoint: str = "checkpoint_final.pth", debug: bool = False, scheme=None,
               trust_model: bool = False, rows: Optional[List[Dict]] = None,
               index_seconds: Optional[float] = None) -> int:
    """One part of a cohort (module doc); 0 when every study of the part succeeded, 1 when any failed.
    `rows`: an index already built from `root` (by the caller's check whether `root` is a cohort), which took
    `index_seconds`."""
    if not 0 <= part_id < num_parts:
        raise ValueError(f"--part-id {part_id}: must be between 0 and --num-parts - 1 ({num_parts - 1})")
    out_dir, root = os.path.abspath(out_dir), os.path.abspath(root)
    check_output_dir(out_dir)
    real_out, real_root = os.path.realpath(out_dir), os.path.realpath(root)
    if real_out == real_root or real_out.startswith(real_root.rstrip(os.sep) + os.sep):
        raise CohortStateError(f"{out_dir}: output folder lies inside the export root {root}, whose files are "
                               f"indexed; choose an output folder outside it")
    resuming = not overwrite and os.path.isfile(os.path.join(out_dir, COHORT_MARKER))
    source = "scan"  # rows given by the caller: it scanned, in index_seconds
    if rows is None or resuming or index_path:
        started = time.perf_counter()
        rows, source = load_or_build_index(root, out_dir, resuming, index_path, workers)
        index_seconds = time.perf_counter() - started
    indexed = time.perf_counter()
    files_before = model_file_states(model_folder, checkpoint)
    predictor = ReportPredictor(model_folder, folds, checkpoint, device, mirroring, scheme, trust_model)
    identity = run_identity(predictor, files_before)
    model = dict(predictor.identity(), run_identity=identity)
    run_timings = {"index_s": index_seconds or 0.0, "model_loading_s": time.perf_counter() - indexed,
                   "index_from": source}
    state = _state(root, num_parts, part_id, index_digest(rows), model, identity)
    studies = [s for s in studies_of(rows) if part_of(s.uid, num_parts) == part_id]
    reports: Dict[str, Dict] = {}
    with OutputDirLock(out_dir):
        if not overwrite and os.path.isfile(os.path.join(out_dir, COHORT_MARKER)):
            _check_resume(out_dir, state)  # nothing in OUT_DIR has changed yet
            for study in studies:
                if study_is_complete(out_dir, study.name):
                    try:
                        reports[study.name] = checked_report(out_dir, study, identity)
                    except StudyFolderError as exc:
                        raise CohortStateError(f"{exc}; the part cannot be resumed over it: redo the part with "
                                               f"--overwrite") from None
            _clean_for_resume(out_dir)
        else:
            prepare_output_dir(out_dir, keep=(LOCK,))
            write_index(rows, os.path.join(out_dir, "index.csv"))
            tmp = os.path.join(out_dir, f"{COHORT_MARKER}.tmp")
            with open(tmp, "w") as f:
                json.dump(state, f, indent=1)
            os.replace(tmp, os.path.join(out_dir, COHORT_MARKER))  # after index.csv: a resume finds both
        with open(os.path.join(out_dir, "run_timings.json"), "w") as f:
            json.dump(run_timings, f, indent=1)
        out_rows = []
        for study in _bar(studies, desc=f"part {part_id} of {num_parts}: studies", unit="study"):
            error = None
            if study.name not in reports:
                seconds: Dict[str, float] = {}
                error = _run_study(study, out_dir, predictor, model, debug, seconds)
                _append_timing(out_dir, study.name, error, seconds)
                if error is None:
                    with open(os.path.join(out_dir, study.name, f"{study.name}_report.json")) as f:
                        reports[study.name] = json.load(f)
            out_rows.append(study_row(study, part_id, error, reports.get(study.name)))
        write_rows(os.path.join(out_dir, "cohort.csv"), out_rows)  # written last: the part is complete
    failed = [r for r in out_rows if r["status"] == "failed"]
    print(f"part {part_id} of {num_parts}: {len(out_rows) - len(failed)} of {len(out_rows)} studies reported "
          f"({os.path.join(out_dir, 'cohort.csv')})")
    return report_failures([(r["study"], r["error"]) for r in failed],
                           f"{len(failed)} stud{'ies' if len(failed) != 1 else 'y'}")


def _append_timing(out_dir: str, name: str, error: Optional[str], seconds: Dict[str, float]) -> None:
    path = os.path.join(out_dir, "timings.csv")
    new = not os.path.isfile(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, TIMING_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({"study": name, "status": "failed" if error else "ok",
                         **{f"{k}_s": round(v, 4) for k, v in seconds.items()}})


def _run_study(study: Study, out_dir: str, predictor: ReportPredictor, model: Dict, debug: bool,
               seconds: Dict[str, float]) -> Optional[str]:
    """Read, predict and write one study; its error message, or None. A failure never stops the cohort.
    `seconds` receives the wall time of each stage that ran (reading, prediction, quantification, writing)."""
    source = PatientInput(study.name, study.folder if study.series else "", "dicom",
                          series_choice=study.reason)
    patient = Patient(source, out_dir)
    stage = "reading the input"
    try:
        clock = time.perf_counter()
        convert_study(patient, study)
        seconds["reading"] = time.perf_counter() - clock
        stage = "prediction"
        clock = time.perf_counter()
        patient.prediction = predictor.predict(patient.image, patient.segmentation)
        seconds["prediction"] = time.perf_counter() - clock
        stage = "writing the report"
        write_outputs(patient, predictor, model, seconds, before_final=write_manifest)
    except Exception as exc:  # noqa: BLE001 - one unreadable study never stops the cohort
        _fail(patient, stage, exc, debug)
        return patient.error
    return None
