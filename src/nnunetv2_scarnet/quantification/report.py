"""Quantify label maps (expert or any nnU-Net prediction folder) into CSV + JSON + PNG reports."""
import csv
import json
import os
from dataclasses import asdict
from typing import Dict, List, Optional, Tuple

from tqdm import tqdm

from nnunetv2_scarnet.io_safety import prepare_output_dir
from nnunetv2_scarnet.quantification.figures import aha_bullseye_png, bullseye_png, overlay_png
from nnunetv2_scarnet.quantification.label_scheme import (LabelScheme, Stack, case_id_of, geometry_difference,
                                                          read_label_stack, read_stack, same_geometry)
from nnunetv2_scarnet.quantification.sectors import SectorGeometry, aha_segments, stack_sectors
from nnunetv2_scarnet.quantification.volumes import patient_volumes, slice_volumes


def write_csv(path: str, rows: List[Dict]) -> None:
    if not rows:
        open(path, "w").close()
        return
    fields = list(rows[0].keys())
    for row in rows[1:]:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def quantify_stack(label: Stack, scheme: LabelScheme, geometry: SectorGeometry, image_path: Optional[str] = None,
                   septum_deg: Optional[float] = None, aha_direction: int = 1, base_first: bool = True) -> Dict:
    """Everything the report holds for one label stack."""
    slices = slice_volumes(label, scheme)
    result = {"case": case_id_of(label.path), "label_file": label.path, "image_file": image_path,
              "patient": patient_volumes(label, scheme, slices), "slices": slices,
              "sectors": stack_sectors(label, scheme, geometry), "sector_geometry": asdict(geometry)}
    if septum_deg is not None:
        result["aha"] = aha_segments(label, scheme, septum_deg, aha_direction, base_first, geometry.wedge_deg)
    return result


def quantify_case(label_path: str, scheme: LabelScheme, geometry: SectorGeometry, image_path: Optional[str] = None,
                  septum_deg: Optional[float] = None, aha_direction: int = 1, base_first: bool = True) -> Dict:
    """`quantify_stack` of the label map at `label_path`."""
    return quantify_stack(read_label_stack(label_path, scheme), scheme, geometry, image_path, septum_deg,
                          aha_direction, base_first)


def _checked_inputs(labels_dir: str, images_dir: Optional[str], scheme: LabelScheme) -> List[Tuple[Stack, Optional[str]]]:
    """Every label stack (validated) with its image path; raises before anything is written."""
    files = sorted(f for f in os.listdir(labels_dir) if f.endswith(".nii.gz"))
    if not files:
        raise ValueError(f"{labels_dir}: no .nii.gz label files")
    inputs = []
    for name in files:
        label = read_label_stack(os.path.join(labels_dir, name), scheme)
        image_path = os.path.join(images_dir, f"{case_id_of(name)}_0000.nii.gz") if images_dir else None
        if image_path:
            if not os.path.isfile(image_path):
                raise FileNotFoundError(f"{image_path}: image for label {label.path} not found")
            image = read_stack(image_path)  # the whole image (NaN, spacing), not only the header
            if not same_geometry(image, label):
                raise ValueError(f"{label.path}: geometry differs from image {image_path}: "
                                 f"{geometry_difference(label, image)}")
        inputs.append((label, image_path))
    return inputs


def _pictures(result: Dict, label: Stack, image_path: Optional[str], scheme: LabelScheme, out_dir: str,
              base_first: bool) -> None:
    case = result["case"]
    if image_path:
        image = read_stack(image_path)
        overlay_png(image, label, scheme, os.path.join(out_dir, f"{case}_overlay.png"),
                    title=f"{case}: myocardium (green), scar (red), MVO (yellow)")
    if "aha" in result:
        aha_bullseye_png(result["aha"], os.path.join(out_dir, f"{case}_bullseye.png"),
                         f"{case}: scar extent per AHA segment")
        return
    by_slice: Dict[int, List] = {}
    for r in result["sectors"]:
        by_slice.setdefault(r["slice"], []).append(r["scar_extent_pct"])
    order = sorted(by_slice) if base_first else sorted(by_slice, reverse=True)
    bullseye_png([by_slice[k] for k in order], os.path.join(out_dir, f"{case}_bullseye.png"),
                 f"{case}: scar extent per sector", [f"slice {k}" for k in order])


def quantify_folder(labels_dir: str, out_dir: str, images_dir: Optional[str] = None,
                    scheme: Optional[LabelScheme] = None, geometry: SectorGeometry = SectorGeometry(),
                    septum_deg: Optional[float] = None, aha_direction: int = 1, base_first: bool = True,
                    pictures: bool = True) -> Dict:
    """Quantify every `*.nii.gz` label map of `labels_dir`; images (nnU-Net `<case>_0000.nii.gz`) are only needed
    for the overlay pictures. Writes patients.csv, slices.csv, sectors.csv (aha.csv), report.json and PNGs.
    All label maps are read and checked before anything is written."""
    scheme = scheme or LabelScheme()
    inputs = _checked_inputs(labels_dir, images_dir, scheme)
    prepare_output_dir(out_dir)  # new, or an earlier scarnet run's folder emptied (docs/reliability.md)
    cases, patients, slice_rows, sector_rows, aha_rows = [], [], [], [], []
    for label, image_path in tqdm(inputs, desc="quantifying", unit="case"):
        result = quantify_stack(label, scheme, geometry, image_path, septum_deg, aha_direction, base_first)
        case = result["case"]
        cases.append(result)
        patients.append({"case": case, **{k: v for k, v in result["patient"].items()
                                          if k not in ("slices_without_myocardium", "spacing_mm")}})
        slice_rows += [{"case": case, **r} for r in result["slices"]]
        sector_rows += [{"case": case, **r} for r in result["sectors"]]
        aha_rows += [{"case": case, **r} for r in result.get("aha", [])]
        if pictures:
            _pictures(result, label, image_path, scheme, out_dir, base_first)
    write_csv(os.path.join(out_dir, "patients.csv"), patients)
    write_csv(os.path.join(out_dir, "slices.csv"), slice_rows)
    write_csv(os.path.join(out_dir, "sectors.csv"), sector_rows)
    if aha_rows:
        write_csv(os.path.join(out_dir, "aha.csv"), aha_rows)
    report = {"label_scheme": {k: sorted(v) for k, v in asdict(scheme).items()}, "cases": cases}
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report
