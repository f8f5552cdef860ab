"""Test helper: the wedges, discs and texts a bullseye drawing function places, told apart by their colour (a
continuous map) or by the segment number written inside them (a map of categories)."""
import matplotlib.pyplot as plt
import numpy as np


def drawn_patches(monkeypatch, draw):
    """Run `draw()` with `quantification.bullseye`'s Wedge and Circle and matplotlib's Axes.text spied on; return
    (wedges, discs, texts) in drawing order, texts as dicts (x, y, text, color, fontsize)."""
    import matplotlib.axes

    from nnunetv2_scarnet.quantification import bullseye

    wedges, discs, texts = [], [], []

    class SpyWedge(bullseye.Wedge):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            wedges.append(self)

    class SpyCircle(bullseye.Circle):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            discs.append(self)

    original = matplotlib.axes.Axes.text

    def spy_text(self, x, y, s, *args, **kwargs):
        texts.append({"x": float(x), "y": float(y), "text": str(s), "color": kwargs.get("color"),
                      "fontsize": kwargs.get("fontsize")})
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(bullseye, "Wedge", SpyWedge)
    monkeypatch.setattr(bullseye, "Circle", SpyCircle)
    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy_text)
    draw()
    return wedges, discs, texts


def drawn_segments(monkeypatch, draw, segment_value, cmap="cividis"):
    """Run `draw()` spied on; return ({segment: wedge}, [(segment, disc)]). `segment_value(n)` is the value in
    [0, 1] that colours segment n (colour map `cmap`), unique per segment."""
    wedges, discs, _ = drawn_patches(monkeypatch, draw)
    colours = plt.get_cmap(cmap)

    def segment_of(patch):
        found = [n for n in range(1, 18) if np.allclose(patch.get_facecolor(), colours(segment_value(n)))]
        assert len(found) == 1
        return found[0]

    return {segment_of(p): p for p in wedges}, [(segment_of(p), p) for p in discs]


def _holds(patch, x, y) -> bool:
    r, angle = np.hypot(x, y), np.degrees(np.arctan2(y, x))
    if not hasattr(patch, "theta1"):  # a disc
        return r <= patch.radius
    inside_ring = patch.r - patch.width <= r <= patch.r
    return inside_ring and (angle - patch.theta1) % 360.0 <= (patch.theta2 - patch.theta1)


def segments_by_number(monkeypatch, draw):
    """Run `draw()` spied on; return {segment number: (patch, text dict)}, each patch found by the text written
    inside it (its first line is the segment number)."""
    wedges, discs, texts = drawn_patches(monkeypatch, draw)
    found = {}
    for t in texts:
        head = t["text"].split("\n")[0]
        if not head.isdigit():
            continue
        holders = [p for p in wedges if _holds(p, t["x"], t["y"])] or [p for p in discs if _holds(p, t["x"], t["y"])]
        assert len(holders) == 1, t
        found[int(head)] = (holders[0], t)
    return found
