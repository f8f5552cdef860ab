"""Geometry helpers shared by the orientation, AHA and sector code (they import this module; it imports none of
them, so data flows one way: geometry -> orientation / aha -> sectors -> report).

Conventions (docs/quantification_and_evaluation.md, "Orientation: conventions"): a stack is (i, j, slice); the
in-plane angle theta = atan2((j - cj) * dy, (i - ci) * dx) in degrees around the LV centre, in mm. World vectors
are in the NIfTI RAS+ frame of the affine: +x towards the patient's right, +y anterior, +z superior (nibabel's
"coordinate systems and affines"; DICOM's LPS+ has the signs of x and y reversed and `ingestion.dicom_series`
converts it).
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

OBLIQUE_DEG = 5.0  # an affine axis this far off every world axis = real patient orientation


def wrap_deg(a: float) -> float:
    """Angle wrapped to [-180, 180)."""
    return float((a + 180.0) % 360.0 - 180.0)


def lv_center(myo: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """(ci, cj) of one slice: centroid of the blood pool, else of the myocardium."""
    mask = pool if pool.any() else myo
    return np.argwhere(mask).mean(axis=0)


def pixel_angles(shape, center, spacing_xy) -> np.ndarray:
    """In-plane angle (deg) of every pixel of a slice around `center` (module convention)."""
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return np.degrees(np.arctan2((jj - center[1]) * spacing_xy[1], (ii - center[0]) * spacing_xy[0]))


def has_patient_orientation(affine: np.ndarray) -> bool:
    """True when some array axis is more than OBLIQUE_DEG off every world axis: a short-axis plane is always
    double-oblique, an axis-aligned affine (EMIDEC's diag(-sx, -sy, sz)) carries spacing and handedness only."""
    m = np.asarray(affine, float)[:3, :3]
    cosines = np.abs(m) / np.maximum(np.linalg.norm(m, axis=0, keepdims=True), 1e-12)
    return bool(np.any(cosines.max(axis=0) < np.cos(np.radians(OBLIQUE_DEG))))


def handedness_sign(affine: np.ndarray) -> int:
    """+1 when the affine's 3x3 part has a positive determinant (right-handed array frame), else -1."""
    return 1 if np.linalg.det(np.asarray(affine, float)[:3, :3]) > 0 else -1


def inplane_world(affine: np.ndarray, spacing_xy, theta_deg: float) -> np.ndarray:
    """World (RAS) unit vector of the in-plane physical direction theta."""
    m = np.asarray(affine, float)[:3, :3]
    t = np.radians(theta_deg)
    v = m[:, 0] * np.cos(t) / spacing_xy[0] + m[:, 1] * np.sin(t) / spacing_xy[1]
    return v / max(np.linalg.norm(v), 1e-12)


def theta_of_world(affine: np.ndarray, spacing_xy, vector) -> Tuple[float, float]:
    """(theta in deg, in-plane share 0..1) of the projection of a world (RAS) vector on the slice plane."""
    m = np.asarray(affine, float)[:3, :3]
    vector = np.asarray(vector, float) / max(np.linalg.norm(vector), 1e-12)
    e_i, e_j = m[:, 0] / np.linalg.norm(m[:, 0]), m[:, 1] / np.linalg.norm(m[:, 1])
    basis = np.stack([e_i, e_j], axis=1)  # solved in the (e_i, e_j) basis, not assumed orthogonal
    coef, *_ = np.linalg.lstsq(basis, vector, rcond=None)
    return float(np.degrees(np.arctan2(coef[1], coef[0]))), float(min(np.linalg.norm(basis @ coef), 1.0))


def slice_order_from_labels(myo: np.ndarray, pool: np.ndarray) -> Tuple[Optional[bool], float]:
    """(apex_first, confidence): Spearman correlation of the epicardial area (cavity + wall) with slice index."""
    from scipy.stats import spearmanr

    present = [k for k in range(myo.shape[2]) if myo[..., k].any()]
    if len(present) < 3:
        return None, 0.0
    areas = [float(ndimage.binary_fill_holes(myo[..., k] | pool[..., k]).sum()) for k in present]
    if len(set(areas)) == 1:
        return None, 0.0
    rho = spearmanr(present, areas).statistic
    if not np.isfinite(rho) or rho == 0:
        return None, 0.0
    return bool(rho > 0), float(abs(rho))


def slice_levels(slices_with_myocardium: Sequence[int], base_first: bool = True) -> Dict[int, str]:
    """Split the slices that contain myocardium into basal, mid and apical thirds (base first unless told)."""
    ordered = list(slices_with_myocardium) if base_first else list(reversed(slices_with_myocardium))
    n = len(ordered)
    levels = {}
    for position, k in enumerate(ordered):
        levels[k] = ("basal", "mid", "apical")[min(int(3 * position / n), 2) if n else 0]
    return levels
