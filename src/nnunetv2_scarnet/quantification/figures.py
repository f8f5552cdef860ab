"""Report pictures: contour overlays on the LGE slices and a polar (bullseye) map of scar extent."""
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, Wedge  # noqa: E402

from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, Stack  # noqa: E402
from nnunetv2_scarnet.quantification.orientation import slice_order_decided  # noqa: E402


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


def _draw_slice(ax, image: Stack, masks, crop, k: int, window, orientation: Optional[Dict]) -> bool:
    """One slice as a CMR viewer shows it (see `overlay_png`), contours, and the cyan septum line when the
    orientation has a septum and the slice has myocardium; returns whether the line was drawn."""
    from nnunetv2_scarnet.quantification.sectors import lv_center

    myo, scar, mvo, pool = masks
    crop_x, crop_y = crop
    ax.imshow(image.data[crop_x, crop_y, k].T, cmap="gray", vmin=window[0], vmax=window[1],
              aspect=image.spacing[1] / image.spacing[0])
    for mask, color in ((myo, "lime"), (scar, "red"), (mvo, "yellow")):
        part = mask[crop_x, crop_y, k]
        if part.any():
            ax.contour(part.T.astype(float), levels=[0.5], colors=color, linewidths=0.9)
    septum = (orientation or {}).get("septum_deg")
    if septum is None or not myo[..., k].any():
        return False
    per_slice = {int(s): v for s, v in ((orientation or {}).get("slice_septum_deg") or {}).items()}
    ci, cj = lv_center(myo[..., k], pool[..., k])
    ci, cj = ci - (crop_x.start or 0), cj - (crop_y.start or 0)
    angle = np.radians(per_slice.get(k, septum))
    reach = 25.0  # mm
    ax.plot([ci, ci + reach * np.cos(angle) / image.spacing[0]], [cj, cj + reach * np.sin(angle) / image.spacing[1]],
            color="cyan", lw=1.2)
    return True


def slice_overlay_png(image: Stack, label: Stack, scheme: LabelScheme, k: int, path: str,
                      orientation: Optional[Dict] = None, width_in: float = 3.2, dpi: int = 160) -> str:
    """Slice `k` alone, cropped around the heart of the whole stack, contours and septum line as `overlay_png`,
    without a title (the caller captions it); the figure fills the picture."""
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
    """Montage of slices, cropped around the heart, with myocardium (green) and scar (red) contours.

    Slices are shown as a CMR viewer shows a DICOM-derived array: array axis 0 (i) as columns left to right, axis 1
    (j) as rows top to bottom (imshow of the transposed slice, origin upper). With an `orientation` (report.json's
    object), a cyan line points from the LV centre to the septum used for the AHA segments of that slice, and the
    ends of the LV's slices are labelled apex/base when the slice order is known (`slice_order_known`). Slices are
    named by index + `first_number`."""
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
        drawn |= _draw_slice(ax, image, masks, crop, k, window, orientation)
        ax.set_title(slice_name(k, ends, first_number), fontsize=8)
    note = "  cyan: septum" if drawn else ""
    text = (title or "myocardium (green), scar (red), MVO (yellow)") + note
    fig.suptitle(textwrap.fill(text, int(width_in * 11)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


#: more rings than this: sector values are not written into the rings (too small to read)
MAX_LABELLED_RINGS = 8


def ring_summary(ring_labels: Sequence[str]) -> str:
    """'rings: a, b, c' for a few rings; for many, the outermost and innermost only (a title stays one line)."""
    if not ring_labels:
        return ""
    if len(ring_labels) <= 4:
        return "rings (outer to inner): " + ", ".join(ring_labels)
    return f"{len(ring_labels)} rings, outermost {ring_labels[0]}, innermost {ring_labels[-1]}"


def bullseye_png(rings: List[List[Optional[float]]], path: str, title: str, ring_labels: Sequence[str] = (),
                 origin_deg=90.0, sector_labels: Optional[List[List[str]]] = None,
                 centre: Optional[Tuple[Optional[float], str]] = None,
                 colorbar_label: str = "scar extent (% of segment myocardium)") -> str:
    """Polar map: ring r (outermost first) split into len(rings[r]) sectors coloured by value (0-100).

    Sectors are drawn counter-clockwise from `origin_deg` (one angle for all rings, or one per ring). None values
    (no myocardium, no measure) are grey. `centre` (value, label) fills the central disc (AHA segment 17). The
    title is wrapped to the figure's width and many rings are summarised, so the disc keeps its size."""
    fig, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap("inferno")
    n = len(rings) + (1 if centre is not None else 0)
    origins = list(origin_deg) if isinstance(origin_deg, (list, tuple)) else [origin_deg] * len(rings)

    def colour(value):
        return "lightgrey" if value is None else cmap(min(max(value, 0.0), 100.0) / 100.0)

    write_values = sector_labels is not None or len(rings) <= MAX_LABELLED_RINGS
    for r, values in enumerate(rings):
        outer, width = 1.0 - r / (n + 0.5), 1.0 / (n + 0.5)
        step = 360.0 / max(len(values), 1)
        for s, value in enumerate(values):
            start = origins[r] + s * step
            ax.add_patch(Wedge((0, 0), outer, start, start + step, width=width, facecolor=colour(value),
                               edgecolor="white", linewidth=0.5 if len(rings) > MAX_LABELLED_RINGS else 1.0))
            if not write_values:
                continue
            mid = np.radians(start + step / 2)
            radius = outer - width / 2
            text = sector_labels[r][s] if sector_labels else ("" if value is None else f"{value:.0f}")
            ax.text(radius * np.cos(mid), radius * np.sin(mid), text, ha="center", va="center", fontsize=7,
                    color="cyan")
    if centre is not None:
        radius = 1.0 - len(rings) / (n + 0.5)
        ax.add_patch(Circle((0, 0), radius, facecolor=colour(centre[0]), edgecolor="white"))
        ax.text(0, 0, centre[1], ha="center", va="center", fontsize=7, color="cyan")
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 100))
    fig.colorbar(sm, ax=ax, fraction=0.04, label=colorbar_label)
    lines = [textwrap.fill(title, 60)] + ([ring_summary(ring_labels)] if ring_labels else [])
    ax.set_title("\n".join(lines), fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


#: what an AHA bullseye can show: (field of the segment row, factor to %, colour bar label)
AHA_VALUES = {"scar_extent": ("scar_extent_pct", 1.0, "scar extent (% of segment myocardium)"),
              "transmurality": ("transmurality_mean", 100.0, "mean transmurality (% of wall thickness)")}


def _aha_text(segment: Dict) -> str:
    t = segment.get("transmurality_mean")
    return f"{segment['segment']}" + ("" if t is None else f"\nT{100 * t:.0f}%")


def aha_bullseye_png(segments: List[Dict], path: str, title: str, value: str = "scar_extent") -> str:
    """Standard AHA bullseye (Cerqueira 2002): basal ring outermost with segment 1 (anterior) at the top and 2-3
    (septum) on the left, counter-clockwise; apical ring 13 top, 14 left (septal), 15 bottom, 16 right, not
    rotated; segment 17 in the centre. Colour: `value` ('scar_extent' %, or 'transmurality': mean chord
    transmurality in %); text: segment number and mean chord transmurality."""
    key, scale, colorbar_label = AHA_VALUES[value]
    by_number = {s["segment"]: s for s in segments}

    def shown(number):
        v = by_number[number].get(key)
        return None if v is None else scale * v
    rings = [[shown(i) for i in range(a, b)] for a, b in ((1, 7), (7, 13), (13, 17))]
    labels = [[_aha_text(by_number[i]) for i in range(a, b)] for a, b in ((1, 7), (7, 13), (13, 17))]
    centre = None
    if 17 in by_number:
        centre = (shown(17), "17" if by_number[17]["myocardium_px"] and shown(17) is not None else "17\nn/a")
    return bullseye_png(rings, path, title, ("basal", "mid", "apical", "apex"), origin_deg=[60.0, 60.0, 45.0],
                        sector_labels=labels, centre=centre, colorbar_label=colorbar_label)
