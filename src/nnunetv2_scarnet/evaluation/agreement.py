"""Agreement statistics between predicted (y) and reference (x) measurements, e.g. scar volume per patient.

- Lin's concordance correlation coefficient CCC = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2), with moments
  divided by n (Lin 1989). 95% CI by Fisher's z-transform with Lin's asymptotic standard error
  (as in epiR::epi.ccc / DescTools::CCC, method "z-transform").
- Bland-Altman: bias = mean(y - x), limits of agreement bias +- 1.96 SD(y - x) (SD with n - 1).
- Percent bias = 100 * mean(y - x) / mean(x).
- Coefficient of variation CoV = 100 * SD(y - x) / mean((x + y) / 2) (SD with n - 1), the usual CMR
  reproducibility definition.
- Detection: sensitivity = TP / (TP + FN), specificity = TN / (TN + FP) of "present" calls (None if undefined).
"""
import math
from typing import Dict, Optional, Sequence

import numpy as np


def concordance(x: Sequence[float], y: Sequence[float]) -> Dict[str, Optional[float]]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = x.size
    if n < 2:
        return {"ccc": None, "ci_low": None, "ci_high": None, "n": int(n)}
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    sxy = ((x - mx) * (y - my)).mean()
    denominator = vx + vy + (mx - my) ** 2
    if denominator == 0:
        return {"ccc": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": int(n)}  # identical constants
    ccc = 2 * sxy / denominator
    if ccc >= 1 - 1e-12:
        return {"ccc": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": int(n)}
    r = sxy / math.sqrt(vx * vy) if vx > 0 and vy > 0 else 0.0
    if n < 3 or r == 0:
        return {"ccc": float(ccc), "ci_low": None, "ci_high": None, "n": int(n)}
    u = (mx - my) / (vx * vy) ** 0.25
    variance_z = ((1 - r ** 2) * ccc ** 2 / ((1 - ccc ** 2) * r ** 2)
                  + 2 * ccc ** 3 * (1 - ccc) * u ** 2 / (r * (1 - ccc ** 2) ** 2)
                  - ccc ** 4 * u ** 4 / (2 * r ** 2 * (1 - ccc ** 2) ** 2)) / (n - 2)
    z = math.atanh(ccc)
    half = 1.959964 * math.sqrt(max(variance_z, 0.0))
    return {"ccc": float(ccc), "ci_low": math.tanh(z - half), "ci_high": math.tanh(z + half), "n": int(n)}


def bland_altman(x: Sequence[float], y: Sequence[float]) -> Dict[str, Optional[float]]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    d = y - x
    if d.size == 0:
        return {"bias": None, "sd": None, "loa_low": None, "loa_high": None, "percent_bias": None, "cov_pct": None}
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    mean_ref, mean_pair = float(x.mean()), float(((x + y) / 2).mean())
    return {"bias": float(d.mean()), "sd": sd, "loa_low": float(d.mean() - 1.96 * sd),
            "loa_high": float(d.mean() + 1.96 * sd),
            "percent_bias": 100.0 * float(d.mean()) / mean_ref if mean_ref != 0 else None,
            "cov_pct": 100.0 * sd / mean_pair if mean_pair != 0 else None}


def detection(reference_present: Sequence[bool], predicted_present: Sequence[bool]) -> Dict:
    r, p = np.asarray(reference_present, bool), np.asarray(predicted_present, bool)
    tp, fn = int((r & p).sum()), int((r & ~p).sum())
    tn, fp = int((~r & ~p).sum()), int((~r & p).sum())
    return {"tp": tp, "fn": fn, "tn": tn, "fp": fp,
            "sensitivity": tp / (tp + fn) if tp + fn else None,
            "specificity": tn / (tn + fp) if tn + fp else None}
