"""Each slice's septum, constrained to its stack (docs/quantification_and_evaluation.md, "Per-slice septum").

A slice's RV insertion points (`septum_image.septum_from_profile`) give that slice's own mid-septum, the bisector
of the two points. The AHA model uses one septal reference for a ring (Cerqueira et al., Circulation 2002), and the
interventricular septum turns little from one short-axis slice to the next, so a slice's own septum is used only
when it lies within SLICE_TOLERANCE_DEG of the case's septum and both of its insertion points lie outside the
septal arc's inner half (at least INSERTION_MIN_OFFSET_DEG from the case's mid-septum, one on each side);
otherwise the slice takes the case's angle, and `septum_source` says why.

Angles follow `geometry.py`: theta = atan2((j - cj) * dy, (i - ci) * dx) in degrees around the LV centre.
"""
from typing import Dict, List, Optional, Sequence

from nnunetv2_scarnet.quantification.geometry import wrap_deg

#: a slice's own septum may differ from the case's by at most this: half a 60-degree basal/mid segment (a larger
#: turn would move more than half of a segment's myocardium into its neighbour); on the EMIDEC dev set the slices'
#: RV-insertion bisectors lie a median 14 deg from their case's septum, 75th percentile 26 (docs; not tuned on it)
SLICE_TOLERANCE_DEG = 30.0
#: the septal arc spans 120 degrees around the mid-septum (segments 2-3, 8-9); an RV insertion point inside its
#: inner half (closer than this to the case's mid-septum) lies on the septum itself and is rejected
INSERTION_MIN_OFFSET_DEG = 30.0
#: RV share contrast (arc minus rest) below which a slice's insertion points are not used
MIN_SLICE_CONTRAST = 0.1


def run_bisector(run: Sequence[float]) -> float:
    """Middle of the arc that runs from run[0] to run[1] with increasing theta (the RV side)."""
    start, end = float(run[0]), float(run[1])
    return wrap_deg(start + ((end - start) % 360.0) / 2.0)


def _case(case_deg: float, why: str, estimate: Optional[float] = None, rejected: Optional[List[float]] = None,
          source_of_case: str = "image") -> Dict:
    return {"septum_deg": float(case_deg), "septum_source": f"case angle ({source_of_case}): {why}",
            "slice_estimate_deg": estimate, "insertion_points_deg": None, "rejected_insertion_points_deg": rejected}


def constrain_slice(case_deg: float, estimate: Optional[Dict], source_of_case: str = "image") -> Dict:
    """The septum one slice uses: its own (bisector of its insertion points) or the case's, with the reason.

    `estimate`: {"contrast": RV contrast, "insertion": [start, end] of the RV run (increasing theta) or None}, or
    None when the slice has no usable RV profile. Returns septum_deg, septum_source, slice_estimate_deg,
    insertion_points_deg ([start, end], kept) and rejected_insertion_points_deg."""
    if estimate is None:
        return _case(case_deg, "no RV blood pool measurable on this slice", source_of_case=source_of_case)
    run = estimate.get("insertion")
    if run is None:
        return _case(case_deg, "no RV insertion points found on this slice", source_of_case=source_of_case)
    bisector = run_bisector(run)
    run = [float(run[0]), float(run[1])]
    if estimate.get("contrast", 0.0) <= MIN_SLICE_CONTRAST:
        return _case(case_deg, f"RV evidence on this slice too weak (contrast {estimate['contrast']:.2f} <= "
                               f"{MIN_SLICE_CONTRAST})", bisector, run, source_of_case)
    offsets = [wrap_deg(a - case_deg) for a in run]
    reasons = [f"insertion point at {a:.0f} deg lies inside the septal arc ({abs(d):.0f} deg from the case's "
               f"mid-septum, < {INSERTION_MIN_OFFSET_DEG:.0f})" for a, d in zip(run, offsets)
               if abs(d) < INSERTION_MIN_OFFSET_DEG]
    if offsets[0] * offsets[1] > 0:
        reasons.append("both insertion points lie on the same side of the case's mid-septum")
    gap = abs(wrap_deg(bisector - case_deg))
    if gap > SLICE_TOLERANCE_DEG:
        reasons.append(f"slice estimate {bisector:.0f} deg was {gap:.0f} deg off (> {SLICE_TOLERANCE_DEG:.0f})")
    if reasons:
        return _case(case_deg, "; ".join(reasons), bisector, run, source_of_case)
    return {"septum_deg": bisector, "septum_source": f"slice image: bisector of its RV insertion points ({gap:.0f} deg "
                                                     f"from the case angle)",
            "slice_estimate_deg": bisector, "insertion_points_deg": run, "rejected_insertion_points_deg": None}


def constrain_slices(case_deg: float, slices: Sequence[int], estimates: Dict[int, Dict],
                     source_of_case: str = "image") -> Dict[int, Dict]:
    """`constrain_slice` for every slice with myocardium."""
    return {k: constrain_slice(case_deg, estimates.get(k), source_of_case) for k in slices}


def case_angle_for_all(case_deg: float, slices: Sequence[int], source_of_case: str, why: str) -> Dict[int, Dict]:
    """Every slice takes the case's angle (user's or geometry's septum, no image)."""
    return {k: _case(case_deg, why, source_of_case=source_of_case) for k in slices}
