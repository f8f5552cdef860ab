"""Report pictures: contour overlays on the LGE slices, with where the AHA segments lie (`slice_marks.py`);
the bullseyes are in `bullseye.py` (re-exported here). Colours: `palette.py` (colour-blind safe)."""
import textwrap
from typing import Dict, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnunetv2_scarnet.quantification import palette  # noqa: E402
from nnunetv2_scarnet.quantification.bullseye import (  # noqa: E402,F401 (re-exported)
    AHA_VALUES, MAX_LABELLED_RINGS, aha_bullseye_png, bullseye_png, ring_summary)
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, Stack  # noqa: E402
from nnunetv2_scarnet.quantification.orientation import slice_order_decided  # noqa: E402
from nnunetv2_scarnet.quantification.slice_marks import draw_slice_marks  # noqa: E402


def display_window(image: np.ndarray):
    """Intensity window from the non-zero voxels (zero-filled borders ignored): 1st to 99.5th percentile."""
    values = image[image != 0]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99.5])
    return float(lo), float(max(hi, lo + 1e-6))


def heart_crop(myo: np.ndarray, spacing, margin_mm: float = 30.0):
    """In-plane index ranges around the myocardium of all slices (+ margin), or the full plane without one."""
    if not myo.any():
        return slice(None), slice(None)
    ranges = []
    for axis in (0, 1):
        present = np.flatnonzero(myo.any(axis=tuple(a for a in range(3) if a != axis)))
        pad = int(round(margin_mm / spacing[axis]))
        ranges.append(slice(max(0, present[0] - pad), min(myo.shape[axis], present[-1] + pad + 1)))
    return tuple(ranges)


#: what the contour colours mean (`palette`)
CONTOUR_LEGEND = "myocardium sky blue, scar vermillion, MVO yellow"


def slice_order_known(orientation: Optional[Dict]) -> bool:
    """Whether report.json's `orientation` knows which end of the stack is the apex (`slice_order_decided`: not
    an inconclusive vote of the LV size along the stack, which `aha_status` then names)."""
    if not orientation or "slice order" in (orientation.get("aha_status") or ""):
        return False
    return slice_order_decided(orientation.get("apex_first"), (orientation.get("sources") or {}).get("slice_order"),
                               (orientation.get("confidences") or {}).get("slice_order"))


def end_labels(slices_with_myocardium: Sequence[int], orientation: Optional[Dict]) -> Dict[int, str]:
    """{slice index: 'base' | 'apex'} for the two ends of the LV's slices when the slice order is known, else {}."""
    present = sorted(slices_with_myocardium)
    if len(present) < 2 or not slice_order_known(orientation):
        return {}
    apex, base = (present[0], present[-1]) if orientation["apex_first"] else (present[-1], present[0])
    return {apex: "apex", base: "base"}


def slice_name(k: int, ends: Dict[int, str], first_number: int = 0) -> str:
    """'slice N' (N = index + first_number), with '(base)' / '(apex)' at the ends of a known slice order."""
    return f"slice {k + first_number}" + (f" ({ends[k]})" if k in ends else "")


#: in-plane length of the septum line (mm)
SEPTUM_LINE_MM = 25.0


def slice_entry(orientation: Optional[Dict], k: int) -> Optional[Dict]:
    """report.json's `orientation.slices[k]` (keys are strings in JSON, integers before), or None."""
    slices = (orientation or {}).get("slices") or {}
    return slices.get(str(k), slices.get(k))


def _draw_slice(ax, image: Stack, masks, crop, k: int, window, orientation: Optional[Dict],
                marks_text: bool = True, scale: float = 1.0) -> bool:
    """One slice as a CMR viewer shows it (see `overlay_png`), contours (`palette`), and, when the orientation has a
    septum and the slice has myocardium, the septum line from the LV centre and where the AHA segments lie
    (`slice_marks.draw_slice_marks`); returns whether the septum line was drawn."""
    from nnunetv2_scarnet.quantification.sectors import lv_center

    myo, scar, mvo, pool = masks
    crop_x, crop_y = crop
    ax.imshow(image.data[crop_x, crop_y, k].T, cmap="gray", vmin=window[0], vmax=window[1],
              aspect=image.spacing[1] / image.spacing[0])
    for mask, color in ((myo, palette.MYOCARDIUM), (scar, palette.SCAR), (mvo, palette.MVO)):
        part = mask[crop_x, crop_y, k]
        if part.any():
            ax.contour(part.T.astype(float), levels=[0.5], colors=color, linewidths=1.1 * scale)
    septum = (orientation or {}).get("septum_deg")
    if septum is None or not myo[..., k].any():
        return False
    entry = slice_entry(orientation, k)
    per_slice = {int(s): v for s, v in ((orientation or {}).get("slice_septum_deg") or {}).items()}
    angle = entry["septum_deg"] if entry and entry.get("septum_deg") is not None else per_slice.get(k, septum)
    centre = lv_center(myo[..., k], pool[..., k])
    offset = (crop_x.start or 0, crop_y.start or 0)
    ci, cj = centre[0] - offset[0], centre[1] - offset[1]
    t = np.radians(angle)
    ax.plot([ci, ci + SEPTUM_LINE_MM * np.cos(t) / image.spacing[0]],
            [cj, cj + SEPTUM_LINE_MM * np.sin(t) / image.spacing[1]], color=palette.SEPTUM, lw=1.6 * scale,
            solid_capstyle="butt")
    draw_slice_marks(ax, myo[..., k], centre, image.spacing, offset, entry, marks_text, scale)
    return True


def slice_overlay_png(image: Stack, label: Stack, scheme: LabelScheme, k: int, path: str,
                      orientation: Optional[Dict] = None, width_in: float = 3.2, dpi: int = 160) -> str:
    """Slice `k` alone, cropped around the heart of the whole stack, contours, septum line and segment marks as
    `overlay_png` (with segment numbers and wall names), without a title (the caller captions it); the figure fills
    the picture."""
    masks = scheme.masks(label.data)
    crop = heart_crop(masks[0], image.spacing)
    shape = image.data[crop[0], crop[1], k].shape
    height_in = width_in * (shape[1] * image.spacing[1]) / (shape[0] * image.spacing[0])
    fig = plt.figure(figsize=(width_in, height_in))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.axis("off")
    _draw_slice(ax, image, masks, crop, k, display_window(image.data), orientation)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def overlay_png(image: Stack, label: Stack, scheme: LabelScheme, path: str, title: str = "",
                slices: Optional[Sequence[int]] = None, orientation: Optional[Dict] = None,
                first_number: int = 0) -> str:
    """Montage of slices, cropped around the heart, with myocardium, scar and MVO contours (`palette`).

    Slices are shown as a CMR viewer shows a DICOM-derived array: array axis 0 (i) as columns left to right, axis 1
    (j) as rows top to bottom (imshow of the transposed slice, origin upper). With an `orientation` (report.json's
    object), a blue line points from the LV centre to the septum used for the AHA segments of that slice, the
    segment borders and RV insertion points are drawn (no numbers: the pictures are small), and the ends of the
    LV's slices are labelled apex/base when the slice order is known (`slice_order_known`). Slices are named by
    index + `first_number`."""
    masks = scheme.masks(label.data)
    myo = masks[0]
    crop = heart_crop(myo, image.spacing)
    present = [k for k in range(label.data.shape[2]) if myo[..., k].any()]
    slices = list(slices) if slices is not None else present
    slices = slices or list(range(label.data.shape[2]))
    ends = end_labels(present, orientation)
    cols = min(5, len(slices))
    rows = int(np.ceil(len(slices) / cols))
    width_in = max(2.6 * cols, 5.2)
    fig, axes = plt.subplots(rows, cols, figsize=(width_in, 2.6 * rows + 0.6), squeeze=False)
    window = display_window(image.data)
    for ax in axes.ravel():
        ax.axis("off")
    drawn = False
    for ax, k in zip(axes.ravel(), slices):
        drawn |= _draw_slice(ax, image, masks, crop, k, window, orientation, marks_text=False, scale=0.7)
        ax.set_title(slice_name(k, ends, first_number), fontsize=8)
    note = "; blue: septum line, RV insertion points; white: segment borders" if drawn else ""
    text = (title or CONTOUR_LEGEND) + note
    fig.suptitle(textwrap.fill(text, int(width_in * 11)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
