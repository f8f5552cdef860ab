"""Circumferential analysis of the myocardium: scar extent and transmurality per sector, AHA 17-segment model.

Angles are measured in the physical plane of each slice around the LV centre (blood-pool centroid, else the
myocardium centroid): theta = atan2((j - cj) * dy, (i - ci) * dx) for array indices (i, j) of axes 0 and 1,
in degrees. Sector s of n covers [origin + s * 360/n, origin + (s + 1) * 360/n) in the given direction (+1: with
increasing theta, -1: against it). In the standard short-axis display of DICOM-derived and EMIDEC arrays (i as
columns left to right, j as rows top to bottom) theta = 0 points right, 90 down, 180 left, -90 up, and +1 runs
clockwise on screen.

Transmurality: centerline chord method (`transmurality.py`, `chords_per_slice` chords per slice, Sheehan et al.
1986): each chord's scar share of the wall thickness; a sector's mean and maximum are taken over its chords.
`wedge_deg` is kept for compatibility and no longer used. Scar extent of a sector is its scar area / myocardial
area (%).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from nnunetv2_scarnet.quantification.aha import AHA_NAMES, aha_table  # noqa: F401  (AHA_NAMES re-exported)
from nnunetv2_scarnet.quantification.geometry import (handedness_sign, lv_center, pixel_angles,  # noqa: F401
                                                      slice_levels, slice_order_from_labels)  # (re-exported)
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, Stack
from nnunetv2_scarnet.quantification.transmurality import slice_chords, summarize


@dataclass(frozen=True)
class SectorGeometry:
    n_sectors: int = 6
    origin_deg: float = 0.0
    direction: int = 1
    wedge_deg: float = 5.0          # unused since the chord method; kept for compatibility
    chords_per_slice: int = 100


def sector_index(angles: np.ndarray, geometry: SectorGeometry):
    """(sector of each pixel, angle relative to the sector origin in degrees)."""
    relative = np.mod(geometry.direction * (angles - geometry.origin_deg), 360.0)
    return np.minimum((relative / (360.0 / geometry.n_sectors)).astype(int), geometry.n_sectors - 1), relative


def slice_sectors(myo: np.ndarray, scar: np.ndarray, pool: np.ndarray, spacing_xy, geometry: SectorGeometry):
    """Rows (one per sector) for one slice, or [] when the slice has no myocardium. Transmurality is None for a
    slice whose wall encloses no cavity (no chords)."""
    if not myo.any():
        return []
    center = lv_center(myo, pool)
    sector, _ = sector_index(pixel_angles(myo.shape, center, spacing_xy), geometry)
    chords = slice_chords(myo, scar & myo, pool, spacing_xy, center, geometry.chords_per_slice, zones=sector)
    chord_sector = [c["zone"] for c in chords]  # each chord counts only its own sector's scar
    rows = []
    for s in range(geometry.n_sectors):
        in_sector = myo & (sector == s)
        myo_px, scar_px = int(in_sector.sum()), int((in_sector & scar).sum())
        stats = summarize([c for c, cs in zip(chords, chord_sector) if cs == s])
        rows.append({"sector": s, "myocardium_px": myo_px, "scar_px": scar_px,
                     "scar_extent_pct": 100.0 * scar_px / myo_px if myo_px else None,
                     "transmurality_mean": stats["transmurality_mean"],
                     "transmurality_max": stats["transmurality_max"], "n_chords": stats["n_chords"]})
    return rows


def stack_sectors(label: Stack, scheme: LabelScheme, geometry: SectorGeometry) -> List[Dict]:
    myo, scar, _, pool = scheme.masks(label.data)
    rows = []
    for k in range(label.data.shape[2]):
        for row in slice_sectors(myo[..., k], scar[..., k], pool[..., k], label.spacing[:2], geometry):
            rows.append({"slice": k, **row})
    return rows


def aha_segments(label: Stack, scheme: LabelScheme, septum_deg: float, direction: Optional[int] = None,
                 base_first: Optional[bool] = None, wedge_deg: float = 5.0,
                 slice_septum_deg: Optional[Dict[int, float]] = None, chords_per_slice: int = 100) -> List[Dict]:
    """AHA segments 1-17 of a stack (rows of `aha.aha_table`).

    `septum_deg` is the angle (convention of this module) from the LV centre to the middle of the septum;
    `direction` +1 when anterior -> septum -> inferior runs with increasing angle. When `base_first` is None the
    slice order comes from the labels (the LV shrinks toward the apex; base first if that is inconclusive); when
    `direction` is None it follows from the slice order and the affine's handedness (anterior = base x septum).
    `wedge_deg` is unused (kept for compatibility)."""
    myo, scar, _, pool = scheme.masks(label.data)
    if base_first is None:
        apex_first = slice_order_from_labels(myo, pool)[0]
        base_first = not apex_first if apex_first is not None else True
    if direction is None:
        direction = -(1 if not base_first else -1) * handedness_sign(label.affine)
    return aha_table(myo, scar, pool, label.spacing, septum_deg, direction, not base_first, slice_septum_deg,
                     chords_per_slice)
