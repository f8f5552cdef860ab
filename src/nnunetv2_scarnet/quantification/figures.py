"""Report pictures: contour overlays on the LGE slices and a polar (bullseye) map of scar extent."""
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Wedge  # noqa: E402

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
                slices: Optional[Sequence[int]] = None) -> str:
    """Montage of slices, cropped around the heart, with myocardium (green) and scar (red) contours."""
    myo, scar, mvo, _ = scheme.masks(label.data)
    crop_x, crop_y = heart_crop(myo, image.spacing)
    slices = list(slices) if slices is not None else [k for k in range(label.data.shape[2]) if myo[..., k].any()]
    slices = slices or list(range(label.data.shape[2]))
    cols = min(5, len(slices))
    rows = int(np.ceil(len(slices) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows + 0.4), squeeze=False)
    lo, hi = display_window(image.data)
    aspect = image.spacing[0] / image.spacing[1]
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), slices):
        ax.imshow(image.data[crop_x, crop_y, k].T, cmap="gray", vmin=lo, vmax=hi, origin="lower",
                  aspect=1 / aspect)
        for mask, color in ((myo, "lime"), (scar, "red"), (mvo, "yellow")):
            part = mask[crop_x, crop_y, k]
            if part.any():
                ax.contour(part.T.astype(float), levels=[0.5], colors=color, linewidths=0.9, origin="lower")
        ax.set_title(f"slice {k}", fontsize=8)
    fig.suptitle(title or "myocardium (green), scar (red), MVO (yellow)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bullseye_png(rings: List[List[Optional[float]]], path: str, title: str, ring_labels: Sequence[str] = (),
                 origin_deg: float = 90.0, sector_labels: Optional[List[List[str]]] = None) -> str:
    """Polar map: ring r (outermost first) split into len(rings[r]) sectors coloured by value (scar extent, %).

    Sectors are drawn counter-clockwise from `origin_deg`. None values (no myocardium) are grey.
    """
    fig, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap("inferno")
    n = len(rings)
    for r, values in enumerate(rings):
        outer, width = 1.0 - r / (n + 0.5), 1.0 / (n + 0.5)
        step = 360.0 / max(len(values), 1)
        for s, value in enumerate(values):
            start = origin_deg + s * step
            color = "lightgrey" if value is None else cmap(min(max(value, 0.0), 100.0) / 100.0)
            ax.add_patch(Wedge((0, 0), outer, start, start + step, width=width, facecolor=color, edgecolor="white"))
            mid = np.radians(start + step / 2)
            radius = outer - width / 2
            text = sector_labels[r][s] if sector_labels else ("" if value is None else f"{value:.0f}")
            ax.text(radius * np.cos(mid), radius * np.sin(mid), text, ha="center", va="center", fontsize=7,
                    color="cyan")
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


def aha_bullseye_png(segments: List[Dict], path: str, title: str) -> str:
    """Standard AHA bullseye (basal outer ring, segments 1-16) of scar extent."""
    by_number = {s["segment"]: s["scar_extent_pct"] for s in segments}
    rings = [[by_number[i] for i in range(1, 7)], [by_number[i] for i in range(7, 13)],
             [by_number[i] for i in range(13, 17)]]
    labels = [[f"{i}" for i in range(1, 7)], [f"{i}" for i in range(7, 13)], [f"{i}" for i in range(13, 17)]]
    return bullseye_png(rings, path, title, ("basal", "mid", "apical"), origin_deg=60.0, sector_labels=labels)
