"""Quantify label maps (expert or any nnU-Net prediction folder) into CSV + JSON + PNG reports."""
import csv
import json
import os
from dataclasses import asdict
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from tqdm import tqdm

from nnunetv2_scarnet.io_safety import prepare_output_dir
from nnunetv2_scarnet.quantification.figures import CONTOUR_LEGEND, aha_bullseye_png, bullseye_png, overlay_png
from nnunetv2_scarnet.quantification.label_scheme import (LabelScheme, Stack, case_id_of, geometry_difference,
                                                          image_file, label_files, read_label_stack, read_stack,
                                                          same_geometry, scheme_summary)
from nnunetv2_scarnet.quantification.aha import (aha_summary, aha_table, segment_borders, stack_levels,
                                                 wall_directions)
from nnunetv2_scarnet.quantification.orientation import Orientation, find_orientation
from nnunetv2_scarnet.quantification.sectors import SectorGeometry, stack_sectors
from nnunetv2_scarnet.quantification.volumes import patient_volumes, slice_volumes


#: a user override for every case, or per case {case id: value}
PerCase = Union[float, int, bool, Dict[str, Union[float, int, bool]]]


#: CSV headers of the keys whose JSON names carry no unit (the JSON keys stay): transmurality is a fraction 0-1,
#: unlike the `_pct` columns next to it. Every other column names its unit already (`_ml`, `_g`, `_mm`, `_deg`,
#: `_px`, `_pct`, `_pct_lvm`, `_pct_infarct`) or is a count (`n_`) or a dimensionless 0-1 coefficient (Dice, CCC,
#: ICC, kappa, confidence).
CSV_HEADERS = {"transmurality_mean": "transmurality_mean_fraction", "transmurality_max": "transmurality_max_fraction",
               "transmurality_reference": "transmurality_fraction_reference",
               "transmurality_prediction": "transmurality_fraction_prediction"}


def write_csv(path: str, rows: List[Dict]) -> None:
    """Rows as CSV (None as an empty cell); headers with their unit (`CSV_HEADERS`)."""
    if not rows:
        open(path, "w").close()
        return
    fields = list(rows[0].keys())
    for row in rows[1:]:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[CSV_HEADERS.get(k, k) for k in fields])
        writer.writeheader()
        for row in rows:
            writer.writerow({CSV_HEADERS.get(k, k): ("" if v is None else v) for k, v in row.items()})


def _orientation(label: Stack, scheme: LabelScheme, image: Optional[np.ndarray], septum_deg, aha_direction,
                 base_first) -> Orientation:
    myo, scar, _, pool = scheme.masks(label.data)
    return find_orientation(myo, pool, scar, label.affine, label.spacing, image, septum_deg, aha_direction,
                            None if base_first is None else not base_first)


def _slice_layout(orientation: Orientation, levels: Dict[int, str]) -> None:
    """Adds to each slice of `orientation.slices` what a picture needs to show where its segments are: its AHA
    level, the borders between its segments and the directions of its walls (all from the septum it uses)."""
    for k, entry in orientation.slices.items():
        level = levels.get(k)
        entry["level"] = level
        entry["segment_borders_deg"] = [] if level is None else \
            segment_borders(level, entry["septum_deg"], orientation.direction)
        entry["walls_deg"] = wall_directions(entry["septum_deg"], orientation.direction)


def quantify_stack(label: Stack, scheme: LabelScheme, geometry: SectorGeometry, image_path: Optional[str] = None,
                   septum_deg: Optional[float] = None, aha_direction: Optional[int] = None,
                   base_first: Optional[bool] = None, image: Optional[np.ndarray] = None,
                   mvo_assessed: Optional[bool] = None) -> Dict:
    """Everything the report holds for one label stack.

    Orientation is automatic by default (`orientation.find_orientation`: geometry of a real patient-oriented
    affine, else the image at `image_path` / `image` and the labels); `septum_deg`, `aha_direction` (+1/-1) and
    `base_first` override its parts. The AHA table (`aha`, `aha_summary`) is given when the orientation is
    confident or given by the user; otherwise `aha_status` says that it needs the user's orientation.
    `mvo_assessed` None: MVO is assessed when the scheme declares an MVO label or an MVO value occurs in this
    stack (`label_scheme.labels_carry_mvo`): decided for this patient alone."""
    slices = slice_volumes(label, scheme, mvo_assessed)
    if image is None and image_path:
        image = read_stack(image_path).data
    orientation = _orientation(label, scheme, None if image is None else np.asarray(image, np.float64),
                               septum_deg, aha_direction, base_first)
    myo, scar, _, pool = scheme.masks(label.data)
    if orientation.aha_ready:
        _slice_layout(orientation, stack_levels(myo, pool, orientation.apex_first))
    result = {"case": case_id_of(label.path), "label_file": label.path, "image_file": image_path,
              "patient": patient_volumes(label, scheme, slices, mvo_assessed), "slices": slices,
              "sectors": stack_sectors(label, scheme, geometry), "sector_geometry": asdict(geometry),
              "orientation": orientation.as_dict(), "aha_status": orientation.aha_status}
    if orientation.aha_ready:
        result["aha"] = aha_table(myo, scar, pool, label.spacing, orientation.septum_deg, orientation.direction,
                                  orientation.apex_first, orientation.slice_septum_deg, geometry.chords_per_slice)
        result["aha_summary"] = aha_summary(result["aha"])
    return result


def quantify_case(label_path: str, scheme: LabelScheme, geometry: SectorGeometry, image_path: Optional[str] = None,
                  septum_deg: Optional[float] = None, aha_direction: Optional[int] = None,
                  base_first: Optional[bool] = None, mvo_assessed: Optional[bool] = None) -> Dict:
    """`quantify_stack` of the label map at `label_path` (image at `image_path` for the orientation)."""
    return quantify_stack(read_label_stack(label_path, scheme), scheme, geometry, image_path, septum_deg,
                          aha_direction, base_first, mvo_assessed=mvo_assessed)


def _checked_inputs(labels_dir: str, images_dir: Optional[str], scheme: LabelScheme) -> List[Tuple[Stack, Optional[str]]]:
    """Every label stack (.nii.gz or .nii, validated) with its image path; raises before anything is written."""
    files = label_files(labels_dir)
    if not files:
        raise ValueError(f"{labels_dir}: no label files (<case>.nii.gz or <case>.nii)")
    inputs = []
    for case, name in sorted(files.items()):
        label = read_label_stack(os.path.join(labels_dir, name), scheme)
        image_path = None
        if images_dir:
            image_path = image_file(images_dir, case)
            if image_path is None:
                raise FileNotFoundError(f"{os.path.join(images_dir, case + '_0000.nii.gz')} (or .nii): image for "
                                        f"label {label.path} not found")
            image = read_stack(image_path)  # the whole image (NaN, spacing), not only the header
            if not same_geometry(image, label):
                raise ValueError(f"{label.path}: geometry differs from image {image_path}: "
                                 f"{geometry_difference(label, image)}")
        inputs.append((label, image_path))
    return inputs


def _pictures(result: Dict, label: Stack, image: Optional[Stack], scheme: LabelScheme, out_dir: str) -> None:
    case = result["case"]
    orientation = result["orientation"]
    if image is not None:
        overlay_png(image, label, scheme, os.path.join(out_dir, f"{case}_overlay.png"),
                    title=f"{case}: {CONTOUR_LEGEND}", orientation=orientation)
    if "aha" in result:
        aha_bullseye_png(result["aha"], os.path.join(out_dir, f"{case}_bullseye.png"),
                         f"{case}: scar per AHA segment (orientation: {orientation['source']})")
        return
    by_slice: Dict[int, List] = {}
    for r in result["sectors"]:
        by_slice.setdefault(r["slice"], []).append(r["scar_extent_pct"])
    order = sorted(by_slice, reverse=bool(orientation.get("apex_first")))  # base outermost
    bullseye_png([by_slice[k] for k in order], os.path.join(out_dir, f"{case}_bullseye.png"),
                 f"{case}: scar extent per sector (no AHA: orientation needed)", [f"slice {k}" for k in order])


def _patient_row(result: Dict) -> Dict:
    o = result["orientation"]
    row = {"case": result["case"], **{k: v for k, v in result["patient"].items()
                                      if k not in ("slices_without_myocardium", "spacing_mm")}}
    row.update({"septum_deg": o["septum_deg"], "direction": o["direction"], "apex_first": o["apex_first"],
                "orientation_source": o["source"], "orientation_confidence": o["confidence"],
                "orientation_warnings": " | ".join(o["warnings"]), "orientation_state": o.get("state"),
                "handedness": o.get("handedness"), "aha_status": result["aha_status"]})
    summary = result.get("aha_summary", {})
    row["n_segments_transmurality_ge_50"] = summary.get("n_segments_transmurality_ge_50")
    row["territories_transmurality_ge_50"] = " ".join(summary.get("territories_transmurality_ge_50", []))
    return row


def _for_case(value, case: str):
    return value.get(case) if isinstance(value, dict) else value


def folder_mvo_status(statuses: List[str]) -> str:
    """The patients' MVO statuses in one line: the common one, or 'assessed in k of n cases'."""
    if len(set(statuses)) == 1:
        return statuses[0]
    return f"assessed in {statuses.count('assessed')} of {len(statuses)} cases (decided per patient)"


def _scheme_of_folder(labels_dir: str) -> Tuple[LabelScheme, Optional[str]]:
    """The scheme of `labels_dir/dataset.json` (nnU-Net copies it into prediction folders), else the defaults."""
    path = os.path.join(labels_dir, "dataset.json")
    if os.path.isfile(path):
        try:
            return LabelScheme.from_dataset_json(path), path
        except (ValueError, KeyError, json.JSONDecodeError):
            return LabelScheme(), None
    return LabelScheme(), None


def quantify_folder(labels_dir: str, out_dir: str, images_dir: Optional[str] = None,
                    scheme: Optional[LabelScheme] = None, geometry: SectorGeometry = SectorGeometry(),
                    septum_deg: Optional[PerCase] = None, aha_direction: Optional[PerCase] = None,
                    base_first: Optional[PerCase] = None, pictures: bool = True,
                    mvo_assessed: Optional[bool] = None) -> Dict:
    """Quantify every label map (`<case>.nii.gz` or `<case>.nii`) of `labels_dir`; images (nnU-Net
    `<case>_0000.nii.gz` or `.nii`) give the
    orientation (RV blood pool) and the overlay pictures. Writes patients.csv, slices.csv, sectors.csv, aha.csv,
    report.json and PNGs. All label maps are read and checked before anything is written.

    Orientation is automatic per case unless `septum_deg` / `aha_direction` / `base_first` are given: one value
    for every case, or a dict {case: value} for some cases (the others stay automatic). Without `scheme`, a
    `dataset.json` in `labels_dir` (nnU-Net prediction folders hold one) gives the label values, else the EMIDEC
    defaults. MVO is decided per patient, never from the other patients of the folder: assessed when the scheme
    declares an MVO label (a dataset.json names one: 0 mL for a patient without MVO) or, with undeclared values,
    when this patient's label map holds the MVO value; otherwise (and with `mvo_assessed=False`) it is reported as
    not assessed (null), never 0 mL."""
    scheme_file = None
    if scheme is None:
        scheme, scheme_file = _scheme_of_folder(labels_dir)
    inputs = _checked_inputs(labels_dir, images_dir, scheme)
    prepare_output_dir(out_dir)  # new, or an earlier scarnet run's folder emptied (docs/reliability.md)
    cases, patients, slice_rows, sector_rows, aha_rows = [], [], [], [], []
    for label, image_path in tqdm(inputs, desc="quantifying", unit="case"):
        image = read_stack(image_path) if image_path else None
        case_id = case_id_of(label.path)
        result = quantify_stack(label, scheme, geometry, image_path, _for_case(septum_deg, case_id),
                                _for_case(aha_direction, case_id), _for_case(base_first, case_id),
                                image=None if image is None else image.data, mvo_assessed=mvo_assessed)
        case = result["case"]
        cases.append(result)
        patients.append(_patient_row(result))
        slice_rows += [{"case": case, **r} for r in result["slices"]]
        sector_rows += [{"case": case, **r} for r in result["sectors"]]
        aha_rows += [{"case": case, **r} for r in result.get("aha", [])]
        if pictures:
            _pictures(result, label, image, scheme, out_dir)
    write_csv(os.path.join(out_dir, "patients.csv"), patients)
    write_csv(os.path.join(out_dir, "slices.csv"), slice_rows)
    write_csv(os.path.join(out_dir, "sectors.csv"), sector_rows)
    if aha_rows:
        write_csv(os.path.join(out_dir, "aha.csv"), aha_rows)
    report = {"label_scheme": scheme_summary(scheme), "label_scheme_file": scheme_file,
              "mvo_status": folder_mvo_status([c["patient"]["mvo_status"] for c in cases]), "cases": cases}
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report
