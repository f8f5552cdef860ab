"""Test helper: the wedges and discs a bullseye drawing function places, told apart by their colour."""
import matplotlib.pyplot as plt
import numpy as np


def drawn_segments(monkeypatch, draw, segment_value):
    """Run `draw()` with `quantification.figures`' Wedge and Circle spied on; return ({segment: wedge}, [discs]).
    `segment_value(n)` is the value in [0, 1] that colours segment n (inferno colour map), unique per segment."""
    from nnunetv2_scarnet.quantification import figures

    drawn = []

    class SpyWedge(figures.Wedge):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            drawn.append(self)

    class SpyCircle(figures.Circle):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            drawn.append(self)

    monkeypatch.setattr(figures, "Wedge", SpyWedge)
    monkeypatch.setattr(figures, "Circle", SpyCircle)
    draw()
    cmap = plt.get_cmap("inferno")

    def segment_of(patch):
        found = [n for n in range(1, 18) if np.allclose(patch.get_facecolor(), cmap(segment_value(n)))]
        assert len(found) == 1
        return found[0]

    wedges = {segment_of(p): p for p in drawn if isinstance(p, SpyWedge)}
    discs = [(segment_of(p), p) for p in drawn if isinstance(p, SpyCircle)]
    return wedges, discs
