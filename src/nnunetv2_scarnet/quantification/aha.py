"""AHA 17-segment model (Cerqueira et al., Circulation 2002) of one stack, given its orientation.

- Levels: the slices with myocardium and an LV cavity are split into basal, mid and apical thirds from the base.
  Slices at the apical end with myocardium but no cavity are the apical cap, segment 17; without such slices
  segment 17 is reported with status `not_imaged` (short-axis slices rarely cover the true apex).
- Basal and mid rings: six 60-degree segments; the mid-septum (bisector of the anterior and inferior RV insertion
  points of the slice where the image shows them, else the case's septum direction) is the border between
  segments 2|3 (8|9); so 1|2 (7|8) lies 60 degrees anterior of it, near the anterior insertion point. Numbering runs
  anterior (1) -> anteroseptal -> inferoseptal -> inferior -> inferolateral -> anterolateral (6), i.e.
  counter-clockwise in the standard short-axis display (anterior up, septum on the viewer's left).
  The bisector, not the anterior insertion point alone, anchors the ring: the measured insertion-point span varies
  (EMIDEC dev: median 125 deg, 10th-90th percentile 85-165) and the bisector splits its difference from 120 deg
  between the 1|2 and 3|4 borders (docs/quantification_and_evaluation.md, AHA section).
- Apical ring: four 90-degree segments, 14 (septal) centred on the septum, then 15 inferior, 16 lateral, 13
  anterior.
- Coronary territories (Cerqueira 2002, recommended assignment): LAD 1, 2, 7, 8, 13, 14, 17; RCA 3, 4, 9, 10, 15;
  LCx 5, 6, 11, 12, 16.
- Per segment: myocardium and scar pixels/volume, scar extent (% of the segment's myocardium), transmurality by the
  centerline chord method (mean and maximum over the segment's chords, `transmurality.py`) and its Kim et al.
  (NEJM 2000) category.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

from nnunetv2_scarnet.quantification.geometry import lv_center, pixel_angles, wrap_deg
from nnunetv2_scarnet.quantification.transmurality import ABOVE_50_CATEGORIES, cavity_mask, slice_chords, summarize

AHA_NAMES = {1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal", 4: "basal inferior",
             5: "basal inferolateral", 6: "basal anterolateral", 7: "mid anterior", 8: "mid anteroseptal",
             9: "mid inferoseptal", 10: "mid inferior", 11: "mid inferolateral", 12: "mid anterolateral",
             13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral", 17: "apex"}
TERRITORY = {**{s: "LAD" for s in (1, 2, 7, 8, 13, 14, 17)}, **{s: "RCA" for s in (3, 4, 9, 10, 15)},
             **{s: "LCx" for s in (5, 6, 11, 12, 16)}}


def level_of(number: int) -> str:
    return "basal" if number <= 6 else "mid" if number <= 12 else "apical" if number <= 16 else "apex"


def stack_levels(myo: np.ndarray, pool: np.ndarray, apex_first: bool) -> Dict[int, str]:
    """Level of each slice with myocardium: basal / mid / apical thirds, 'apex' for the apical cap (segment 17)."""
    present = [k for k in range(myo.shape[2]) if myo[..., k].any()]
    from_apex = present if apex_first else list(reversed(present))
    cap = []
    for k in from_apex:
        if cavity_mask(myo[..., k], pool[..., k]).any():
            break
        cap.append(k)
    if len(cap) == len(present):  # no slice has a cavity: no cap to tell apart
        cap = []
    ringed = [k for k in reversed(from_apex) if k not in cap]  # base first
    levels = {k: "apex" for k in cap}
    n = len(ringed)
    for position, k in enumerate(ringed):
        levels[k] = ("basal", "mid", "apical")[min(int(3 * position / n), 2)]
    return levels


def segment_of(angles: np.ndarray, level: str, septum_deg: float, direction: int) -> np.ndarray:
    """AHA segment number of each angle (module convention of `sectors.py`) on a basal/mid/apical slice."""
    if level == "apex":
        return np.full(np.shape(angles), 17)
    if level == "apical":
        relative = np.mod(direction * (np.asarray(angles) - (septum_deg - direction * 135.0)), 360.0)
        return 13 + np.minimum((relative // 90.0).astype(int), 3)
    relative = np.mod(direction * (np.asarray(angles) - (septum_deg - direction * 120.0)), 360.0)
    return (1 if level == "basal" else 7) + np.minimum((relative // 60.0).astype(int), 5)


def segment_borders(level: str, septum_deg: float, direction: int) -> List[Dict]:
    """Borders between the AHA segments of one slice: [{"angle_deg", "between": [segment, next segment]}] in the
    order of the segment numbers (the ring of `segment_of`); [] for the apical cap (segment 17, no borders)."""
    if level == "apex":
        return []
    first, count, width, offset = (13, 4, 90.0, 135.0) if level == "apical" else \
        ((1 if level == "basal" else 7), 6, 60.0, 120.0)
    start = septum_deg - direction * offset  # where the first segment begins
    return [{"angle_deg": wrap_deg(start + direction * width * n),
             "between": [first + (n - 1) % count, first + n]} for n in range(count)]


def wall_directions(septum_deg: float, direction: int) -> Dict[str, float]:
    """The in-plane angles of the septal, anterior, inferior and lateral walls of a slice (module convention:
    anterior at septum - 90 * direction)."""
    return {"septal": wrap_deg(septum_deg), "anterior": wrap_deg(septum_deg - 90.0 * direction),
            "inferior": wrap_deg(septum_deg + 90.0 * direction), "lateral": wrap_deg(septum_deg + 180.0)}


def aha_table(myo: np.ndarray, scar: np.ndarray, pool: np.ndarray, spacing, septum_deg: float, direction: int,
              apex_first: bool, slice_septum_deg: Optional[Dict[int, float]] = None, n_chords: int = 100) -> List[Dict]:
    """One row per AHA segment 1-17 (see module docstring)."""
    slice_septum_deg = slice_septum_deg or {}
    voxel_ml = float(np.prod(spacing)) / 1000.0
    totals = {s: {"myocardium_px": 0, "scar_px": 0, "chords": [], "slices": []} for s in AHA_NAMES}
    levels = stack_levels(myo, pool, apex_first)
    for k, level in levels.items():
        m, sc, p = myo[..., k], scar[..., k] & myo[..., k], pool[..., k]
        septum = slice_septum_deg.get(k, septum_deg)
        center = lv_center(m, p)
        segment = segment_of(pixel_angles(m.shape, center, spacing[:2]), level, septum, direction)
        for s in np.unique(segment[m]):
            totals[int(s)]["myocardium_px"] += int((m & (segment == s)).sum())
            totals[int(s)]["scar_px"] += int((sc & (segment == s)).sum())
            totals[int(s)]["slices"].append(k)
        if level != "apex":  # each chord counts only the scar of its own segment (zones)
            for chord in slice_chords(m, sc, p, spacing[:2], center, n_chords, zones=segment):
                totals[chord["zone"]]["chords"].append(chord)
    rows = []
    for number, name in AHA_NAMES.items():
        t = totals[number]
        myo_px = t["myocardium_px"]
        row = {"segment": number, "name": name, "level": level_of(number), "territory": TERRITORY[number],
               "slices": " ".join(str(k) for k in sorted(set(t["slices"]))),
               "myocardium_px": myo_px, "myocardium_ml": myo_px * voxel_ml, "scar_px": t["scar_px"],
               "scar_ml": t["scar_px"] * voxel_ml,
               "scar_extent_pct": 100.0 * t["scar_px"] / myo_px if myo_px else None, **summarize(t["chords"])}
        row["status"] = "ok" if myo_px else ("not_imaged" if number == 17 else "no_myocardium")
        rows.append(row)
    return rows


def aha_summary(rows: Sequence[Dict]) -> Dict:
    """Counts over segments 1-16 with a transmurality: scarred, > 50% mean transmurality (categories 51-75% and
    76-100%; keys named '_ge_50' for compatibility), per category, and the territories with such a segment."""
    measured = [r for r in rows if r["transmurality_mean"] is not None]
    categories = {}
    for r in measured:
        categories[r["transmurality_category"]] = categories.get(r["transmurality_category"], 0) + 1
    # '_ge_50' (name kept for report.json): segments ABOVE 50%, i.e. Kim et al.'s categories 51-75% and 76-100%,
    # with the categories' own rounding, so a segment at 50% (category 26-50%) is not counted
    ge50 = [r for r in measured if r["transmurality_category"] in ABOVE_50_CATEGORIES]
    return {"n_segments_measured": len(measured),
            "n_segments_with_scar": sum(1 for r in rows if r["scar_px"] > 0),
            "n_segments_transmurality_ge_50": len(ge50),
            "segments_transmurality_ge_50": [r["segment"] for r in ge50],
            "territories_transmurality_ge_50": sorted({r["territory"] for r in ge50}),
            "segments_per_category": categories}
