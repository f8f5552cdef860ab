"""Report figures: every slice with its contours, and a bullseye of transmurality (PNG bytes)."""
import os
import tempfile
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Wedge  # noqa: E402

from nnunetv2_scarnet.quantification.figures import overlay_png  # noqa: E402


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def overlay_every_slice(image, label, scheme, title: str) -> bytes:
    """All slices of the stack (not only those with myocardium), contours drawn by the quantification's figure."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "overlay.png")
        overlay_png(image, label, scheme, path, title, slices=range(label.data.shape[2]))
        return _read(path)


def _value(row: Dict, prefix: str) -> Optional[float]:
    """First numeric field of `row` whose name starts with `prefix` (keys may be renamed or gain variants)."""
    for key, value in row.items():
        if key.startswith(prefix) and isinstance(value, (int, float)):
            return float(value)
    return None


def transmurality_rings(quantification: Dict):
    """(rings of transmurality % (outer first), ring labels, sector labels, origin, title) from the AHA segments
    when the quantification has them, else from the per-slice sectors."""
    aha = quantification.get("aha")
    if aha:
        by_number = {int(r["segment"]): r for r in aha}

        def ring(numbers):
            return [None if by_number.get(i) is None or _value(by_number[i], "transmurality") is None
                    else 100.0 * _value(by_number[i], "transmurality") for i in numbers]
        rings = [ring(range(1, 7)), ring(range(7, 13)), ring(range(13, 17))]
        labels = [[str(i) for i in range(1, 7)], [str(i) for i in range(7, 13)], [str(i) for i in range(13, 17)]]
        return rings, ["basal", "mid", "apical"], labels, 60.0, "AHA segments 1-16"
    by_slice: Dict[int, List[Optional[float]]] = {}
    for r in quantification.get("sectors", []):
        t = _value(r, "transmurality")
        by_slice.setdefault(int(r["slice"]), []).append(None if t is None else 100.0 * t)
    order = sorted(by_slice)
    return [by_slice[k] for k in order], [f"slice {k}" for k in order], None, 90.0, "sectors per slice"


def transmurality_bullseye(quantification: Dict, title: str) -> bytes:
    rings, ring_labels, sector_labels, origin, what = transmurality_rings(quantification)
    fig, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap("magma")
    n = max(len(rings), 1)
    for r, values in enumerate(rings):
        outer, width = 1.0 - r / (n + 0.5), 1.0 / (n + 0.5)
        step = 360.0 / max(len(values), 1)
        for s, value in enumerate(values):
            start = origin + s * step
            color = "lightgrey" if value is None else cmap(min(max(value, 0.0), 100.0) / 100.0)
            ax.add_patch(Wedge((0, 0), outer, start, start + step, width=width, facecolor=color, edgecolor="white"))
            mid, radius = np.radians(start + step / 2), outer - width / 2
            text = sector_labels[r][s] if sector_labels else ("" if value is None else f"{value:.0f}")
            ax.text(radius * np.cos(mid), radius * np.sin(mid), text, ha="center", va="center", fontsize=7,
                    color="cyan")
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 100)), ax=ax, fraction=0.04,
                 label="mean transmurality (% of wall thickness)")
    ax.set_title(f"{title}\n{what}; rings: {', '.join(ring_labels[:3])}{' ...' if len(ring_labels) > 3 else ''}",
                 fontsize=9)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bullseye.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return _read(path)
