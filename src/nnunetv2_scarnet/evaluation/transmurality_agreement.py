"""Per-segment agreement of transmurality categories between a predicted and a reference label map.

Both label maps are cut into segments by ONE geometry, that of the reference: the orientation (septum angle,
anterior direction, slice order; `orientation.find_orientation` on the reference labels and, when given, its
image), the slice levels and the LV centre of every slice all come from the reference, so a prediction is never
judged on its own (different) segmentation of the heart. Each side's transmurality in a segment is the mean of its
own centerline chords (`transmurality.slice_chords`, chord angles taken around the reference's LV centre) whose
angle falls in the segment; the category is that of Kim et al. (NEJM 2000): 0%, 1-25%, 26-50%, 51-75%, 76-100%.

Geometry: AHA segments 1-16 (Cerqueira 2002; 17 has no transmurality) when the reference's orientation is
confident (`aha_ready`: EMIDEC-like affines need the image for the septum), else fixed circumferential sectors
(`SectorGeometry`, 6 per slice by default, origin 0 deg) on every slice where the reference has myocardium.
A segment is compared only when both sides have myocardium in it and both have a transmurality (chords); the
others are left out and counted by reason.

Statistics over all compared segments of all cases (pooled): Cohen's (1968) weighted kappa with linear weights
(the headline) and quadratic weights, unweighted kappa, the confusion matrix (rows reference, columns prediction),
exact agreement (share on the diagonal, Wilson 95% CI) and agreement within one category; segments more than
50% transmural (Kim categories 51-75% and 76-100%, as `aha_summary`; keys named `_ge_50` for compatibility):
per-segment detection and per-case counts (reference vs prediction: CCC, Bland-Altman).
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

from nnunetv2_scarnet.evaluation.agreement import (bland_altman, concordance, detection, weighted_kappa,
                                                   wilson_interval)
from nnunetv2_scarnet.quantification.aha import AHA_NAMES, segment_of, stack_levels
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, Stack
from nnunetv2_scarnet.quantification.orientation import find_orientation
from nnunetv2_scarnet.quantification.sectors import SectorGeometry, lv_center, pixel_angles, sector_index
from nnunetv2_scarnet.quantification.transmurality import CATEGORIES, is_above_50, slice_chords, summarize

CATEGORY_NAMES = [name for _, name in CATEGORIES]
LEFT_OUT = ("no_myocardium_reference", "no_myocardium_prediction", "no_myocardium_both", "no_transmurality")


def reference_geometry(reference: Stack, scheme: LabelScheme, image: Optional[np.ndarray] = None,
                       sectors: SectorGeometry = SectorGeometry()) -> Dict:
    """The segment geometry of the reference: kind ('aha' or 'sectors'), per-slice LV centre and level/septum."""
    myo, scar, _, pool = scheme.masks(reference.data)
    orientation = find_orientation(myo, pool, scar, reference.affine, reference.spacing,
                                   None if image is None else np.asarray(image, np.float64))
    centres = {k: lv_center(myo[..., k], pool[..., k]) for k in range(myo.shape[2]) if myo[..., k].any()}
    geometry = {"centres": centres, "orientation": orientation, "sectors": sectors}
    if orientation.aha_ready:
        levels = stack_levels(myo, pool, orientation.apex_first)
        geometry.update(kind="aha", levels={k: v for k, v in levels.items() if v != "apex"},
                        septum={k: orientation.slice_septum_deg.get(k, orientation.septum_deg) for k in levels},
                        reason=f"AHA 1-16 (orientation {orientation.source}, confidence "
                               f"{orientation.confidence:.2f})")
    else:
        geometry.update(kind="sectors", reason=f"{sectors.n_sectors} fixed sectors per slice: "
                                               f"{orientation.aha_status}")
    return geometry


def _segment_map(geometry: Dict, k: int, shape, spacing_xy) -> np.ndarray:
    """Segment id of every pixel of slice k (AHA number, or sector index) around the reference centre."""
    angles = pixel_angles(shape, geometry["centres"][k], spacing_xy)
    return _segment_of_angles(geometry, k, angles)


def _segment_of_angles(geometry: Dict, k: int, angles: np.ndarray) -> np.ndarray:
    if geometry["kind"] == "aha":
        o = geometry["orientation"]
        return segment_of(angles, geometry["levels"][k], geometry["septum"][k], o.direction)
    return sector_index(angles, geometry["sectors"])[0]


def segment_transmurality(label: Stack, scheme: LabelScheme, geometry: Dict) -> Dict:
    """{segment key: {myocardium_px, transmurality_mean, transmurality_category, n_chords}} of one label map
    cut by the reference `geometry`. Keys: AHA number, or (slice, sector)."""
    myo, scar, _, pool = scheme.masks(label.data)
    spacing_xy = label.spacing[:2]
    slices = sorted(geometry["levels"]) if geometry["kind"] == "aha" else sorted(geometry["centres"])
    if geometry["kind"] == "aha":
        keys = [s for s in AHA_NAMES if s != 17]
    else:
        keys = [(k, s) for k in slices for s in range(geometry["sectors"].n_sectors)]
    acc = {key: {"myocardium_px": 0, "chords": []} for key in keys}
    n_chords = geometry["sectors"].chords_per_slice
    for k in slices:
        m, sc, p = myo[..., k], scar[..., k] & myo[..., k], pool[..., k]
        if not m.any():
            continue
        segment = _segment_map(geometry, k, m.shape, spacing_xy)
        key_of = (lambda s: int(s)) if geometry["kind"] == "aha" else (lambda s, k=k: (k, int(s)))
        for s in np.unique(segment[m]):
            acc[key_of(s)]["myocardium_px"] += int((m & (segment == s)).sum())
        for chord in slice_chords(m, sc, p, spacing_xy, geometry["centres"][k], n_chords, zones=segment):
            acc[key_of(chord["zone"])]["chords"].append(chord)  # only its own segment's scar
    return {key: {"myocardium_px": a["myocardium_px"], **summarize(a["chords"])} for key, a in acc.items()}


def _status(ref: Dict, pred: Dict) -> str:
    if not ref["myocardium_px"] and not pred["myocardium_px"]:
        return "no_myocardium_both"
    if not ref["myocardium_px"]:
        return "no_myocardium_reference"
    if not pred["myocardium_px"]:
        return "no_myocardium_prediction"
    if ref["transmurality_category"] is None or pred["transmurality_category"] is None:
        return "no_transmurality"
    return "ok"


def compare_case(prediction: Stack, reference: Stack, scheme: LabelScheme, image: Optional[np.ndarray] = None,
                 sectors: SectorGeometry = SectorGeometry()) -> Dict:
    """Per-segment categories of reference and prediction on the reference's geometry, and per-case counts."""
    geometry = reference_geometry(reference, scheme, image, sectors)
    ref = segment_transmurality(reference, scheme, geometry)
    pred = segment_transmurality(prediction, scheme, geometry)
    rows = []
    for key in ref:
        r, p = ref[key], pred[key]
        row = {"geometry": geometry["kind"]}
        if geometry["kind"] == "aha":
            row.update(segment=key, name=AHA_NAMES[key], slice=None, sector=None)
        else:
            row.update(segment=f"slice {key[0]} sector {key[1]}", name=None, slice=key[0], sector=key[1])
        row.update(myocardium_px_reference=r["myocardium_px"], myocardium_px_prediction=p["myocardium_px"],
                   transmurality_reference=r["transmurality_mean"], transmurality_prediction=p["transmurality_mean"],
                   category_reference=r["transmurality_category"],
                   category_prediction=p["transmurality_category"], status=_status(r, p))
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok"]
    pred_myo = scheme.masks(prediction.data)[0]
    outside = [k for k in range(pred_myo.shape[2]) if pred_myo[..., k].any() and k not in geometry["centres"]]
    o = geometry["orientation"]
    return {"transmurality_geometry": geometry["kind"], "transmurality_geometry_reason": geometry["reason"],
            "transmurality_orientation_source": o.source if geometry["kind"] == "aha" else None,
            "n_segments_compared": len(ok),
            **{f"n_segments_{reason}": sum(r["status"] == reason for r in rows) for reason in LEFT_OUT},
            "prediction_slices_outside_reference": len(outside),
            "n_segments_ge_50_reference": sum(is_above_50(r["transmurality_reference"]) for r in ok),
            "n_segments_ge_50_prediction": sum(is_above_50(r["transmurality_prediction"]) for r in ok),
            "segments": rows}


def confusion_matrix(reference: Sequence[str], prediction: Sequence[str],
                     categories: Sequence[str] = tuple(CATEGORY_NAMES)) -> List[List[int]]:
    index = {c: i for i, c in enumerate(categories)}
    matrix = [[0] * len(categories) for _ in categories]
    for a, b in zip(reference, prediction):
        matrix[index[a]][index[b]] += 1
    return matrix


def summarise_segments(cases: List[Dict]) -> Dict:
    """Pooled statistics over the compared segments of all cases (see module docstring)."""
    ok = [r for c in cases for r in c["segments"] if r["status"] == "ok"]
    a, b = [r["category_reference"] for r in ok], [r["category_prediction"] for r in ok]
    n = len(ok)
    exact = sum(x == y for x, y in zip(a, b))
    within_one = sum(abs(CATEGORY_NAMES.index(x) - CATEGORY_NAMES.index(y)) <= 1 for x, y in zip(a, b))
    low, high = wilson_interval(exact, n)
    by_geometry = {}
    for kind in ("aha", "sectors"):
        sub = [r for r in ok if r["geometry"] == kind]
        by_geometry[kind] = {"n_cases": sum(c["transmurality_geometry"] == kind for c in cases),
                             "n_segments": len(sub),
                             "kappa_linear": weighted_kappa([r["category_reference"] for r in sub],
                                                            [r["category_prediction"] for r in sub],
                                                            CATEGORY_NAMES, "linear")["kappa"]}
    x = [c["n_segments_ge_50_reference"] for c in cases]
    y = [c["n_segments_ge_50_prediction"] for c in cases]
    return {
        "categories": CATEGORY_NAMES,
        "n_segments_compared": n,
        "n_segments_left_out": {reason: sum(c[f"n_segments_{reason}"] for c in cases) for reason in LEFT_OUT},
        "kappa_linear": weighted_kappa(a, b, CATEGORY_NAMES, "linear")["kappa"],
        "kappa_quadratic": weighted_kappa(a, b, CATEGORY_NAMES, "quadratic")["kappa"],
        "kappa_unweighted": weighted_kappa(a, b, CATEGORY_NAMES, "none")["kappa"],
        "confusion_matrix": {"rows": "reference", "columns": "prediction",
                             "matrix": confusion_matrix(a, b)},
        "exact_agreement": exact / n if n else None, "exact_agreement_ci_low": low, "exact_agreement_ci_high": high,
        "within_one_category": within_one / n if n else None,
        "by_geometry": by_geometry,
        "transmural_ge_50_segment": detection([is_above_50(r["transmurality_reference"]) for r in ok],
                                              [is_above_50(r["transmurality_prediction"]) for r in ok]),
        "transmural_ge_50_count_per_case": {"concordance": concordance(x, y), "bland_altman": bland_altman(x, y)},
    }


DEFINITION = ("Cohen (1968) weighted kappa, linear weights |i - j| / 4 (headline; quadratic and unweighted also "
              "given) of the Kim et al. (NEJM 2000) transmurality categories 0%, 1-25%, 26-50%, 51-75%, 76-100% "
              "(mean centerline-chord transmurality per segment), pooled over the segments of all cases. Segment "
              "geometry (orientation, slice levels, LV centre per slice) from the reference and its image, applied "
              "to both label maps: AHA segments 1-16 when the reference's orientation is confident, else fixed "
              "sectors per slice (transmurality_geometry per case). Segments where either side has no myocardium "
              "or no transmurality are left out (n_segments_left_out). '> 50% transmural' (keys "
              "'_ge_50'): mean transmurality in Kim categories 51-75% or 76-100% (a segment at 50% is 26-50%, not "
              "counted).")
