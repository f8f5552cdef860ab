"""Report pictures: contour overlays on the LGE slices and a polar (bullseye) map of scar extent."""
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, Wedge  # noqa: E402

from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, Stack  # noqa: E402


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


def overlay_png(image: Stack, label: Stack, scheme: LabelScheme, path: str, title: str = "",
                slices: Optional[Sequence[int]] = None, orientation: Optional[Dict] = None) -> str:
    """Montage of slices, cropped around the heart, with myocardium (green) and scar (red) contours.

    Slices are shown as a CMR viewer shows a DICOM-derived array: array axis 0 (i) as columns left to right, axis 1
    (j) as rows top to bottom (imshow of the transposed slice, origin upper). With an `orientation` (report.json's
    object), a cyan line points from the LV centre to the septum used for the AHA segments of that slice and the
    end slices are labelled apex/base when the slice order is known (`orientation.slice_order_decided`)."""
    from nnunetv2_scarnet.quantification.orientation import slice_order_decided
    from nnunetv2_scarnet.quantification.sectors import lv_center

    myo, scar, mvo, pool = scheme.masks(label.data)
    crop_x, crop_y = heart_crop(myo, image.spacing)
    slices = list(slices) if slices is not None else [k for k in range(label.data.shape[2]) if myo[..., k].any()]
    slices = slices or list(range(label.data.shape[2]))
    cols = min(5, len(slices))
    rows = int(np.ceil(len(slices) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows + 0.4), squeeze=False)
    lo, hi = display_window(image.data)
    aspect = image.spacing[0] / image.spacing[1]
    x0 = crop_x.start or 0
    y0 = crop_y.start or 0
    septum = (orientation or {}).get("septum_deg")
    per_slice = {int(k): v for k, v in ((orientation or {}).get("slice_septum_deg") or {}).items()}
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), slices):
        ax.imshow(image.data[crop_x, crop_y, k].T, cmap="gray", vmin=lo, vmax=hi, aspect=1 / aspect)
        for mask, color in ((myo, "lime"), (scar, "red"), (mvo, "yellow")):
            part = mask[crop_x, crop_y, k]
            if part.any():
                ax.contour(part.T.astype(float), levels=[0.5], colors=color, linewidths=0.9)
        name = f"slice {k}"
        if septum is not None and myo[..., k].any():
            ci, cj = lv_center(myo[..., k], pool[..., k])
            angle = np.radians(per_slice.get(k, septum))
            reach = 25.0  # mm
            ax.plot([ci - x0, ci - x0 + reach * np.cos(angle) / image.spacing[0]],
                    [cj - y0, cj - y0 + reach * np.sin(angle) / image.spacing[1]], color="cyan", lw=0.9)
        if orientation and slices and slice_order_decided(  # no apex/base label on an inconclusive order
                orientation.get("apex_first"), (orientation.get("sources") or {}).get("slice_order"),
                (orientation.get("confidences") or {}).get("slice_order")):
            ends = (min(slices), max(slices))
            apex = ends[0] if orientation["apex_first"] else ends[1]
            name += " (apex)" if k == apex else " (base)" if k in ends else ""
        ax.set_title(name, fontsize=8)
    note = "" if septum is None else "  cyan: septum"
    fig.suptitle((title or "myocardium (green), scar (red), MVO (yellow)") + note, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bullseye_png(rings: List[List[Optional[float]]], path: str, title: str, ring_labels: Sequence[str] = (),
                 origin_deg=90.0, sector_labels: Optional[List[List[str]]] = None,
                 centre: Optional[Tuple[Optional[float], str]] = None) -> str:
    """Polar map: ring r (outermost first) split into len(rings[r]) sectors coloured by value (scar extent, %).

    Sectors are drawn counter-clockwise from `origin_deg` (one angle for all rings, or one per ring). None values
    (no myocardium) are grey. `centre` (value, label) fills the central disc (AHA segment 17)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap("inferno")
    n = len(rings) + (1 if centre is not None else 0)
    origins = list(origin_deg) if isinstance(origin_deg, (list, tuple)) else [origin_deg] * len(rings)

    def colour(value):
        return "lightgrey" if value is None else cmap(min(max(value, 0.0), 100.0) / 100.0)

    for r, values in enumerate(rings):
        outer, width = 1.0 - r / (n + 0.5), 1.0 / (n + 0.5)
        step = 360.0 / max(len(values), 1)
        for s, value in enumerate(values):
            start = origins[r] + s * step
            ax.add_patch(Wedge((0, 0), outer, start, start + step, width=width, facecolor=colour(value),
                               edgecolor="white"))
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
    fig.colorbar(sm, ax=ax, fraction=0.04, label="scar extent (% of segment myocardium)")
    subtitle = f"\nrings: {', '.join(ring_labels)}" if ring_labels else ""
    ax.set_title(title + subtitle, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _aha_text(segment: Dict) -> str:
    t = segment.get("transmurality_mean")
    return f"{segment['segment']}" + ("" if t is None else f"\nT{100 * t:.0f}%")


def aha_bullseye_png(segments: List[Dict], path: str, title: str) -> str:
    """Standard AHA bullseye (Cerqueira 2002): basal ring outermost with segment 1 (anterior) at the top and 2-3
    (septum) on the left, counter-clockwise; apical ring 13 top, 14 left (septal), 15 bottom, 16 right, not
    rotated; segment 17 in the centre. Colour: scar extent; text: segment number and mean chord transmurality."""
    by_number = {s["segment"]: s for s in segments}
    rings = [[by_number[i]["scar_extent_pct"] for i in range(a, b)] for a, b in ((1, 7), (7, 13), (13, 17))]
    labels = [[_aha_text(by_number[i]) for i in range(a, b)] for a, b in ((1, 7), (7, 13), (13, 17))]
    centre = None
    if 17 in by_number:
        centre = (by_number[17]["scar_extent_pct"], "17" if by_number[17]["myocardium_px"] else "17\nn/a")
    return bullseye_png(rings, path, title, ("basal", "mid", "apical", "apex"), origin_deg=[60.0, 60.0, 45.0],
                        sector_labels=labels, centre=centre)
