"""QC flags a reader must look at before trusting a `scarnet report` (explained in docs/report.md).

Each flag has a code, a one-line title, the measured values and the slices involved. Flags never change the
segmentation or the numbers; they say where to look. An orientation that needs review or is not determined is a
flag too (`orientation_flags`): the AHA segments and territories rest on it.
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from nnunetv2_scarnet.quantification import LabelScheme

#: thresholds of the flags (docs/report.md gives the reasoning)
THRESHOLDS = {
    "min_confidence_myocardium": 0.80,    # mean max probability inside the predicted myocardium
    "min_confidence_scar": 0.70,          # ... inside the predicted scar
    "min_member_dice_myocardium": 0.85,   # each fold / mirroring vs the ensemble
    "min_member_dice_scar": 0.50,
    "min_scar_voxels_for_agreement": 20,  # scar smaller than this (preprocessed voxels) is not compared
    "mass_g": (40.0, 350.0),              # plausible LV myocardial mass of the covered stack
    "max_slice_area_cm2": 40.0,           # myocardial cross-section of one slice
    "in_plane_mm": (0.4, 3.0),            # plausible LGE pixel spacing
    "slice_mm": (2.0, 20.0),              # plausible slice spacing
    "min_scar_component_px": 5,           # smaller scar islands are ignored by the endocardium check
}


@dataclass
class Flag:
    code: str
    title: str
    detail: str
    slices: List[int] = field(default_factory=list)


def confidence_flags(confidence: Dict[str, Optional[float]]) -> List[Flag]:
    flags = []
    myo, scar = confidence.get("myocardium"), confidence.get("scar")
    if myo is not None and myo < THRESHOLDS["min_confidence_myocardium"]:
        flags.append(Flag("low_confidence", "Low confidence in the myocardium",
                          f"mean maximum probability inside the predicted myocardium {myo:.2f} "
                          f"(< {THRESHOLDS['min_confidence_myocardium']:.2f})"))
    if scar is not None and scar < THRESHOLDS["min_confidence_scar"]:
        flags.append(Flag("low_confidence_scar", "Low confidence in the scar",
                          f"mean maximum probability inside the predicted scar {scar:.2f} "
                          f"(< {THRESHOLDS['min_confidence_scar']:.2f})"))
    return flags


def agreement_flags(member_dice: Dict[str, List[float]], members: List[str], scar_voxels: int) -> List[Flag]:
    if len(members) < 2:
        return []
    flags = []
    myo = member_dice.get("myocardium") or []
    if myo and min(myo) < THRESHOLDS["min_member_dice_myocardium"]:
        worst = members[int(np.argmin(myo))]
        flags.append(Flag("member_disagreement", "Folds / mirrorings disagree on the myocardium",
                          f"lowest Dice of one member ({worst}) with the ensemble {min(myo):.2f} "
                          f"(< {THRESHOLDS['min_member_dice_myocardium']:.2f}) over {len(members)} members"))
    scar = member_dice.get("scar") or []
    if scar and scar_voxels >= THRESHOLDS["min_scar_voxels_for_agreement"] and \
            min(scar) < THRESHOLDS["min_member_dice_scar"]:
        flags.append(Flag("member_disagreement_scar", "Folds / mirrorings disagree on the scar",
                          f"lowest Dice of one member with the ensemble scar {min(scar):.2f} "
                          f"(< {THRESHOLDS['min_member_dice_scar']:.2f}) over {len(members)} members"))
    return flags


def member_agreement_text(member_dice: Dict[str, List[float]], members: List[str], tissue: str) -> str:
    """What the report says of the ensemble's agreement on `tissue`: the lowest member Dice with the ensemble, or
    why there is none (one member agrees with itself: a Dice of 1.000 would read as perfect agreement)."""
    if len(members) < 2:
        return f"{'one member' if members else 'no member listed'}: no agreement measured"
    values = member_dice.get(tissue) or []
    if not values:
        return "not compared"
    worst = int(np.argmin(values))
    return f"{values[worst]:.3f} ({members[worst]})" if worst < len(members) else f"{values[worst]:.3f}"


def plausibility_flags(patient: Dict, slices: List[Dict], spacing) -> List[Flag]:
    flags = []
    lo, hi = THRESHOLDS["in_plane_mm"]
    s_lo, s_hi = THRESHOLDS["slice_mm"]
    if not (lo <= spacing[0] <= hi and lo <= spacing[1] <= hi and s_lo <= spacing[2] <= s_hi):
        flags.append(Flag("implausible_spacing", "Implausible voxel spacing",
                          f"spacing {spacing[0]:.2f} x {spacing[1]:.2f} x {spacing[2]:.2f} mm (expected in-plane "
                          f"{lo}-{hi} mm, slices {s_lo}-{s_hi} mm): volumes and masses depend on it"))
    mass = patient.get("myocardium_g")
    m_lo, m_hi = THRESHOLDS["mass_g"]
    if mass is not None and mass > 0 and not (m_lo <= mass <= m_hi):
        flags.append(Flag("implausible_mass", "Implausible LV myocardial mass",
                          f"{mass:.0f} g over {patient.get('n_slices_with_myocardium', '?')} slices of "
                          f"{spacing[2]:.1f} mm (expected {m_lo:.0f}-{m_hi:.0f} g)"))
    big = [r["slice"] for r in slices
           if r.get("myocardium_ml", 0) * 1000.0 / spacing[2] / 100.0 > THRESHOLDS["max_slice_area_cm2"]]
    if big:
        flags.append(Flag("implausible_slice_area", "Implausible myocardial area on some slices",
                          f"myocardial cross-section above {THRESHOLDS['max_slice_area_cm2']:.0f} cm2 "
                          f"(= volume / slice spacing)", big))
    if not mass:
        flags.append(Flag("no_myocardium", "No myocardium predicted",
                          "the model found no LV myocardium in this stack: wrong series, or outside the model's "
                          "domain"))
    return flags


def _cavity(myo: np.ndarray) -> np.ndarray:
    return ndimage.binary_fill_holes(myo) & ~myo


def shape_flags(label: np.ndarray, scheme: LabelScheme) -> List[Flag]:
    """Open myocardial rings on slices with scar; scar islands that do not touch the endocardium."""
    myo, scar, _, pool = scheme.masks(label)
    open_slices, epicardial = [], []
    for k in range(label.shape[2]):
        if not scar[..., k].any():
            continue
        cavity = _cavity(myo[..., k])
        if not cavity.any():
            open_slices.append(k)
            cavity = pool[..., k]
        if not cavity.any():
            continue
        near_cavity = ndimage.binary_dilation(cavity, structure=np.ones((3, 3), bool))
        components, n = ndimage.label(scar[..., k], structure=np.ones((3, 3), int))
        for c in range(1, n + 1):
            part = components == c
            if part.sum() >= THRESHOLDS["min_scar_component_px"] and not (part & near_cavity).any():
                epicardial.append(k)
                break
    flags = []
    if open_slices:
        flags.append(Flag("open_ring", "Myocardium is not a closed ring on slices with scar",
                          "the predicted myocardium does not enclose the LV cavity; scar may be missed or "
                          "misplaced where the ring is broken", open_slices))
    if epicardial:
        flags.append(Flag("scar_not_endocardial", "Scar not touching the endocardium",
                          "a scar region does not reach the endocardial border; ischaemic scar is subendocardial "
                          "first: check for mid-wall / epicardial (non-ischaemic) enhancement or a false positive",
                          epicardial))
    return flags


#: the orientation states of report.json (quantification/orientation.py)
STATES = ("ok", "needs review", "not determined")


def orientation_state(report: Dict) -> str:
    """The orientation state of a quantification (or a patient's report.json): `orientation.state`; for a report
    written before the states existed, read from `aha_status` ('ok', 'needs review: ...', else not determined)."""
    o = report.get("orientation") or {}
    state = o.get("state")
    if state in STATES:
        return state
    status = str(report.get("aha_status") or o.get("aha_status") or "")
    if o and status == "ok":
        return "ok"
    return "needs review" if status.startswith("needs review") else "not determined"


def orientation_review(report: Dict) -> List[str]:
    """Why the orientation is not ok: its review reasons, or the parts that were not determined; [] when ok."""
    o, state = report.get("orientation") or {}, orientation_state(report)
    if state == "needs review":
        return list(o.get("review_reasons") or []) or [str(report.get("aha_status") or "needs review")]
    if state == "not determined":
        if not o:
            return ["no orientation in the quantification"]
        return list(o.get("not_determined") or []) or [str(report.get("aha_status") or "not determined")]
    return []


def review_cells(report: Dict) -> Dict[str, str]:
    """The cohort table's orientation columns of a quantification or report.json: `orientation_state` (ok, needs
    review, not determined) and `review` (why, reasons joined by ' | '; empty when ok)."""
    return {"orientation_state": orientation_state(report), "review": " | ".join(orientation_review(report))}


def orientation_flags(report: Dict) -> List[Flag]:
    """A QC flag when the orientation needs review (AHA segments given, but they may be turned or mirrored) or is
    not determined (no AHA segments, no territories)."""
    state, reasons = orientation_state(report), "; ".join(orientation_review(report))
    if state == "needs review":
        return [Flag("orientation_review", "Orientation needs review: AHA segments and territories may be misplaced",
                     f"{reasons}; check the septum, insertion points and segment borders on every slice")]
    if state == "not determined":
        return [Flag("orientation_not_determined", "Orientation not determined: no AHA segments or territories",
                     f"{reasons}; give it with --septum-deg, --direction and --apex-first / --base-first "
                     f"(scarnet quantify) to get the segments")]
    return []


def with_orientation_flags(flags: List[Dict], report: Dict) -> List[Dict]:
    """`flags` (dicts) with the orientation's flag first when they lack it: a report.json written before the
    orientation became a flag, or a caller that passes its own flags, still shows the review."""
    codes = {f.get("code") for f in flags}
    return [asdict(f) for f in orientation_flags(report) if f.code not in codes] + list(flags)


def all_flags(label: np.ndarray, spacing, scheme: LabelScheme, quantification: Dict, prediction) -> List[Dict]:
    """Every flag of one patient as dicts (code, title, detail, slices); the orientation's first."""
    flags = orientation_flags(quantification)
    if prediction is not None:
        flags += confidence_flags(prediction.confidence)
        flags += agreement_flags(prediction.member_dice, prediction.members, prediction.ensemble_scar_voxels)
    flags += plausibility_flags(quantification.get("patient", {}), quantification.get("slices", []), spacing)
    flags += shape_flags(label, scheme)
    return [asdict(f) for f in flags]
