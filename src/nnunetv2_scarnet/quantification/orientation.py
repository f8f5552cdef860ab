"""Orientation of a short-axis stack, found per case: slice order (apex/base), septum direction, handedness.

Conventions (see docs/quantification_and_evaluation.md):
- In-plane angle theta = atan2((j - cj) * dy, (i - ci) * dx) in degrees, for array indices (i, j) of axes 0 and 1
  around the LV centre, in mm. `septum_deg` is the angle of the mid-septum; `direction` is +1 when
  anterior -> septum -> inferior runs with increasing theta (anterior at septum_deg - 90 * direction).
  In a standard short-axis display (array i as columns left to right, j as rows top to bottom, as DICOM-derived
  stacks and EMIDEC are shown by a CMR viewer) the septum is at 180 (left), anterior up, and direction = -1.
- `apex_first`: slice index 0 is the most apical.
- `septum_direction_ras`: unit vector in the NIfTI's RAS world frame (through the affine) from the LV blood-pool
  centre towards the mid-septum.

Geometry is used only when the affine carries a real patient orientation: its axes are oblique to the world axes
(a short-axis plane is always double-oblique; any axis more than 5 degrees off every world axis). An axis-aligned
affine such as EMIDEC's diag(-sx, -sy, sz) carries the voxel spacing and the array's handedness only.
Anatomy used from geometry (RAS+: +x patient's right, +y anterior, +z superior): the LV long axis points from base
to apex to the patient's left, anterior and inferior (RAS (-1, 1, -1)); the RV lies to the right of AND anterior
to the LV, so the septum (LV centre -> RV) is the slice-plane projection of RAS (1, 1, 0)/sqrt(2) (Kramer et al.,
JCMR 2020; docs); anterior = base x septum. Geometry leads: the image septum refines it when both agree within
GEOMETRY_IMAGE_TOLERANCE_DEG, otherwise the geometry is kept and the case needs review.
From the images: the LV cavity and myocardium shrink toward the apex; the RV blood pool is the bright region
that hugs the epicardium beside the septum. An image-only septum (no patient orientation) is 'ok' only when a second,
independent source agrees with it within half a segment: the papillary muscles (`septum_papillary.py`: the septum
lies opposite them, within PAPILLARY_TOLERANCE_DEG) or the standard short-axis display (septum on the viewer's left
within DISPLAY_TOLERANCE_DEG); and anterior must be up as in that display. Otherwise it needs review (docs).
Per slice (`slice_septum.py`): a slice uses its own RV insertion points only within SLICE_TOLERANCE_DEG of the case's
septum and with both points outside the septal arc's inner half, else the case's angle; `slices` says which and why.
Handedness without geometry is ASSUMED: anterior = base x septum in the affine's frame, so a mirrored array must
come with a mirrored affine (as `scarnet dicom2nifti` and any nibabel re-orientation write them); stated in
`assumptions` and `handedness` = 'assumed', its confidence capped at ASSUMED_HANDEDNESS_CONFIDENCE; by itself it
does not make a case 'needs review' (docs/report.md: every NIfTI without patient orientation carries it).
State: 'not determined' (a part is missing: no AHA table), 'needs review' (`review_reasons`; AHA table kept) or
'ok'.
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np

from nnunetv2_scarnet.quantification.geometry import (OBLIQUE_DEG, handedness_sign, has_patient_orientation,  # noqa: F401,E501
                                                      inplane_world, slice_levels, slice_order_from_labels,
                                                      theta_of_world, wrap_deg)
from nnunetv2_scarnet.quantification.septum_image import (FLAGGED_SEPTUM_CONFIDENCE, SEPTUM_SPREAD_WARN_DEG,  # noqa: F401,E501
                                                          rv_profile, septum_from_image, septum_from_profile,
                                                          septum_reliability)
from nnunetv2_scarnet.quantification.septum_papillary import septum_from_papillary
from nnunetv2_scarnet.quantification.slice_septum import case_angle_for_all, constrain_slices

#: RAS unit directions of the anatomy used with real geometry
APEX_RAS = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)
#: LV centre -> RV (mid-septum): right and anterior (Kramer et al. JCMR 2020, see docs)
RV_RAS = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)

MIN_SLICE_ORDER_CONFIDENCE = 0.5
MIN_SEPTUM_CONFIDENCE = 0.35
MIN_GEOMETRY_CONFIDENCE = 0.3   # |cos| to the typical long axis; in-plane share of the RV direction
#: the image refines the geometric septum within this (half a 60-degree segment); beyond it geometry is kept + review
GEOMETRY_IMAGE_TOLERANCE_DEG = 30.0
#: standard short-axis display (array i as columns, j as rows top-down): septum on the viewer's left, anterior up;
#: without geometry an image septum agreeing with it within DISPLAY_TOLERANCE_DEG (half a 60-degree segment, as
#: GEOMETRY_IMAGE_TOLERANCE_DEG) has a second opinion; so has one within PAPILLARY_TOLERANCE_DEG of the septum
#: opposite the papillary muscles (an independent image cue). Neither value was tuned (docs: calibration).
DISPLAY_SEPTUM_DEG, DISPLAY_DIRECTION, DISPLAY_TOLERANCE_DEG = 180.0, -1, 30.0
PAPILLARY_TOLERANCE_DEG = 30.0
ASSUMED_HANDEDNESS_CONFIDENCE = 0.5  # cap of the handedness confidence when read from the affine's determinant


@dataclass
class Orientation:
    septum_deg: Optional[float] = None          # in-plane angle of the mid-septum (module convention)
    direction: Optional[int] = None             # +1: anterior -> septum -> inferior with increasing theta
    apex_first: Optional[bool] = None
    septum_direction_ras: Optional[List[float]] = None
    septum_spread_deg: Optional[float] = None   # circular spread of the slices' image votes (None: no image vote)
    papillary_septum_deg: Optional[float] = None  # septum opposite the papillary muscles (None: not measurable)
    source: str = "image"                       # geometry | image | geometry+image | user
    confidence: Optional[float] = None          # min of the parts' confidences (0..1)
    sources: Dict[str, str] = field(default_factory=dict)        # who decided each part (see as_dict)
    confidences: Dict[str, Optional[float]] = field(default_factory=dict)
    slice_septum_deg: Dict[int, float] = field(default_factory=dict)   # slices that use their own septum
    insertion_points_deg: Dict[int, List[float]] = field(default_factory=dict)  # kept ones, [anterior, inferior]
    slices: Dict[int, Dict] = field(default_factory=dict)  # per slice with myocardium: septum used and its source
    warnings: List[str] = field(default_factory=list)
    review_reasons: List[str] = field(default_factory=list)   # why the state is 'needs review' (AHA kept)
    not_determined: List[str] = field(default_factory=list)   # parts missing for the AHA segments (state)
    assumptions: List[str] = field(default_factory=list)      # stated, not flagged (e.g. an assumed handedness)
    handedness: Optional[str] = None            # 'from geometry' | 'assumed' | 'user' (None: not determined)
    septum_clock_hour: Optional[float] = None   # septum as a clock hour in the displayed slices (9 = viewer's left)
    state: str = ""                             # 'ok' | 'needs review' | 'not determined'
    aha_ready: bool = False
    aha_status: str = ""

    def as_dict(self) -> Dict:
        out = asdict(self)
        for key in ("slice_septum_deg", "insertion_points_deg", "slices"):
            out[key] = {str(k): v for k, v in getattr(self, key).items()}
        out["angle_convention"] = ("theta = atan2((j - cj) * dy, (i - ci) * dx) deg around the LV centre, array "
                                   "indices (i, j); direction +1 when anterior -> septum -> inferior runs with "
                                   "increasing theta")
        return out


def slice_order_decided(apex_first: Optional[bool], source: Optional[str], confidence: Optional[float]) -> bool:
    """Whether a slice order counts as known: given by the user or the geometry, or from the LV size along the
    stack ('labels') with |Spearman| >= MIN_SLICE_ORDER_CONFIDENCE. An inconclusive order is not used for the AHA
    levels nor for apex/base labels."""
    return apex_first is not None and not (source == "labels"
                                           and (confidence or 0.0) < MIN_SLICE_ORDER_CONFIDENCE)


def slice_order_from_geometry(affine: np.ndarray):
    """(apex_first, confidence = |cos| between the slice axis and the typical LV long axis)."""
    n = np.asarray(affine, float)[:3, 2]
    c = float(n @ APEX_RAS / max(np.linalg.norm(n), 1e-12))
    return c < 0, abs(c)


def find_orientation(myo: np.ndarray, pool: np.ndarray, scar: np.ndarray, affine: np.ndarray, spacing,
                     image: Optional[np.ndarray] = None, septum_deg: Optional[float] = None,
                     direction: Optional[int] = None, apex_first: Optional[bool] = None) -> Orientation:
    """Orientation of one stack from the user's values, else the geometry and/or the image (see module doc)."""
    o = Orientation()
    spacing_xy = spacing[:2]
    geometric = has_patient_orientation(affine)
    # slice order
    label_order, label_conf = slice_order_from_labels(myo, pool)
    if apex_first is not None:
        o.apex_first, o.sources["slice_order"], o.confidences["slice_order"] = bool(apex_first), "user", 1.0
    elif geometric and slice_order_from_geometry(affine)[1] >= MIN_GEOMETRY_CONFIDENCE:
        geo_order, geo_conf = slice_order_from_geometry(affine)
        o.apex_first, o.sources["slice_order"], o.confidences["slice_order"] = geo_order, "geometry", geo_conf
        if label_order is not None and label_conf >= MIN_SLICE_ORDER_CONFIDENCE:
            if label_order != geo_order:
                o.warnings.append(f"slice order: geometry says apex_first={geo_order}, the LV size along the stack "
                                  f"says apex_first={label_order} (Spearman {label_conf:.2f}); geometry kept")
                o.review_reasons.append("slice order: geometry and LV size disagree")
            else:
                o.sources["slice_order"] = "geometry (labels agree)"
                o.confidences["slice_order"] = max(geo_conf, label_conf)
    else:
        o.apex_first, o.sources["slice_order"], o.confidences["slice_order"] = label_order, "labels", label_conf
    present = [k for k in range(myo.shape[2]) if myo[..., k].any()]
    levels = slice_levels(present, base_first=not o.apex_first) if o.apex_first is not None else None
    # septum: geometry leads, the image refines it within the tolerance
    geo_septum = geo_conf = None
    if geometric and theta_of_world(affine, spacing_xy, RV_RAS)[1] >= MIN_GEOMETRY_CONFIDENCE:
        geo_septum, geo_conf = theta_of_world(affine, spacing_xy, RV_RAS)
    img_septum, img_conf, unreliable, estimates = None, 0.0, [], {}
    if image is not None:
        img_septum, img_conf, estimates, (o.septum_spread_deg, unreliable) = \
            septum_from_image(image, myo, pool, scar, spacing_xy, levels)
    image_ok = img_septum is not None and img_conf >= MIN_SEPTUM_CONFIDENCE
    if septum_deg is not None:
        o.septum_deg, o.sources["septum"], o.confidences["septum"] = float(septum_deg), "user", 1.0
    elif geo_septum is not None:
        _septum_from_geometry(o, geo_septum, geo_conf, img_septum if image_ok else None, img_conf)
        if image is not None and not image_ok:
            o.warnings.append(f"septum: the image gives no confident RV (confidence {img_conf:.2f}); geometry used")
    elif image_ok:
        o.septum_deg, o.sources["septum"] = img_septum, "image"
        o.confidences["septum"] = img_conf
        if unreliable:
            o.confidences["septum"] = min(img_conf, FLAGGED_SEPTUM_CONFIDENCE)
            o.warnings.append("septum may be off (" + "; ".join(unreliable) + "): check the cyan septum line of "
                              "the overlay, override with --septum-deg CASE=DEG")
            o.review_reasons.extend(unreliable)
    else:
        o.sources["septum"], o.confidences["septum"] = "none", img_conf
    _slice_septa(o, present, estimates)
    _handedness(o, affine, spacing_xy, geometric, direction)
    if o.sources.get("septum") == "image":
        o.papillary_septum_deg = septum_from_papillary(image, myo, pool, scar, spacing_xy, levels)[0]
        _check_second_opinion(o)
    if o.direction is not None:  # insertion points as [anterior, inferior]: anterior at septum - 90 * direction
        for entry in o.slices.values():
            for key in ("insertion_points_deg", "rejected_insertion_points_deg"):
                if entry[key] is not None and o.direction < 0:
                    entry[key] = entry[key][::-1]
    o.insertion_points_deg = {k: v["insertion_points_deg"] for k, v in o.slices.items() if v["insertion_points_deg"]}
    if o.septum_deg is not None and present:
        # the case septum (all slices vote, mid slices twice); an in-plane direction is the same from any centre
        o.septum_direction_ras = [float(v) for v in inplane_world(affine, spacing_xy, o.septum_deg)]
        o.septum_clock_hour = clock_hour(o.septum_deg)
    _summary(o, present, image is not None)
    return o


def clock_hour(theta_deg: float) -> float:
    """The angle as a clock hour in the displayed slices (i as columns, j as rows top-down: 0 deg = 3 o'clock,
    90 = 6, 180 = 9, -90 = 12), to the half hour (15 degrees)."""
    hour = (3.0 + wrap_deg(theta_deg) / 30.0) % 12.0
    hour = round(hour * 2.0) / 2.0
    return 12.0 if hour == 0.0 else hour


def _slice_septa(o: Orientation, present: List[int], estimates: Dict[int, Dict]) -> None:
    """Per slice the septum it uses (`slice_septum.constrain_slices`): its own RV insertion points within the
    tolerance of the case's septum when the image decided or refined it, else the case's angle."""
    o.slices, o.slice_septum_deg = {}, {}
    source = o.sources.get("septum")
    if o.septum_deg is None:
        return
    if source in ("image", "geometry+image"):
        o.slices = constrain_slices(o.septum_deg, present, estimates, source)
    elif source == "user":
        o.slices = case_angle_for_all(o.septum_deg, present, "user", "the user's septum is used on every slice")
    else:
        o.slices = case_angle_for_all(o.septum_deg, present, source, "the geometric septum (RV right-anterior of "
                                                                     "the LV) is used on every slice")
    o.slice_septum_deg = {k: v["septum_deg"] for k, v in o.slices.items() if v["septum_source"].startswith("slice")}


def _septum_from_geometry(o: Orientation, geo_septum: float, geo_conf: float, img_septum: Optional[float],
                          img_conf: float) -> None:
    """Septum with a real patient orientation: the image's when within the tolerance of the geometry's, else the
    geometry's with a warning and a review reason (a disagreement is a QC flag, not a switch)."""
    gap = None if img_septum is None else abs(wrap_deg(img_septum - geo_septum))
    if gap is not None and gap <= GEOMETRY_IMAGE_TOLERANCE_DEG:
        o.septum_deg, o.sources["septum"] = img_septum, "geometry+image"
        o.confidences["septum"] = max(geo_conf, img_conf)
        return
    o.septum_deg, o.sources["septum"], o.confidences["septum"] = geo_septum, "geometry", geo_conf
    if gap is not None:
        o.warnings.append(f"septum: geometry (RV right-anterior) and image (RV blood pool) disagree by {gap:.0f} "
                          f"deg (> {GEOMETRY_IMAGE_TOLERANCE_DEG:.0f}); geometry kept: check the cyan septum line")
        o.review_reasons.append(f"geometry and image septum disagree by {gap:.0f} deg")


def second_opinion_gaps(septum_deg: float, papillary_septum_deg: Optional[float]):
    """Degrees between an image-only septum and its two independent cues: the standard display's septum, and the
    septum opposite the papillary muscles (None when not measurable)."""
    display_gap = abs(wrap_deg(septum_deg - DISPLAY_SEPTUM_DEG))
    papillary_gap = None if papillary_septum_deg is None else abs(wrap_deg(septum_deg - papillary_septum_deg))
    return display_gap, papillary_gap


def _check_second_opinion(o: Orientation) -> None:
    """Without a patient orientation an image-only septum is 'ok' only when a second, independent source agrees
    with it within half a segment: the septum opposite the papillary muscles (PAPILLARY_TOLERANCE_DEG) or the
    standard short-axis display (septum on the viewer's left, DISPLAY_TOLERANCE_DEG); and the handedness must put
    anterior up as in that display (direction -1). Otherwise the case needs review (QC only: the septum is not
    moved). Measured on the EMIDEC dev set (docs)."""
    gap, papillary_gap = second_opinion_gaps(o.septum_deg, o.papillary_septum_deg)
    if gap > DISPLAY_TOLERANCE_DEG and (papillary_gap is None or papillary_gap > PAPILLARY_TOLERANCE_DEG):
        papillary = ("no papillary muscles measurable" if papillary_gap is None else
                     f"{papillary_gap:.0f} deg from the septum opposite the papillary muscles (> "
                     f"{PAPILLARY_TOLERANCE_DEG:.0f})")
        o.review_reasons.append(f"septum from the image alone (no patient orientation) without a second opinion: "
                                f"{gap:.0f} deg from the standard display's (viewer's left; > "
                                f"{DISPLAY_TOLERANCE_DEG:.0f}) and {papillary}")
    elif o.direction is not None and o.direction != DISPLAY_DIRECTION:
        o.review_reasons.append("septum from the image alone (no patient orientation) and anterior not up as in "
                                "the standard display")


def _handedness(o: Orientation, affine: np.ndarray, spacing_xy, geometric: bool, direction: Optional[int]):
    """Which side of the septum is anterior: user, else geometry (anterior = base x septum in RAS), else ASSUMED
    from the slice order and the affine's determinant (warning, capped confidence)."""
    if direction is not None:
        o.direction, o.sources["handedness"], o.confidences["handedness"] = int(direction), "user", 1.0
        return
    if o.septum_deg is None:
        return
    normal = np.asarray(affine, float)[:3, 2] / max(np.linalg.norm(np.asarray(affine, float)[:3, 2]), 1e-12)
    long_axis_conf = abs(float(normal @ APEX_RAS))
    if geometric and long_axis_conf >= MIN_GEOMETRY_CONFIDENCE:
        base = -normal if normal @ APEX_RAS > 0 else normal
        anterior = np.cross(base, inplane_world(affine, spacing_xy, o.septum_deg))
        anterior_deg, share = theta_of_world(affine, spacing_xy, anterior)
        o.direction = 1 if wrap_deg(o.septum_deg - anterior_deg) > 0 else -1
        o.sources["handedness"], o.confidences["handedness"] = "geometry", min(long_axis_conf, share)
    elif o.apex_first is not None:
        o.direction = -(1 if o.apex_first else -1) * handedness_sign(affine)
        o.sources["handedness"] = "assumed: slice order x affine determinant"
        o.confidences["handedness"] = min(o.confidences["slice_order"], ASSUMED_HANDEDNESS_CONFIDENCE)
        o.assumptions.append("handedness assumed from the affine's determinant (no patient orientation): the file "
                             "is taken to store its array with the affine that belongs to it; a mirrored array "
                             "stored with an unmirrored affine swaps anterior and inferior: check that anterior is "
                             "up in the overlay, override with --direction")


def _summary(o: Orientation, present: List[int], has_image: bool) -> None:
    """source, confidence, handedness, state ('ok', 'needs review' or 'not determined'), aha_ready and aha_status
    ('ok', 'needs review: ...' or 'AHA segments need ...')."""
    parts = list(o.sources.values())
    has_geometry = any(p.startswith("geometry") for p in parts)
    has_image_part = any(p in ("image", "labels", "geometry+image") for p in parts)
    if "user" in parts:
        o.source = "user"
    elif has_geometry and has_image_part:
        o.source = "geometry+image"
    elif has_geometry:
        o.source = "geometry"
    else:
        o.source = "image"
    confs = [o.confidences.get(p) for p in ("septum", "slice_order", "handedness")]
    o.confidence = float(min(c if c is not None else 0.0 for c in confs))
    handedness = o.sources.get("handedness")
    o.handedness = None if o.direction is None else (
        "user" if handedness == "user" else "from geometry" if handedness == "geometry" else "assumed")
    missing = []
    if o.septum_deg is None:
        missing.append("septum direction (no confident RV in the image" + (
            "" if has_image else ": no image given") + ", no patient orientation in the affine)")
    if not slice_order_decided(o.apex_first, o.sources.get("slice_order"), o.confidences.get("slice_order")):
        missing.append(f"slice order (LV size along the stack inconclusive, Spearman "
                       f"{o.confidences.get('slice_order') or 0.0:.2f})")
    if o.direction is None:
        missing.append("anterior side")
    o.not_determined = missing
    o.aha_ready = not missing
    if missing:
        o.state = "not determined"
        o.aha_status = ("AHA segments need the user's orientation (--septum-deg, --direction, --apex-first/"
                        "--base-first): " + "; ".join(missing) + " not determined")
    elif o.review_reasons:
        o.state = "needs review"
        o.aha_status = "needs review: " + "; ".join(o.review_reasons)
    else:
        o.state = o.aha_status = "ok"
