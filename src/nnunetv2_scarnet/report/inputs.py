"""Inputs of `scarnet report`: DICOM folders (one per patient) or NIfTI stacks, and the choice of the LGE series.

LGE series heuristic (a study folder often holds cine, localisers, TI scouts, T1 maps and the LGE stack): every
series of the folder gets a score from its headers, and the highest score wins.

- SeriesDescription / ProtocolName naming late enhancement (LGE, DE, PSIR, MDE, delayed, late, viability,
  enhancement): +3. Naming something else (cine, localiser/scout/survey, TI scout, Look-Locker, T1/T2 map, MOLLI,
  perfusion, flow, long-axis 2/3/4-chamber views): -5.
- ImageType containing LOCALIZER: -5; a phase image (P / PHASE, not PSIR): -3.
- One inversion time for the whole series, between 150 and 600 ms, also when it drifts from slice to slice by up to
  25 % of its median (scanners lengthen the TI over a stack, e.g. 280-340 ms): +2. Several inversion times at one
  slice position, or spread over more than 25 % of their median (a TI scout): -4.
- Three or more distinct slice positions (a short-axis stack; frames of an Enhanced MR count as slices): +1; a
  single position (cine, single slice): -2. A DICOM SEG or other non-image object in the folder is no candidate.

A folder holding one series uses it. When two series share the best score the folder is refused with the list
of series and their scores; `--series-uid` then picks one (it always overrides the heuristic).
"""
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_scarnet.ingestion import list_series
from nnunetv2_scarnet.ingestion.dicom_header import header_of
from nnunetv2_scarnet.ingestion.dicom_series import SeriesInfo
from nnunetv2_scarnet.ingestion.dicom_slices import SliceRef, slices_of
from nnunetv2_scarnet.ingestion.series_kinds import ti_spread_is_drift

LGE_WORDS = re.compile(r"(\blge\b|\bde\b|psir|\bmde\b|delay|\blate\b|viab|enhanc|\bpag\b|\blge_|_lge)", re.I)
OTHER_WORDS = re.compile(r"(cine|local|scout|survey|look.?locker|t1.?map|t2|molli|perfusion|flow|\b[234] ?ch|"
                         r"\blax\b|\bmap\b|tfl_?ti|ti.?scout)", re.I)


#: NIfTI file names that name no patient (the parent folder does)
GENERIC_NAMES = {"image", "img", "lge", "data", "stack"}
#: NIfTI file names of label maps (in a folder of NIfTI stacks they are not patients)
LABEL_NAMES = {"label", "labels", "seg", "segmentation", "mask", "gt", "ground_truth", "groundtruth", "contours"}


class ReportInputError(ValueError):
    """An input of `scarnet report` cannot be used; the message names the path."""


@dataclass
class SeriesChoice:
    uid: str
    description: str
    n_files: int
    score: int
    reasons: List[str] = field(default_factory=list)


@dataclass
class PatientInput:
    name: str                      # patient folder name under OUT_DIR
    path: str                      # the DICOM folder or the NIfTI file
    kind: str                      # "dicom" or "nifti"
    series_uid: Optional[str] = None
    series_choice: str = ""        # how the series was chosen (for the report)


def _inversion_time_score(slices: Sequence[SliceRef]) -> Tuple[int, str]:
    """Score and reason from the inversion times: several TIs at one slice position, or TIs spread over more than
    25 % of their median (`series_kinds.ti_spread_is_drift`), are a TI scout; one TI, or one drifting a little
    from slice to slice, counts as one."""
    times = [s.inversion_time for s in slices if s.inversion_time is not None]
    if not times:
        return 0, ""
    at: Dict[Tuple[float, ...], set] = {}
    for s in slices:
        at.setdefault(tuple(round(v, 2) for v in s.position), set()).add(s.inversion_time)
    low, high, median = min(times), max(times), float(np.median(times))
    if any(len(v) > 1 for v in at.values()):
        return -4, f"{len(set(times))} inversion times at one slice position (TI scout)"
    if not ti_spread_is_drift(times):
        return -4, f"inversion times {low:g}-{high:g} ms (TI scout)"
    if 150.0 <= median <= 600.0:
        return 2, (f"inversion time {median:.0f} ms" if high - low <= 0.5 else
                   f"inversion time {low:g}-{high:g} ms (drifting over the slices)")
    return 0, ""


def score_series(series: SeriesInfo) -> SeriesChoice:
    """Score one series by the heuristic of the module doc (headers only; Enhanced MR frames count as slices)."""
    first = header_of(series.files[0])
    text = " ".join(str(first.get(k, "")) for k in ("SeriesDescription", "ProtocolName", "SequenceName"))
    score, reasons = 0, []
    if LGE_WORDS.search(text):
        score, reasons = score + 3, reasons + [f"name '{text.strip()}' says LGE"]
    if OTHER_WORDS.search(text):
        score, reasons = score - 5, reasons + [f"name '{text.strip()}' says another sequence"]
    image_type = {v.strip().upper() for s in series.slices for v in s.image_type.split("\\")}
    if "LOCALIZER" in image_type:
        score, reasons = score - 5, reasons + ["ImageType LOCALIZER"]
    if ("P" in image_type or "PHASE" in image_type) and "PSIR" not in image_type:
        score, reasons = score - 3, reasons + ["phase image"]
    ti_score, ti_reason = _inversion_time_score(series.slices)
    if ti_reason:
        score, reasons = score + ti_score, reasons + [ti_reason]
    positions = {tuple(round(v, 1) for v in s.position) for s in series.slices}
    if len(positions) >= 3:
        score, reasons = score + 1, reasons + [f"{len(positions)} slice positions"]
    elif len(positions) == 1:
        score, reasons = score - 2, reasons + ["a single slice position"]
    return SeriesChoice(series.uid, series.description, len(series.files), score, reasons)


def only_series_choice(choice: SeriesChoice, where: str) -> Dict[str, str]:
    """Whether the only series of a study or folder is taken as its LGE stack: yes unless its headers speak against
    it (a negative score: a cine, T1 map or localizer name, a phase image, a TI scout, a single slice position)
    and its name does not say LGE, so that a study without LGE is never quantified on another sequence. Returns
    index-row fields."""
    evidence = "; ".join(choice.reasons)
    if choice.score < 0 and not any("says LGE" in r for r in choice.reasons):
        return {"chosen": "no", "reason": f"the only series in the {where} is not an LGE stack: {evidence}"}
    return {"chosen": "yes", "reason": f"the only series in the {where}" + (f" ({evidence})" if evidence else "")}


def choose_lge_series(folder: str, series_uids: Sequence[str] = (), images_chosen: bool = False) -> SeriesChoice:
    """The LGE series of a DICOM folder: a `series_uids` entry present in it, else the heuristic's choice.
    `images_chosen`: the user picks images of the series (--image-type / --inversion-time), so a folder's only
    series is taken even when it scores as a TI scout or a phase image."""
    series = list_series(folder)
    if not series:
        raise ReportInputError(f"{folder}: no DICOM image files found")
    by_uid = {s.uid: s for s in series}
    for uid in series_uids:
        if uid in by_uid:
            s = by_uid[uid]
            return SeriesChoice(uid, s.description, len(s.files), 0, ["chosen with --series-uid"])
    if len(series) == 1:
        choice = score_series(series[0])
        verdict = only_series_choice(choice, "folder")
        if verdict["chosen"] != "yes" and not images_chosen:
            raise ReportInputError(f"{folder}: {verdict['reason']}; if it is the LGE stack, choose it with "
                                   f"--series-uid {choice.uid}")
        return SeriesChoice(choice.uid, choice.description, choice.n_files, choice.score, [verdict["reason"]])
    scored = sorted((score_series(s) for s in series), key=lambda c: -c.score)
    if scored[0].score == scored[1].score:
        listing = "; ".join(f"{c.uid} ({c.description or 'no description'}, {c.n_files} files, score {c.score})"
                            for c in scored)
        raise ReportInputError(f"{folder}: cannot tell which of {len(series)} series is the LGE stack; choose one "
                               f"with --series-uid: {listing}")
    return scored[0]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "patient"


def resolve_inputs(paths: Sequence[str], series_uids: Sequence[str] = ()) -> List[PatientInput]:
    """One PatientInput per DICOM folder or NIfTI file (a folder of NIfTI stacks gives one per image; label maps
    such as EMIDEC's `label.nii.gz` beside `image.nii.gz` are not patients). Only checks that the paths exist;
    the series of each DICOM folder is chosen later, patient by patient. Names are unique (`unique_names`)."""
    patients: List[PatientInput] = []
    for path in paths:
        path = os.path.abspath(path)
        if not os.path.exists(path):
            raise ReportInputError(f"{path}: no such file or folder")
        if os.path.isfile(path):
            if not path.endswith((".nii.gz", ".nii")):
                raise ReportInputError(f"{path}: expected a DICOM folder or a NIfTI stack (.nii.gz / .nii)")
            patients.append(PatientInput(_nifti_name(path), path, "nifti", series_choice="NIfTI stack"))
            continue
        niftis = sorted(f for f in os.listdir(path) if f.endswith((".nii.gz", ".nii")))
        if niftis and _only_nifti(path):
            images = [f for f in niftis if not _is_label_name(f)]
            if not images:
                raise ReportInputError(f"{path}: holds only label maps ({', '.join(niftis)}), no image stack")
            patients += [PatientInput(_nifti_name(os.path.join(path, f)), os.path.join(path, f), "nifti",
                                      series_choice="NIfTI stack") for f in images]
        else:
            patients.append(PatientInput(_safe_name(os.path.basename(path)), path, "dicom"))
    for patient, name in zip(patients, unique_names([p.name for p in patients])):
        patient.name = name
    return patients


def unique_names(names: Sequence[str]) -> List[str]:
    """Output folder names, unique by construction: the first of equal names keeps it, the others get the first
    `_2`, `_3` ... suffix that is neither another input's name nor taken. Compared case-insensitively (macOS and
    Windows file systems), so `P`, `p` and an input already called `P_2` never share a folder."""
    taken = {n.lower() for n in names}
    used: set = set()
    out = []
    for name in names:
        candidate, k = name, 1
        while candidate.lower() in used or (k > 1 and candidate.lower() in taken):
            k += 1
            candidate = f"{name}_{k}"
        used.add(candidate.lower())
        out.append(candidate)
    return out


def _only_nifti(folder: str) -> bool:
    return all(f.endswith((".nii.gz", ".nii", ".json")) or f.startswith(".") for f in os.listdir(folder))


def _stem(path: str) -> str:
    name = os.path.basename(path)
    return name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else name


def _is_label_name(path: str) -> bool:
    """A label map by its file name (EMIDEC `label.nii.gz`, `seg`, `mask`, `gt` ...), not an image stack."""
    return _stem(path).lower() in LABEL_NAMES


def _nifti_name(path: str) -> str:
    """Patient name of a NIfTI stack (`path`: the file's full path): the file name without nnU-Net's `_0000`;
    a generic name (`image.nii.gz`) is replaced by the name of the folder that holds it."""
    name = _stem(path)
    if len(name) > 5 and name[-5] == "_" and name[-4:].isdigit():  # nnU-Net channel suffix
        name = name[:-5]
    if name.lower() in GENERIC_NAMES:  # <patient>/image.nii.gz: the folder names the patient
        name = os.path.basename(os.path.dirname(os.path.abspath(path))) or name
    return _safe_name(name)


def dicom_identifiers(files: Sequence[str]) -> Dict[str, str]:
    """Patient, study and series identifiers the DICOM carries (first file of the series), with the attribute the
    pixel spacing was read from (`PixelSpacingSource`) and the Slice Thickness of the slices (one value, or the
    range 'a-b' when they differ). Every file must carry one and the same StudyInstanceUID
    (the study's identity, which its DICOM SEG references): refused here, at reading, naming the file, never after
    the prediction."""
    ds = header_of(files[0])
    _check_study_uid(files[0], ds, str(ds.get("StudyInstanceUID", "") or ""))
    keys = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyDescription",
            "AccessionNumber", "StudyInstanceUID", "SeriesNumber", "SeriesDescription", "SeriesInstanceUID",
            "Manufacturer", "ManufacturerModelName", "MagneticFieldStrength", "InversionTime")
    identifiers = {k: str(ds.get(k, "")) for k in keys if str(ds.get(k, "")) != ""}
    slices = slices_of(files[0], ds)
    if slices:
        identifiers["PixelSpacingSource"] = slices[0].pixel_spacing_source
    for path in list(dict.fromkeys(files))[1:]:  # each file once (Enhanced MR: one file, many frames)
        other = header_of(path)
        _check_study_uid(path, other, identifiers["StudyInstanceUID"])
        slices += slices_of(path, other)
    thickness = sorted({s.thickness for s in slices if s.thickness is not None})  # the report's acquisition table
    if thickness:
        identifiers["SliceThickness"] = f"{thickness[0]:g}" + (f"-{thickness[-1]:g}" if len(thickness) > 1 else "")
    times = sorted({s.inversion_time for s in slices if s.inversion_time is not None})
    if len(times) > 1:  # drifting over the slices (a mix never gets this far), or Enhanced MR frames
        identifiers["InversionTime"] = f"{times[0]:g}-{times[-1]:g} ms over the slices"
    elif times:
        identifiers.setdefault("InversionTime", f"{times[0]:g}")  # Enhanced MR: per-frame MR Modifier
    return identifiers


def _check_study_uid(path: str, ds, expected: str) -> None:
    uid = str(ds.get("StudyInstanceUID", "") or "")
    if not uid:
        raise ReportInputError(f"{path}: no StudyInstanceUID (0020,000D); the study cannot be identified and its "
                               f"DICOM SEG could not reference it, so none is made up (export the study with its "
                               f"UIDs)")
    if uid != expected:
        raise ReportInputError(f"{path}: StudyInstanceUID {uid} differs from {expected} of the series' other files; "
                               f"one series belongs to one study")
