"""Polar (bullseye) maps: the AHA 17-segment bullseye (Cerqueira et al., Circulation 2002) and rings of sectors
per slice, coloured by scar extent (continuous, cividis) or by Kim et al. (NEJM 2000) transmurality category
(five classes), with readable labels (dark or light text after the fill's luminance, >= 9 pt). Colours:
`palette.py`."""
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.patches import Circle, Patch, Wedge  # noqa: E402

from nnunetv2_scarnet.quantification import palette  # noqa: E402
from nnunetv2_scarnet.quantification.transmurality import CATEGORIES, transmurality_category  # noqa: E402

#: more rings than this: sector values are not written into the rings (too small to read)
MAX_LABELLED_RINGS = 8
#: the colour scales a bullseye can use
SCALES = ("extent", "kim")


def ring_summary(ring_labels: Sequence[str]) -> str:
    """'rings: a, b, c' for a few rings; for many, the outermost and innermost only (a title stays one line)."""
    if not ring_labels:
        return ""
    if len(ring_labels) <= 4:
        return "rings (outer to inner): " + ", ".join(ring_labels)
    return f"{len(ring_labels)} rings, outermost {ring_labels[0]}, innermost {ring_labels[-1]}"


def kim_colour(percent: Optional[float]) -> str:
    """Fill of a transmurality in % by its Kim et al. category (`transmurality.transmurality_category`)."""
    if percent is None:
        return palette.MISSING
    name = transmurality_category(percent / 100.0)
    return palette.KIM_COLOURS[[n for _, n in CATEGORIES].index(name)]


def text_colour(fill) -> str:
    """Black or white, whichever contrasts more with the fill (WCAG 2 relative luminance L: black gives
    (L + 0.05) / 0.05, white 1.05 / (L + 0.05); they are equal at L = 0.179, where both reach 4.58)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(fill)]
    return "black" if 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2] > 0.179 else "white"


def bullseye_png(rings: List[List[Optional[float]]], path: str, title: str, ring_labels: Sequence[str] = (),
                 origin_deg=90.0, sector_labels: Optional[List[List[str]]] = None,
                 centre: Optional[Tuple[Optional[float], str]] = None,
                 colorbar_label: str = "scar extent (% of segment myocardium)", scale: str = "extent") -> str:
    """Polar map: ring r (outermost first) split into len(rings[r]) sectors coloured by value (0-100 %).

    `scale` 'extent': continuous cividis with a colour bar; 'kim': the five Kim et al. categories of the value (a
    transmurality in %) with a legend. Sectors are drawn counter-clockwise from `origin_deg` (one angle for all
    rings, or one per ring). None values (no myocardium, no measure) are light grey and hatched. `centre` (value,
    label) fills the central disc (AHA segment 17). The title is wrapped to the figure's width and many rings are
    summarised, so the disc keeps its size."""
    if scale not in SCALES:
        raise ValueError(f"bullseye scale {scale!r}: expected one of {SCALES}")
    fig, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap(palette.EXTENT_CMAP)
    n = len(rings) + (1 if centre is not None else 0)
    origins = list(origin_deg) if isinstance(origin_deg, (list, tuple)) else [origin_deg] * len(rings)

    def colour(value):
        if scale == "kim":
            return kim_colour(value)
        return palette.MISSING if value is None else cmap(min(max(value, 0.0), 100.0) / 100.0)

    def fill(patch, value):
        if value is None:
            patch.set_hatch("///")
        ax.add_patch(patch)

    write_values = sector_labels is not None or len(rings) <= MAX_LABELLED_RINGS
    fontsize = 11 if len(rings) <= 3 else 9
    for r, values in enumerate(rings):
        outer, width = 1.0 - r / (n + 0.5), 1.0 / (n + 0.5)
        step = 360.0 / max(len(values), 1)
        for s, value in enumerate(values):
            start = origins[r] + s * step
            fill(Wedge((0, 0), outer, start, start + step, width=width, facecolor=colour(value),
                       edgecolor="white", linewidth=0.5 if len(rings) > MAX_LABELLED_RINGS else 1.5), value)
            if not write_values:
                continue
            mid = np.radians(start + step / 2)
            radius = outer - width / 2
            text = sector_labels[r][s] if sector_labels else ("" if value is None else f"{value:.0f}")
            ax.text(radius * np.cos(mid), radius * np.sin(mid), text, ha="center", va="center", fontsize=fontsize,
                    color=text_colour(colour(value)), linespacing=1.0)
    if centre is not None:
        radius = 1.0 - len(rings) / (n + 0.5)
        fill(Circle((0, 0), radius, facecolor=colour(centre[0]), edgecolor="white", linewidth=1.5), centre[0])
        ax.text(0, 0, centre[1], ha="center", va="center", fontsize=fontsize, color=text_colour(colour(centre[0])),
                linespacing=1.0)
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")
    if scale == "kim":
        handles = [Patch(facecolor=c, edgecolor="grey", label=name) for (_, name), c in
                   zip(CATEGORIES, palette.KIM_COLOURS)]
        handles.append(Patch(facecolor=palette.MISSING, edgecolor="grey", hatch="///", label="not measured"))
        ax.legend(handles=handles, title=colorbar_label.replace("\n", " "), loc="upper center",
                  bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=10, title_fontsize=10, frameon=False)
    else:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 100))
        bar = fig.colorbar(sm, ax=ax, fraction=0.04)
        bar.set_label(colorbar_label, fontsize=10)
        bar.ax.tick_params(labelsize=9)
    lines = [textwrap.fill(title, 55)] + ([ring_summary(ring_labels)] if ring_labels else [])
    ax.set_title("\n".join(lines), fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


#: what an AHA bullseye can show: (field of the segment row, factor to %, scale, legend title)
AHA_VALUES = {"scar_extent": ("scar_extent_pct", 1.0, "extent", "scar extent (% of segment myocardium)"),
              "transmurality": ("transmurality_mean", 100.0, "extent", "mean transmurality (% of wall thickness)"),
              "kim": ("transmurality_mean", 100.0, "kim", "Kim category of the mean\ntransmurality (% of wall)")}


def aha_label(segment: Dict, key: str, factor: float) -> str:
    """'N' and, below it, the shown value in % ('n/a' without a measure)."""
    value = segment.get(key)
    return f"{segment['segment']}\n" + ("n/a" if value is None else f"{factor * value:.0f}%")


def aha_bullseye_png(segments: List[Dict], path: str, title: str, value: str = "scar_extent") -> str:
    """Standard AHA bullseye (Cerqueira 2002): basal ring outermost with segment 1 (anterior) at the top and 2-3
    (septum) on the left, counter-clockwise; apical ring 13 top, 14 left (septal), 15 bottom, 16 right, not
    rotated; segment 17 in the centre. `value`: 'scar_extent' (% of the segment's myocardium, cividis),
    'kim' (Kim et al. category of the mean chord transmurality) or 'transmurality' (its mean, continuous); each
    segment shows its number and that value in %."""
    key, factor, scale, legend = AHA_VALUES[value]
    by_number = {s["segment"]: s for s in segments}

    def shown(number):
        v = by_number[number].get(key)
        return None if v is None else factor * v
    rings = [[shown(i) for i in range(a, b)] for a, b in ((1, 7), (7, 13), (13, 17))]
    labels = [[aha_label(by_number[i], key, factor) for i in range(a, b)] for a, b in ((1, 7), (7, 13), (13, 17))]
    centre = None
    if 17 in by_number:
        centre = (shown(17), aha_label(by_number[17], key, factor) if by_number[17].get("myocardium_px") else
                  "17\nn/a")
    return bullseye_png(rings, path, title, ("basal", "mid", "apical", "apex"), origin_deg=[60.0, 60.0, 45.0],
                        sector_labels=labels, centre=centre, colorbar_label=legend, scale=scale)
