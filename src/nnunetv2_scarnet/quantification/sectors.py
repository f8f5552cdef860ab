"""Circumferential analysis of the myocardium: scar extent and transmurality per sector, AHA 17-segment model.

Angles are measured in the physical plane of each slice around the LV centre (blood-pool centroid, else the
myocardium centroid): theta = atan2((j - cj) * dy, (i - ci) * dx) for array indices (i, j) of axes 0 and 1,
in degrees. Sector s of n covers [origin + s * 360/n, origin + (s + 1) * 360/n) in the given direction (+1: with
increasing theta, -1: against it).

Transmurality: the myocardium of a slice is cut into narrow wedges (`wedge_deg`, default 5 deg); in each wedge
the scar fraction of the myocardial pixels approximates the scar's share of the wall thickness along that chord.
A sector's mean and maximum transmurality are taken over its wedges that contain myocardium. Scar extent of a
sector is its scar area / myocardial area (%).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, Stack

#: AHA segment names, numbered 1-16 (17, the apical cap, is not covered by short-axis slices)
AHA_NAMES = {1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal", 4: "basal inferior",
             5: "basal inferolateral", 6: "basal anterolateral", 7: "mid anterior", 8: "mid anteroseptal",
             9: "mid inferoseptal", 10: "mid inferior", 11: "mid inferolateral", 12: "mid anterolateral",
             13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral"}


@dataclass(frozen=True)
class SectorGeometry:
    n_sectors: int = 6
    origin_deg: float = 0.0
    direction: int = 1
    wedge_deg: float = 5.0


def lv_center(myo: np.ndarray, pool: np.ndarray):
    mask = pool if pool.any() else myo
    idx = np.argwhere(mask)
    return idx.mean(axis=0)


def pixel_angles(shape, center, spacing_xy) -> np.ndarray:
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return np.degrees(np.arctan2((jj - center[1]) * spacing_xy[1], (ii - center[0]) * spacing_xy[0]))


def sector_index(angles: np.ndarray, geometry: SectorGeometry):
    """(sector of each pixel, angle relative to the sector origin in degrees)."""
    relative = np.mod(geometry.direction * (angles - geometry.origin_deg), 360.0)
    return np.minimum((relative / (360.0 / geometry.n_sectors)).astype(int), geometry.n_sectors - 1), relative


def slice_sectors(myo: np.ndarray, scar: np.ndarray, pool: np.ndarray, spacing_xy, geometry: SectorGeometry):
    """Rows (one per sector) for one slice, or [] when the slice has no myocardium."""
    if not myo.any():
        return []
    angles = pixel_angles(myo.shape, lv_center(myo, pool), spacing_xy)
    sector, relative = sector_index(angles, geometry)
    n_wedges = int(round(360.0 / geometry.wedge_deg))
    wedge = np.minimum((relative / (360.0 / n_wedges)).astype(int), n_wedges - 1)
    wedge_myo = np.bincount(wedge[myo], minlength=n_wedges)
    wedge_scar = np.bincount(wedge[myo & scar], minlength=n_wedges)
    wedges_per_sector = n_wedges / geometry.n_sectors
    rows = []
    for s in range(geometry.n_sectors):
        in_sector = myo & (sector == s)
        myo_px, scar_px = int(in_sector.sum()), int((in_sector & scar).sum())
        members = [w for w in range(n_wedges) if int(w // wedges_per_sector) == s and wedge_myo[w] > 0]
        fractions = [wedge_scar[w] / wedge_myo[w] for w in members]
        rows.append({"sector": s, "myocardium_px": myo_px, "scar_px": scar_px,
                     "scar_extent_pct": 100.0 * scar_px / myo_px if myo_px else None,
                     "transmurality_mean": float(np.mean(fractions)) if fractions else None,
                     "transmurality_max": float(np.max(fractions)) if fractions else None})
    return rows


def stack_sectors(label: Stack, scheme: LabelScheme, geometry: SectorGeometry) -> List[Dict]:
    myo, scar, _, pool = scheme.masks(label.data)
    rows = []
    for k in range(label.data.shape[2]):
        for row in slice_sectors(myo[..., k], scar[..., k], pool[..., k], label.spacing[:2], geometry):
            rows.append({"slice": k, **row})
    return rows


def slice_levels(slices_with_myocardium: Sequence[int], base_first: bool = True) -> Dict[int, str]:
    """Split the slices that contain myocardium into basal, mid and apical thirds (base first unless told)."""
    ordered = list(slices_with_myocardium) if base_first else list(reversed(slices_with_myocardium))
    n = len(ordered)
    levels = {}
    for position, k in enumerate(ordered):
        third = min(int(3 * position / n), 2) if n else 0
        levels[k] = ("basal", "mid", "apical")[third]
    return levels


def aha_segments(label: Stack, scheme: LabelScheme, septum_deg: float, direction: int = 1,
                 base_first: bool = True, wedge_deg: float = 5.0) -> List[Dict]:
    """AHA segments 1-16 aggregated over the slices of each level.

    `septum_deg` is the angle (convention of this module) from the LV centre to the middle of the septum;
    `direction` +1 when anterior -> septum -> inferior runs with increasing angle.
    """
    myo, scar, _, pool = scheme.masks(label.data)
    present = [k for k in range(label.data.shape[2]) if myo[..., k].any()]
    levels = slice_levels(present, base_first)
    totals: Dict[int, Dict] = {s: {"myocardium_px": 0, "scar_px": 0, "fractions": []} for s in AHA_NAMES}
    for k, level in levels.items():
        if level == "apical":
            geometry, first = SectorGeometry(4, septum_deg - direction * 135.0, direction, wedge_deg), 13
        else:
            geometry = SectorGeometry(6, septum_deg - direction * 120.0, direction, wedge_deg)
            first = 1 if level == "basal" else 7
        for row in slice_sectors(myo[..., k], scar[..., k], pool[..., k], label.spacing[:2], geometry):
            seg = totals[first + row["sector"]]
            seg["myocardium_px"] += row["myocardium_px"]
            seg["scar_px"] += row["scar_px"]
            if row["transmurality_mean"] is not None:
                seg["fractions"].append(row["transmurality_mean"])
    rows = []
    for number, name in AHA_NAMES.items():
        seg = totals[number]
        rows.append({"segment": number, "name": name, "myocardium_px": seg["myocardium_px"],
                     "scar_px": seg["scar_px"],
                     "scar_extent_pct": 100.0 * seg["scar_px"] / seg["myocardium_px"] if seg["myocardium_px"] else None,
                     "transmurality_mean": float(np.mean(seg["fractions"])) if seg["fractions"] else None})
    return rows
