"""Report figures (PNG bytes): every slice on its own with its contours, septum line and segment marks, and a
bullseye of Kim et al. transmurality categories (the quantification's AHA bullseye, or rings of sectors per slice
without an AHA table)."""
import os
import tempfile
from typing import Dict, List, Optional, Tuple

from nnunetv2_scarnet.quantification.figures import (aha_bullseye_png, bullseye_png, end_labels, slice_name,
                                                     slice_order_known, slice_overlay_png)

#: slices in the report are numbered from 1 (report.json and the CSVs keep the array index, from 0)
FIRST_SLICE_NUMBER = 1


def _png(draw) -> bytes:
    """Bytes of the PNG that `draw(path)` writes into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "figure.png")
        draw(path)
        with open(path, "rb") as f:
            return f.read()


def slice_captions(quantification: Dict) -> Dict[int, str]:
    """Caption of every slice of the stack: 'slice N' from 1, '(base)' / '(apex)' at the ends of the LV's slices
    when the slice order is known, and the AHA level of the slice when the quantification has an AHA table."""
    rows = quantification.get("slices", [])
    present = [int(r["slice"]) for r in rows if (r.get("myocardium_ml") or 0) > 0]
    ends = end_labels(present, quantification.get("orientation"))
    levels = {}
    for segment in quantification.get("aha") or []:
        for k in str(segment.get("slices") or "").split():
            levels[int(k)] = segment.get("level")
    captions = {}
    for r in rows:
        k = int(r["slice"])
        level = f", {levels[k]}" if k in levels else ""
        captions[k] = slice_name(k, ends, FIRST_SLICE_NUMBER) + level
    return captions


def slice_overlays(image, label, scheme, quantification: Dict) -> List[Tuple[str, bytes]]:
    """(caption, PNG) of every slice of the stack (not only those with myocardium): contours, and on the slices with
    myocardium report.json's septum line, RV insertion points, segment borders and numbers and wall names."""
    orientation = quantification.get("orientation")
    captions = slice_captions(quantification)
    return [(captions.get(k, slice_name(k, {}, FIRST_SLICE_NUMBER)),
             _png(lambda path, k=k: slice_overlay_png(image, label, scheme, k, path, orientation)))
            for k in range(label.data.shape[2])]


def _sector_value(row: Dict) -> Optional[float]:
    value = row.get("transmurality_mean")
    return None if value is None else 100.0 * float(value)


def screen_sectors(values: List[Optional[float]], geometry: Dict) -> Tuple[List[Optional[float]], float]:
    """(values in counter-clockwise order, origin in degrees) that draw each sector where it lies in the overlay.

    Sector s covers theta in [origin + direction * s * step, origin + direction * (s + 1) * step) (sectors.py); the
    overlay shows j downwards, so a screen angle (counter-clockwise, y up) is -theta."""
    origin, direction = float(geometry.get("origin_deg", 0.0)), int(geometry.get("direction", 1))
    if direction > 0:
        return list(reversed(values)), -origin - 360.0
    return list(values), -origin


def transmurality_bullseye(quantification: Dict, title: str) -> bytes:
    """The AHA bullseye (quantification.bullseye.aha_bullseye_png, Cerqueira 2002 layout) coloured by the Kim et
    al. category of each segment's mean transmurality when the quantification has an AHA table; else one ring per
    slice of sectors in the same categories, base outermost when the slice order is known (stack order, first
    slice outermost, otherwise)."""
    if quantification.get("aha"):
        return _png(lambda path: aha_bullseye_png(quantification["aha"], path, f"{title}: AHA segments",
                                                  value="kim"))
    by_slice: Dict[int, List[Optional[float]]] = {}
    for r in sorted(quantification.get("sectors", []), key=lambda r: (int(r["slice"]), int(r["sector"]))):
        by_slice.setdefault(int(r["slice"]), []).append(_sector_value(r))
    geometry = quantification.get("sector_geometry") or {}
    origin = 0.0
    for k, values in by_slice.items():
        by_slice[k], origin = screen_sectors(values, geometry)
    orientation = quantification.get("orientation")
    known = slice_order_known(orientation)
    order = sorted(by_slice, reverse=bool(known and orientation["apex_first"]))
    captions = slice_captions(quantification)
    labels = [captions.get(k, slice_name(k, {}, FIRST_SLICE_NUMBER)) for k in order]
    what = "sectors per slice as the overlays show them, no AHA segments (orientation needed)" + \
        ("" if known else "; slice order unknown")
    return _png(lambda path: bullseye_png([by_slice[k] for k in order], path, f"{title}: {what}", labels,
                                          origin_deg=origin, scale="kim",
                                          colorbar_label="Kim category of the mean\ntransmurality (% of wall)"))
