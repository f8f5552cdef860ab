"""A second, independent septum cue from the image: the papillary muscles (docs/quantification_and_evaluation.md,
"Second opinion without geometry").

The LV's two papillary muscles arise from the free wall, anterolateral and inferolateral (posteromedial), i.e. on
the side opposite the interventricular septum (Cerqueira et al., Circulation 2002: segments 10-12 carry them; Saremi
et al., RadioGraphics 2012). In LGE they are viable myocardium, dark inside the bright LV blood pool. Their mean
direction from the LV centre therefore points away from the septum; the septum lies opposite. The cue uses the LV
cavity and the image only, not the RV blood pool, so it can confirm or question the RV septum (`septum_image.py`).

Angles follow `geometry.py`: theta = atan2((j - cj) * dy, (i - ci) * dx) in degrees around the LV centre.
"""
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import ndimage

from nnunetv2_scarnet.quantification.geometry import lv_center, wrap_deg
from nnunetv2_scarnet.quantification.septum_image import blood_and_wall_levels

#: pool pixels closer than this to the pool's border are left out (partial volume with the endocardium)
PAPILLARY_BORDER_MM = 3.0
#: a slice counts only with at least this much dark area inside the pool (two papillary muscles of ~5 mm)
PAPILLARY_MIN_AREA_MM2 = 20.0
#: levels used when the slice order is known: papillary muscles sit in the mid and basal-to-mid ventricle
PAPILLARY_LEVELS = ("mid", "basal")


def papillary_direction(image: np.ndarray, myo: np.ndarray, pool: np.ndarray, scar: np.ndarray,
                        spacing_xy) -> Optional[Tuple[float, float]]:
    """(direction in deg from the LV centre to the dark structures inside the pool, weight) of one slice, or None.

    Dark = below the midpoint between the median of the remote (non-scar) myocardium and the median of the pool
    (the same split as the RV blood in `septum_image.rv_profile`), at least PAPILLARY_BORDER_MM inside the pool;
    weight = dark area (mm2) x resultant length of the dark pixels' directions (0 when they surround the centre)."""
    levels = blood_and_wall_levels(image, myo, pool, scar)
    if levels is None:
        return None
    blood, wall = levels
    inner = ndimage.distance_transform_edt(pool, sampling=spacing_xy) > PAPILLARY_BORDER_MM
    dark = inner & (image < wall + 0.5 * (blood - wall))
    area = float(dark.sum()) * float(spacing_xy[0]) * float(spacing_xy[1])
    if area < PAPILLARY_MIN_AREA_MM2:
        return None
    center = lv_center(myo, pool)
    ii, jj = np.nonzero(dark)
    theta = np.arctan2((jj - center[1]) * spacing_xy[1], (ii - center[0]) * spacing_xy[0])
    c, s = float(np.cos(theta).mean()), float(np.sin(theta).mean())
    return float(np.degrees(np.arctan2(s, c))), area * float(np.hypot(c, s))


def septum_from_papillary(image: np.ndarray, myo: np.ndarray, pool: np.ndarray, scar: np.ndarray, spacing_xy,
                          levels: Optional[Dict[int, str]] = None) -> Tuple[Optional[float], int]:
    """(case septum angle opposite the papillary muscles, or None; number of slices used).

    Slices: the mid and basal ones when `levels` is given (all slices with myocardium otherwise), each weighted by
    `papillary_direction`'s weight; the case direction is their weighted circular mean, the septum opposite it."""
    c = s = 0.0
    used = 0
    for k in range(myo.shape[2]):
        if not myo[..., k].any() or (levels and levels.get(k) not in PAPILLARY_LEVELS):
            continue
        found = papillary_direction(image[..., k], myo[..., k], pool[..., k], scar[..., k], spacing_xy)
        if found is None or found[1] <= 0:
            continue
        t = np.radians(found[0])
        c, s, used = c + found[1] * np.cos(t), s + found[1] * np.sin(t), used + 1
    if not used or np.hypot(c, s) <= 0:
        return None, used
    return wrap_deg(float(np.degrees(np.arctan2(s, c))) + 180.0), used
