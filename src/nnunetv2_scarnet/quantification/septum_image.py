"""The septum direction from the image: the RV blood pool beside the LV in LGE (bright blood, dark viable
myocardium), per slice and for the stack (docs/quantification_and_evaluation.md, "Septum direction from the image").

Angles follow `geometry.py`: theta = atan2((j - cj) * dy, (i - ci) * dx) in degrees around the LV centre.
"""
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import ndimage

from nnunetv2_scarnet.quantification.geometry import lv_center, wrap_deg

#: image-only septum flagged as unreliable (warning, confidence capped) when the slices' votes spread more than this
#: (weighted circular standard deviation sqrt(-2 ln R)): three quarters of a 60-degree basal/mid segment
SEPTUM_SPREAD_WARN_DEG = 45.0
SEPTUM_WEAK_CONTRAST = 0.3      # ... or when the mean RV contrast of the voting slices is below this
SEPTUM_MIN_VOTES = 3            # ... or when fewer slices than this vote
FLAGGED_SEPTUM_CONFIDENCE = 0.5  # cap of a flagged septum's confidence (still >= MIN_SEPTUM_CONFIDENCE: AHA kept)
BIN_DEG = 5.0


def _circular_smooth(x: np.ndarray, width: int) -> np.ndarray:
    return ndimage.uniform_filter1d(x, width, mode="wrap")


def blood_and_wall_levels(image: np.ndarray, myo: np.ndarray, pool: np.ndarray,
                          scar: np.ndarray) -> Optional[Tuple[float, float]]:
    """(median of the LV blood pool, median of the remote (non-scar) myocardium) of one slice; None when either has
    fewer than 10 pixels or the pool is not brighter (in LGE, blood is bright and viable myocardium dark)."""
    healthy = myo & ~scar
    if pool.sum() < 10 or healthy.sum() < 10:
        return None
    blood, wall = float(np.median(image[pool])), float(np.median(image[healthy]))
    return None if blood <= wall else (blood, wall)


def rv_profile(image: np.ndarray, myo: np.ndarray, pool: np.ndarray, scar: np.ndarray, spacing_xy, center,
               band_mm: float = 12.0) -> Optional[np.ndarray]:
    """Share of blood-like pixels per 5-degree bin in the band `band_mm` outside the epicardium of one slice.

    Blood-like = brighter than the midpoint between the median of the remote (non-scar) myocardium and the median
    of the LV blood pool (in LGE, blood is bright and viable myocardium dark); only blood-like components that
    touch the epicardium (within 2 mm) count, as the RV blood pool touches the septum. None without a usable
    pool or remote myocardium."""
    levels = blood_and_wall_levels(image, myo, pool, scar)
    if levels is None:
        return None
    threshold = levels[1] + 0.5 * (levels[0] - levels[1])
    epi = ndimage.binary_fill_holes(myo | pool)
    d_out = ndimage.distance_transform_edt(~epi, sampling=spacing_xy)
    band = ~epi & (d_out <= band_mm) & (image != 0)
    bright = band & (image > threshold)
    components, n = ndimage.label(bright)
    if n:
        touching = np.unique(components[bright & (d_out <= 2.0)])
        bright = np.isin(components, touching[touching > 0])
    ii, jj = np.nonzero(band)
    theta = np.degrees(np.arctan2((jj - center[1]) * spacing_xy[1], (ii - center[0]) * spacing_xy[0]))
    bins = (np.mod(theta, 360.0) // BIN_DEG).astype(int)
    n_bins = int(360 / BIN_DEG)
    total = np.bincount(bins, minlength=n_bins).astype(float)
    hits = np.bincount(bins, weights=bright[ii, jj].astype(float), minlength=n_bins)
    return np.where(total > 0, hits / np.maximum(total, 1), 0.0)


def septum_from_profile(profile: np.ndarray, arc_deg: float = 120.0):
    """(septum angle, contrast, [insertion angles] or None) of one slice's RV profile.

    The septum is the centre of the 120-degree arc with the most RV blood: where several arc positions tie (an RV
    narrower than the arc gives a flat-topped window), the centre of that plateau (within 2% of the maximum), so
    the answer does not depend on the array's flips; contrast = mean share inside the arc minus outside.
    Insertion points: [start, end] (increasing theta) of the contiguous run around the centre where the smoothed
    share stays above half its peak, kept when the run spans 60-200 degrees."""
    n_bins = len(profile)
    width = int(round(arc_deg / BIN_DEG))
    window = _circular_smooth(profile, width)
    top = int(np.argmax(window))
    near = window >= window[top] - 0.02 * max(window[top], 1e-12)
    lo, hi = top, top
    while near[(lo - 1) % n_bins] and hi - lo < n_bins - 1:
        lo -= 1
    while near[(hi + 1) % n_bins] and hi - lo < n_bins - 1:
        hi += 1
    # uniform_filter1d's window at index b spans bins b - width//2 .. b - width//2 + width - 1: its centre is
    # `shift` bins from b (-0.5 for an even width), so the arc centre in bins is the plateau centre + shift
    shift = (width - 1) / 2.0 - width // 2
    centre = ((lo + hi) / 2.0 + shift + 0.5) * BIN_DEG
    best = int(np.floor((lo + hi) / 2.0 + shift + 0.5)) % n_bins
    inside = window[top]
    outside = (profile.sum() - inside * width) / max(n_bins - width, 1)
    contrast = float(inside - outside)
    smooth = _circular_smooth(profile, 3)
    peak = smooth.max()
    insertion = None
    if peak > 0:
        above = smooth >= 0.5 * peak
        start = best
        if above[start]:
            lo, hi = start, start
            while above[(lo - 1) % n_bins] and (start - lo) < n_bins:
                lo -= 1
            while above[(hi + 1) % n_bins] and (hi - start) < n_bins:
                hi += 1
            span = (hi - lo + 1) * BIN_DEG
            if 60.0 <= span <= 200.0:
                insertion = [wrap_deg(lo * BIN_DEG), wrap_deg((hi + 1) * BIN_DEG)]
    return wrap_deg(centre), contrast, insertion


def _weighted_circular_mean(angles_deg, weights):
    a, w = np.radians(np.asarray(angles_deg, float)), np.asarray(weights, float)
    if w.sum() <= 0:
        return None, 0.0
    c, s = (w * np.cos(a)).sum() / w.sum(), (w * np.sin(a)).sum() / w.sum()
    return float(np.degrees(np.arctan2(s, c))), float(np.hypot(c, s))


def septum_reliability(angles_deg, weights, contrasts):
    """(circular spread of the slices' votes in deg, [reasons the image septum is unreliable]).

    Spread = weighted circular standard deviation sqrt(-2 ln R) of the votes (R: resultant length, weights as for
    the mean). Reasons: spread > SEPTUM_SPREAD_WARN_DEG, mean contrast < SEPTUM_WEAK_CONTRAST, fewer than
    SEPTUM_MIN_VOTES voting slices."""
    if not len(angles_deg):
        return None, ["no slice shows an RV"]
    _, resultant = _weighted_circular_mean(angles_deg, weights)
    spread = float(np.degrees(np.sqrt(-2.0 * np.log(min(max(resultant, 1e-12), 1.0)))))
    reasons = []
    if spread > SEPTUM_SPREAD_WARN_DEG:
        reasons.append(f"the slices' RV estimates disagree (circular spread {spread:.0f} deg > "
                       f"{SEPTUM_SPREAD_WARN_DEG:.0f})")
    mean_contrast = float(np.mean(contrasts))
    if mean_contrast < SEPTUM_WEAK_CONTRAST:
        reasons.append(f"weak RV evidence (mean contrast {mean_contrast:.2f} < {SEPTUM_WEAK_CONTRAST})")
    if len(angles_deg) < SEPTUM_MIN_VOTES:
        reasons.append(f"only {len(angles_deg)} slice(s) show an RV")
    return spread, reasons


def septum_from_image(image: np.ndarray, myo: np.ndarray, pool: np.ndarray, scar: np.ndarray, spacing_xy,
                      levels: Optional[Dict[int, str]] = None):
    """(case septum angle, confidence, per-slice estimates, (circular spread of the votes, [reasons it is
    unreliable]) from `septum_reliability`).

    Per-slice estimates: {slice: {"arc_deg": centre of its 120-degree RV arc, "contrast": arc share minus the
    rest, "insertion": [start, end] of its RV run with increasing theta, or None}} for every slice with a usable RV
    profile; `slice_septum.constrain_slices` decides which slice may use its own insertion points. Slices vote for
    the case angle with weight = contrast (mid slices x2); confidence = resultant length of the votes x
    min(1, mean contrast / 0.3)."""
    angles, weights, contrasts, per_slice = [], [], [], {}
    for k in range(myo.shape[2]):
        if not myo[..., k].any():
            continue
        center = lv_center(myo[..., k], pool[..., k])
        profile = rv_profile(image[..., k], myo[..., k], pool[..., k], scar[..., k], spacing_xy, center)
        if profile is None:
            continue
        septum, contrast, insertion = septum_from_profile(profile)
        per_slice[k] = {"arc_deg": septum, "contrast": contrast, "insertion": insertion}
        if contrast > 0:
            angles.append(septum)
            weights.append(contrast * (2.0 if levels and levels.get(k) == "mid" else 1.0))
            contrasts.append(contrast)
    mean, resultant = _weighted_circular_mean(angles, weights)
    if mean is None:
        return None, 0.0, per_slice, (None, [])
    confidence = resultant * min(1.0, float(np.mean(contrasts)) / 0.3)
    return mean, float(confidence), per_slice, septum_reliability(angles, weights, contrasts)
