"""Where the AHA segments of one slice are, drawn on its picture: the RV insertion points, the borders between the
segments with their numbers, and the anterior / septal / inferior / lateral walls (docs/report.md, "Every slice").

Everything comes from report.json's `orientation.slices[k]` (quantification/slice_septum.py and report.py's slice
layout): `insertion_points_deg` (kept; `rejected_insertion_points_deg` found but not used), `segment_borders_deg`
({angle_deg, between}), `walls_deg` and `level`. Angles follow `geometry.py`: theta = atan2((j - cj) * dy,
(i - ci) * dx) around the LV centre; the picture shows i to the right and j downwards (imshow of the transposed
slice), so a point at r mm along theta lies at x = ci + r cos(theta) / dx, y = cj + r sin(theta) / dy.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from matplotlib import patheffects

from nnunetv2_scarnet.quantification import palette

#: how far beyond the wall a border line reaches (mm), and where numbers and wall names sit outside the epicardium
BORDER_OVERHANG_MM, NUMBER_OFFSET_MM, WALL_OFFSET_MM = 3.0, 6.0, 15.0
WALL_NAMES = ("anterior", "septal", "inferior", "lateral")


def wall_span(myo: np.ndarray, centre: Tuple[float, float], spacing, angle_deg: float,
              reach_mm: float = 120.0) -> Optional[Tuple[float, float]]:
    """(first, last) distance in mm from `centre` (array indices) at which the ray at `angle_deg` is inside the
    myocardium (nearest pixel, every quarter of the smaller pixel size), or None when it never is."""
    step = 0.25 * min(spacing[0], spacing[1])
    r = np.arange(0.0, reach_mm, step)
    t = np.radians(angle_deg)
    i = np.rint(centre[0] + r * np.cos(t) / spacing[0]).astype(int)
    j = np.rint(centre[1] + r * np.sin(t) / spacing[1]).astype(int)
    inside = (i >= 0) & (i < myo.shape[0]) & (j >= 0) & (j < myo.shape[1])
    hit = np.zeros(r.shape, bool)
    hit[inside] = myo[i[inside], j[inside]]
    if not hit.any():
        return None
    found = np.flatnonzero(hit)
    return float(r[found[0]]), float(r[found[-1]])


def _point(centre, spacing, offset, angle_deg: float, r_mm: float) -> Tuple[float, float]:
    t = np.radians(angle_deg)
    return (centre[0] - offset[0] + r_mm * np.cos(t) / spacing[0],
            centre[1] - offset[1] + r_mm * np.sin(t) / spacing[1])


def _circular_mid(a: float, b: float) -> float:
    """The middle of the shorter arc between two angles (degrees)."""
    return float(np.degrees(np.angle(np.exp(1j * np.radians(a)) + np.exp(1j * np.radians(b)))))


def segment_middles(borders: Sequence[Dict]) -> Dict[int, float]:
    """{segment number: angle of its middle} from the borders of one ring (each segment lies between the border
    that ends at it and the border that starts from it; segments are 60 or 90 degrees wide)."""
    start = {b["between"][1]: b["angle_deg"] for b in borders}
    end = {b["between"][0]: b["angle_deg"] for b in borders}
    return {s: _circular_mid(start[s], end[s]) for s in start if s in end}


def draw_slice_marks(ax, myo: np.ndarray, centre: Tuple[float, float], spacing, offset: Tuple[int, int],
                     entry: Optional[Dict], text: bool = True, scale: float = 1.0) -> bool:
    """Insertion points, segment borders, segment numbers and wall names of one slice on `ax` (axes in the picture's
    pixel coordinates, the slice cropped at `offset`); `entry` is report.json's `orientation.slices[k]`. Without
    `text` only the lines and points are drawn (small montage pictures). Returns whether anything was drawn."""
    if not entry:
        return False
    outline = [patheffects.withStroke(linewidth=2.6 * scale, foreground=palette.OUTLINE)]
    drawn = False
    spans = {}

    def span(angle):
        if angle not in spans:
            spans[angle] = wall_span(myo, centre, spacing, angle)
        return spans[angle]
    for border in entry.get("segment_borders_deg") or []:
        s = span(border["angle_deg"])
        if s is None:
            continue
        (x0, y0), (x1, y1) = [_point(centre, spacing, offset, border["angle_deg"], r)
                              for r in (max(s[0] - BORDER_OVERHANG_MM, 0.0), s[1] + BORDER_OVERHANG_MM)]
        ax.plot([x0, x1], [y0, y1], color=palette.BORDER, lw=1.1 * scale, solid_capstyle="butt",
                path_effects=outline)
        drawn = True
    if text:
        middles = segment_middles(entry.get("segment_borders_deg") or [])
        for number, angle in middles.items():
            s = span(angle)
            if s is not None:
                x, y = _point(centre, spacing, offset, angle, s[1] + NUMBER_OFFSET_MM)
                ax.text(x, y, str(number), color=palette.BORDER, fontsize=9 * scale, fontweight="bold",
                        ha="center", va="center", path_effects=outline, clip_on=True)
        if entry.get("level") == "apex":
            ax.text(centre[0] - offset[0], centre[1] - offset[1], "17", color=palette.BORDER, fontsize=9 * scale,
                    fontweight="bold", ha="center", va="center", path_effects=outline, clip_on=True)
        walls = entry.get("walls_deg") or {}
        outer = [s[1] for s in (span(a) for a in np.arange(0.0, 360.0, 15.0)) if s is not None]
        for name in WALL_NAMES:
            if name in walls and outer:
                x, y = _point(centre, spacing, offset, walls[name], max(outer) + WALL_OFFSET_MM)
                ax.text(x, y, name, color=palette.BORDER, fontsize=8 * scale, ha="center", va="center",
                        path_effects=outline, clip_on=True)
                drawn = True
    for key, filled in (("insertion_points_deg", True), ("rejected_insertion_points_deg", False)):
        for angle in entry.get(key) or []:
            s = span(angle)
            if s is None:
                continue
            x, y = _point(centre, spacing, offset, angle, s[1])
            ax.plot([x], [y], marker="o", ms=6.5 * scale, mew=1.4 * scale, linestyle="none",
                    mfc=palette.SEPTUM if filled else "none", mec=palette.BORDER if filled else palette.SEPTUM,
                    path_effects=None if filled else outline)
            drawn = True
    return drawn
