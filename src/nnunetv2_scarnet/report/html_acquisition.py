"""What a CMR report states besides the numbers (docs/report.md, "Acquisition, coverage and method"): slice
thickness, spacing and gap, how much of the LV the stack covers (base to apex, missing slices), how scar was
segmented, and the volumes table with MVO as % of LV myocardium and the LV-mass caveat of an LGE stack."""
from typing import Dict, List, Optional, Tuple

from nnunetv2_scarnet.quantification.figures import slice_order_known
from nnunetv2_scarnet.report.figures import FIRST_SLICE_NUMBER

#: the LV mass of an LGE stack (Schulz-Menger et al. JCMR 2020 measure LV mass on cine; see docs/report.md)
LV_MASS_CAVEAT = ("LV mass here is the myocardium on the LGE slices x 1.05 g/mL. LGE stacks often miss the base or the "
                  "apex (see LV coverage) and are not acquired for mass: use the cine LV mass for the LV mass; scar % "
                  "of LV myocardium is relative to the myocardium imaged here.")


def _num(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def mvo_cells(patient: Dict) -> Tuple[str, str, str]:
    """(volume, mass, % of LV myocardium) of MVO, or 'not assessed' with the reason when the labels do not carry
    MVO."""
    status = str(patient.get("mvo_status") or "")
    mvo = patient.get("mvo_ml")
    if mvo is None or status.startswith("not_assessed"):
        reason = status.split("(", 1)[1].rstrip(")") if "(" in status else "MVO not labelled"
        return f"not assessed ({reason})", "", "not assessed"
    return f"{_num(mvo, 2)} mL", f"{_num(mvo * 1.05, 2)} g", f"{_num(patient.get('mvo_pct_lvm'))} %"


def volumes_rows(patient: Dict) -> List[Tuple[str, str, str]]:
    mvo_volume, mvo_mass, mvo_pct = mvo_cells(patient)
    return [
        ("LV myocardium (imaged slices)", f"{_num(patient.get('myocardium_ml'))} mL",
         f"{_num(patient.get('myocardium_g'))} g"),
        ("Scar (incl. MVO)", f"{_num(patient.get('scar_ml'))} mL", f"{_num(patient.get('scar_g'))} g"),
        ("Scar % of LV myocardium", f"{_num(patient.get('scar_pct_lvm'))} %", ""),
        ("Microvascular obstruction", mvo_volume, mvo_mass),
        ("MVO % of LV myocardium", mvo_pct, ""),
        ("LV blood pool (on these slices)", f"{_num(patient.get('blood_pool_ml'))} mL", ""),
        ("Slices with myocardium / scar / total",
         f"{patient.get('n_slices_with_myocardium', '?')} / {patient.get('n_slices_with_scar', '?')} / "
         f"{patient.get('n_slices', '?')}", ""),
    ]


def _thickness(identifiers: Dict[str, str]) -> Optional[float]:
    try:
        return float(identifiers.get("SliceThickness", ""))
    except ValueError:
        return None


def _numbers(indices) -> str:
    return ", ".join(str(int(k) + FIRST_SLICE_NUMBER) for k in indices)


def coverage_rows(quantification: Dict) -> List[Tuple[str, str]]:
    """Which slices hold the LV, the covered length, slices missing inside it, and whether base and apex are in the
    stack (an LV that reaches the stack's end slice may go on beyond it; segment 17 imaged or not)."""
    rows = quantification.get("slices") or []
    spacing = (quantification.get("patient") or {}).get("spacing_mm") or [None] * 3
    present = [int(r["slice"]) for r in rows if (r.get("myocardium_ml") or 0) > 0]
    if not present:
        return [("LV coverage", "no slice holds LV myocardium")]
    first, last, n = min(present), max(present), len(rows)
    length = "" if spacing[2] is None else f", {(last - first + 1) * spacing[2]:.0f} mm"
    out = [("Slices", f"{n} in the stack, {len(present)} with LV myocardium"),
           ("LV coverage", f"slices {first + FIRST_SLICE_NUMBER} to {last + FIRST_SLICE_NUMBER}{length}")]
    missing = [k for k in range(first, last + 1) if k not in present]
    which = f"slice {_numbers(missing)} has" if len(missing) == 1 else f"slices {_numbers(missing)} have"
    out.append(("Slices missing inside the LV", "none" if not missing else
                f"{which} no myocardium between LV slices: part of the LV is not measured"))
    o = quantification.get("orientation") or {}

    def at_end(k: int) -> bool:  # a slice, not a dict of the two: first and last are one slice for a one-slice LV
        return k in (0, n - 1)
    if slice_order_known(o):
        apex, base = (first, last) if o.get("apex_first") else (last, first)
        out.append(("Base", f"slice {base + FIRST_SLICE_NUMBER}" + (
            ": the stack's end slice holds LV myocardium, the LV may go on beyond it (base not covered?)"
            if at_end(base) else ": the stack goes beyond it")))
        cap = next((s for s in quantification.get("aha") or [] if s.get("segment") == 17), None)
        apex_text = f"slice {apex + FIRST_SLICE_NUMBER}"
        if cap is not None:
            apex_text += ("; apical cap (segment 17, myocardium without cavity) imaged" if cap.get("status") == "ok"
                          else "; apical cap (segment 17) not imaged")
        if at_end(apex):
            apex_text += "; the stack's end slice holds LV myocardium, the LV may go on beyond it"
        out.append(("Apex", apex_text))
    else:
        ends = [k + FIRST_SLICE_NUMBER for k in sorted({first, last}) if at_end(k)]
        out.append(("Base and apex", "slice order not determined" + (
            f"; LV myocardium on the stack's end slice(s) {', '.join(map(str, ends))}: the LV may go on beyond"
            if ends else "")))
    return out


def acquisition_rows(quantification: Dict, identifiers: Dict[str, str]) -> List[Tuple[str, str]]:
    """Pixel size, slice thickness (DICOM Slice Thickness; NIfTI files do not record it), slice spacing (centre to
    centre, from the slice positions), the gap between slices, then `coverage_rows`."""
    spacing = (quantification.get("patient") or {}).get("spacing_mm") or []
    rows = []
    if len(spacing) == 3:
        rows.append(("Pixel size", f"{spacing[0]:.2f} x {spacing[1]:.2f} mm"))
        thickness = _thickness(identifiers)
        if thickness is None and "SliceThickness" in identifiers:  # differs between slices: 'a-b'
            rows.append(("Slice thickness", f"{identifiers['SliceThickness']} mm (DICOM Slice Thickness)"))
        elif thickness is None:
            rows.append(("Slice thickness", "not recorded in the DICOM headers" if "SeriesInstanceUID" in identifiers
                         else "not recorded (NIfTI input: the file stores the slice spacing only)"))
        else:
            rows.append(("Slice thickness", f"{thickness:g} mm (DICOM Slice Thickness)"))
        rows.append(("Slice spacing (centre to centre)", f"{spacing[2]:.2f} mm"))
        if thickness is None:
            rows.append(("Gap between slices", "n/a (slice thickness not known)"))
        else:
            gap = spacing[2] - thickness
            text = f"{gap:.2f} mm" if gap >= 0 else f"none: slices overlap by {-gap:.2f} mm"
            if thickness > 2.0 * spacing[2]:
                text += " (a thickness above twice the slice spacing: check the DICOM header)"
            rows.append(("Gap between slices", text))
    return rows + coverage_rows(quantification)


def scar_method(model: Dict) -> str:
    """How myocardium, scar and MVO were segmented: the model and its ensemble, no intensity threshold."""
    if not model.get("trainer"):
        return "Labels as given (no model recorded)."
    folds = ", ".join(str(f) for f in model.get("folds") or []) or "n/a"
    return (f"Deep-learning segmentation by the nnU-Net model {model.get('trainer')} (dataset "
            f"{model.get('dataset', 'n/a')}, configuration {model.get('configuration', 'n/a')}, folds {folds}, "
            f"{model.get('members', 'n/a')} ensemble members): each voxel takes the label with the highest mean "
            f"ensemble output; no intensity threshold (n-SD, FWHM) is applied. Scar includes MVO.")
