"""Overlap and distance metrics between a predicted and a reference mask.

Empty-mask rule (documented, never silently 1.0): when both masks are empty the Dice is undefined and returned
as None; such slices/patients are counted as `both_empty` and left out of medians. When only one is empty the
Dice is 0. The HD95 is None when either mask is empty.
"""
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage


def dice(prediction: np.ndarray, reference: np.ndarray) -> Optional[float]:
    p, r = prediction.astype(bool), reference.astype(bool)
    total = int(p.sum()) + int(r.sum())
    if total == 0:
        return None
    return 2.0 * float(np.logical_and(p, r).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1),
                                          border_value=0)


def hd95(prediction: np.ndarray, reference: np.ndarray, spacing: Sequence[float]) -> Optional[float]:
    """95th percentile of the symmetric surface distances (mm), with anisotropic voxel spacing."""
    p, r = prediction.astype(bool), reference.astype(bool)
    if not p.any() or not r.any():
        return None
    sp, sr = _surface(p), _surface(r)
    to_r = ndimage.distance_transform_edt(~sr, sampling=spacing)
    to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    distances = np.concatenate([to_r[sp], to_p[sr]])
    return float(np.percentile(distances, 95))


def median_iqr(values) -> dict:
    """Median and interquartile range of the defined values (None skipped), with their count."""
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return {"median": None, "q1": None, "q3": None, "n": 0}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(v.size)}


def format_median_iqr(stat: dict) -> Optional[str]:
    """'median [Q1-Q3]' with three decimals, or None when no value was defined."""
    if stat["median"] is None:
        return None
    return f"{stat['median']:.3f} [{stat['q1']:.3f}-{stat['q3']:.3f}]"


def hd95_per_slice(prediction: np.ndarray, reference: np.ndarray, spacing: Sequence[float]) -> list:
    """2D HD95 (mm) of every slice (axis 2), in-plane spacing only; None where either mask is empty there."""
    return [hd95(prediction[..., k], reference[..., k], spacing[:2]) for k in range(reference.shape[2])]


def largest_component_mm2(mask2d: np.ndarray, spacing_xy: Sequence[float]) -> float:
    """Area (mm^2) of the largest 8-connected region of a 2D mask (0 when empty)."""
    if not mask2d.any():
        return 0.0
    components, n = ndimage.label(mask2d, np.ones((3, 3), bool))
    return float(np.bincount(components.ravel())[1:].max()) * float(spacing_xy[0]) * float(spacing_xy[1])
