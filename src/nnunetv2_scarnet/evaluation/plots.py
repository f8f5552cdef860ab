"""Evaluation pictures: Bland-Altman, scatter with identity line, per-patient Dice box/strip plot."""
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def agreement_png(x: Sequence[float], y: Sequence[float], stats: Dict, quantity: str, unit: str, path: str) -> str:
    x, y = np.asarray(x, float), np.asarray(y, float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    hi = max(float(np.max(x, initial=0)), float(np.max(y, initial=0))) * 1.05 or 1.0
    a.scatter(x, y, s=18)
    a.plot([0, hi], [0, hi], "k--", lw=1, label="identity")
    a.set_xlabel(f"reference {quantity} ({unit})")
    a.set_ylabel(f"predicted {quantity} ({unit})")
    ccc = stats["concordance"]
    a.set_title(f"{quantity}: CCC {ccc['ccc']:.3f}" if ccc["ccc"] is not None else
                f"{quantity}: CCC undefined ({ccc.get('undefined')})", fontsize=10 if ccc["ccc"] is not None else 7)
    a.legend(loc="upper left")
    mean, diff = (x + y) / 2, y - x
    ba = stats["bland_altman"]
    b.scatter(mean, diff, s=18)
    if ba["bias"] is not None:
        for value, style, name in ((ba["bias"], "-", "bias"), (ba["loa_low"], "--", "-1.96 SD"),
                                   (ba["loa_high"], "--", "+1.96 SD")):
            if value is None:  # limits of agreement need at least two cases
                continue
            b.axhline(value, color="k", ls=style, lw=1)
            b.text(b.get_xlim()[1], value, f" {name} {value:.2f}", va="center", fontsize=8)
    b.set_xlabel(f"mean of predicted and reference ({unit})")
    b.set_ylabel(f"predicted - reference ({unit})")
    b.set_title("Bland-Altman")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def dice_png(per_structure: Dict[str, List[float]], path: str, title: str = "per-patient Dice") -> str:
    names = list(per_structure)
    data = [[v for v in per_structure[n] if v is not None] for n in names]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(names), 4))
    ax.boxplot([d if d else [np.nan] for d in data], showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=14, alpha=0.7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("Dice")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
