"""Transmurality by the centerline chord method (Sheehan et al., Circulation 1986).

For one short-axis slice: the centerline is the curve midway between endocardium and epicardium (zero level of
d_cavity - d_outside, distances in mm). `n_chords` points are spaced evenly along it by arc length; at each point a
chord perpendicular to the centerline runs across the wall, from where it enters the myocardium to where it leaves
it. The chord's transmurality is the scar share of its length (0..1). A 50%-thick subendocardial scar thus reads
0.50, whatever the ring's radius (the wedge-area share it replaces read 0.40-0.48).

Masks are sampled along each chord every 0.1 mm with bilinear interpolation thresholded at 0.5 (contours run
between pixel centres). Chord angles use the convention of `sectors.py`:
theta = atan2((j - cj) * dy, (i - ci) * dx) around the LV centre (blood-pool centroid, else the myocardium's).
"""
from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

#: Kim et al. (NEJM 2000) transmural-extent categories (upper bounds in %, label)
CATEGORIES = ((0.0, "0%"), (25.0, "1-25%"), (50.0, "26-50%"), (75.0, "51-75%"), (100.0, "76-100%"))
#: the categories above 50% transmurality (Kim et al.: > 50% predicts little recovery); 50% itself is in 26-50%
ABOVE_50_CATEGORIES = ("51-75%", "76-100%")


def transmurality_category(fraction: Optional[float]) -> Optional[str]:
    """Kim et al. category of a transmurality fraction (0..1): '0%', '1-25%', '26-50%', '51-75%' or '76-100%'.
    Boundaries use the percentage rounded to an integer (25.4% -> '1-25%', 25.6% -> '26-50%')."""
    if fraction is None:
        return None
    pct = 100.0 * fraction
    if pct <= 0.0:
        return "0%"
    rounded = max(1, int(np.floor(pct + 0.5)))
    for upper, name in CATEGORIES[1:]:
        if rounded <= upper:
            return name
    return CATEGORIES[-1][1]


def is_above_50(fraction: Optional[float]) -> bool:
    """Whether a transmurality fraction lies in Kim et al.'s categories above 50% (51-75% or 76-100%)."""
    return transmurality_category(fraction) in ABOVE_50_CATEGORIES


def cavity_mask(myo: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """LV cavity of a slice: the blood pool plus any hole enclosed by the myocardium."""
    return pool | (ndimage.binary_fill_holes(myo | pool) & ~myo)


def _centerline(myo: np.ndarray, cavity: np.ndarray, spacing_xy) -> Optional[np.ndarray]:
    """Closed centerline (points in index coordinates), or None when the wall does not enclose a cavity."""
    from skimage.measure import find_contours

    if not cavity.any() or not myo.any():
        return None
    pad = 2
    myo_p, cav_p = np.pad(myo, pad), np.pad(cavity, pad)
    outside = ~(ndimage.binary_fill_holes(myo_p | cav_p))
    d_cavity = ndimage.distance_transform_edt(~cav_p, sampling=spacing_xy)
    d_outside = ndimage.distance_transform_edt(~outside, sampling=spacing_xy)
    field = d_cavity - d_outside
    contours = [c for c in find_contours(field, 0.0) if len(c) > 8 and np.allclose(c[0], c[-1])]
    if not contours:
        return None
    return max(contours, key=len) - pad


def slice_chords(myo: np.ndarray, scar: np.ndarray, pool: np.ndarray, spacing_xy, center,
                 n_chords: int = 100, step_mm: float = 0.1, reach_mm: float = 40.0,
                 zones: Optional[np.ndarray] = None) -> List[Dict]:
    """Chords of one slice: dicts with angle_deg (around `center`), length_mm, scar_mm, transmurality (0..1).
    [] when the slice has no myocardium or its wall does not enclose a cavity (open ring).

    `zones` (int per pixel, e.g. the AHA segment of each pixel): each chord then belongs to the zone of its
    centerline point (`zone` in the dict) and counts only the scar of that zone; a chord that leans into the next
    segment does not pick up that segment's scar (its length is still the full wall thickness)."""
    cavity = cavity_mask(myo, pool)
    line = _centerline(myo, cavity, spacing_xy)
    if line is None:
        return []
    sx, sy = float(spacing_xy[0]), float(spacing_xy[1])
    phys = line * np.array([sx, sy])
    seg = np.linalg.norm(np.diff(phys, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if total <= 0:
        return []
    targets = (np.arange(n_chords) + 0.5) * total / n_chords
    points = np.stack([np.interp(targets, arc, phys[:, 0]), np.interp(targets, arc, phys[:, 1])], axis=1)
    # tangent from neighbours along the closed curve (a few mm apart, robust to pixel steps)
    h = min(2.0, total / 20.0)
    ahead = np.stack([np.interp((targets + h) % total, arc, phys[:, a]) for a in (0, 1)], axis=1)
    behind = np.stack([np.interp((targets - h) % total, arc, phys[:, a]) for a in (0, 1)], axis=1)
    tangent = ahead - behind
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    offsets = np.arange(-reach_mm, reach_mm + step_mm / 2, step_mm)
    centre = np.asarray(center, float) * np.array([sx, sy])
    myo_f, scar_f = myo.astype(np.float32), (scar & myo).astype(np.float32)
    zones_f = None if zones is None else np.asarray(zones)
    chords = []
    for p, n in zip(points, normal):
        samples = p[None, :] + offsets[:, None] * n[None, :]
        coords = np.stack([samples[:, 0] / sx, samples[:, 1] / sy])
        in_myo = ndimage.map_coordinates(myo_f, coords, order=1, mode="constant", cval=0.0) >= 0.5
        in_scar = ndimage.map_coordinates(scar_f, coords, order=1, mode="constant", cval=0.0) >= 0.5
        mid = len(offsets) // 2
        if not in_myo[mid]:  # centerline point between pixels that are not myocardium: nearest myocardial sample
            hits = np.flatnonzero(in_myo)
            if hits.size == 0:
                continue
            mid = hits[np.argmin(np.abs(hits - mid))]
        lo, hi = mid, mid
        while lo > 0 and in_myo[lo - 1]:
            lo -= 1
        while hi < len(offsets) - 1 and in_myo[hi + 1]:
            hi += 1
        run = slice(lo, hi + 1)
        n_in = hi - lo + 1
        d = p - centre
        chord = {"angle_deg": float(np.degrees(np.arctan2(d[1], d[0])))}
        if zones_f is not None:
            zone_of_samples = ndimage.map_coordinates(zones_f, coords, order=0, mode="nearest")
            point = ndimage.map_coordinates(zones_f, (p / np.array([sx, sy]))[:, None], order=0, mode="nearest")
            chord["zone"] = int(point[0])
            in_scar = in_scar & (zone_of_samples == chord["zone"])
        scar_n = int(in_scar[run].sum())
        chord.update({"length_mm": n_in * step_mm, "scar_mm": scar_n * step_mm, "transmurality": scar_n / n_in})
        chords.append(chord)
    return chords


def summarize(chords: List[Dict]) -> Dict:
    """Mean and maximum transmurality of a set of chords and its Kim et al. category (None without chords)."""
    values = [c["transmurality"] for c in chords]
    if not values:
        return {"n_chords": 0, "transmurality_mean": None, "transmurality_max": None,
                "transmurality_category": None}
    mean = float(np.mean(values))
    return {"n_chords": len(values), "transmurality_mean": mean, "transmurality_max": float(np.max(values)),
            "transmurality_category": transmurality_category(mean)}
