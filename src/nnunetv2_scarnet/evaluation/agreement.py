"""Agreement statistics between predicted (y) and reference (x) measurements, e.g. scar volume per patient.

- Lin's concordance correlation coefficient CCC = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2), with moments
  divided by n (Lin 1989). 95% CI by Fisher's z-transform with Lin's asymptotic standard error
  (as in epiR::epi.ccc / DescTools::CCC, method "z-transform"); the CI is null where the z-transform is undefined
  (|CCC| = 1, or one series constant).
- CCC and ICC are undefined (null, with the reason in `undefined`) in the same three cases, over the pairs where
  both values are defined (None and NaN are missing measurements, dropped and counted in `n`):
  * an infinite value: not a measurement (never dropped silently, never a NaN statistic);
  * fewer than 3 pairs (subjects): two points always lie on a line, and Lin's z-transform interval divides by
    n - 2;
  * no variance in either series (every rater constant): CCC = r * C_b (Lin 1989) needs the Pearson r, and ICC is
    the share of the variance that lies between subjects (McGraw & Wong 1996): with no variance there is no
    information about agreement. Two identical constant series are not "perfect agreement" (CCC 1), two different
    ones not "no agreement" (CCC or ICC 0).
  One series constant and the other not is defined: Lin's CCC is then 0, its CI null.
- Bland-Altman (Bland & Altman 1986): bias = mean(y - x), limits of agreement bias +- 1.96 SD(y - x) (SD with
  n - 1). With fewer than 2 pairs the SD, limits and CoV are null (never 0).
- Percent bias = 100 * mean(y - x) / mean(x).
- Coefficient of variation CoV = 100 * SD(y - x) / mean((x + y) / 2) (SD with n - 1), the usual CMR
  reproducibility definition.
- ICC(A,1) of McGraw & Wong (1996), which is ICC(2,1) of Shrout & Fleiss (1979): two-way random effects,
  absolute agreement, single measurement, with the F-based 95% CI of McGraw & Wong (Satterthwaite degrees of
  freedom), as irr::icc(model="twoway", type="agreement") and psych::ICC ("ICC2"). The point estimate
  (MSR - MSE) / (MSR + (k - 1) MSE + k/n (MSC - MSE)) is given wherever it is defined (above), also when it
  is negative (anti-correlated raters: [1, 2, 3, 4] vs [4, 3, 2, 1] gives -2); the CI is null where the F
  interval is undefined (no between-subject variance).
- Detection: sensitivity = TP / (TP + FN), specificity = TN / (TN + FP) of "present" calls (null if undefined),
  each with the Wilson (1927) score 95% interval.
- Weighted kappa (Cohen 1968) of ordinal categories with linear or quadratic disagreement weights.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


def paired(x: Sequence[Optional[float]], y: Sequence[Optional[float]]) -> Tuple[np.ndarray, np.ndarray]:
    """The pairs where both values are defined (None and NaN dropped), as float arrays."""
    if len(x) != len(y):
        raise ValueError(f"paired measurements need equal lengths, got {len(x)} and {len(y)}")
    keep = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and not (
        math.isnan(float(a)) or math.isnan(float(b)))]
    return np.array([a for a, _ in keep], float), np.array([b for _, b in keep], float)


#: fewer pairs (subjects) than this: CCC and ICC undefined
MIN_PAIRS = 3


def undefined_agreement(columns: np.ndarray) -> Optional[str]:
    """Why CCC / ICC of these measurements (n subjects x k series) are undefined, None when they are defined (see
    the module docstring): an infinite value, fewer than `MIN_PAIRS` subjects, or no variance in any series."""
    infinite = int(np.isinf(columns).sum())
    if infinite:
        return f"{infinite} infinite value{'s' * (infinite > 1)}: measurements must be finite"
    if np.isnan(columns).any():
        return f"{int(np.isnan(columns).sum())} NaN values in the measurements"
    n = columns.shape[0]
    if n < MIN_PAIRS:
        return f"{n} subject{'s' * (n != 1)}: at least {MIN_PAIRS} needed (two points always lie on a line)"
    if not np.ptp(columns, axis=0).any():
        return "no variance in either series: every value of each series is the same, so agreement is not measurable"
    return None


def format_agreement(result: Dict, key: str, digits: int = 3) -> str:
    """'0.856 [0.67-0.94]', '0.000' (CI undefined), or 'undefined (reason)' of a CCC or ICC result."""
    value = result.get(key)
    if value is None:
        return f"undefined ({result.get('undefined') or 'no value'})"
    text = f"{value:.{digits}f}"
    if result.get("ci_low") is not None:
        text += f" [{result['ci_low']:.2f}-{result['ci_high']:.2f}]"
    return text


def concordance(x: Sequence[float], y: Sequence[float]) -> Dict[str, Optional[float]]:
    """Lin's CCC with its z-transform 95% CI over the pairs where both values are defined; `undefined` says why
    the CCC is null (see the module docstring)."""
    x, y = paired(x, y)
    n = x.size
    out = {"ccc": None, "ci_low": None, "ci_high": None, "n": int(n), "undefined": None}
    why = undefined_agreement(np.stack([x, y], axis=1))
    if why:
        return {**out, "undefined": why}
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    sxy = ((x - mx) * (y - my)).mean()
    ccc = float(np.clip(2 * sxy / (vx + vy + (mx - my) ** 2), -1.0, 1.0))
    out["ccc"] = ccc
    if vx == 0 or vy == 0 or abs(ccc) >= 1 - 1e-12:
        if ccc >= 1 - 1e-12:
            out.update(ccc=1.0, ci_low=1.0, ci_high=1.0)
        return out  # the z-transform is undefined at |CCC| = 1 and without a correlation
    r = sxy / math.sqrt(vx * vy)
    if abs(r) < 1e-12:
        return out
    u = (mx - my) / (vx * vy) ** 0.25
    variance_z = ((1 - r ** 2) * ccc ** 2 / ((1 - ccc ** 2) * r ** 2)
                  + 2 * ccc ** 3 * (1 - ccc) * u ** 2 / (r * (1 - ccc ** 2) ** 2)
                  - ccc ** 4 * u ** 4 / (2 * r ** 2 * (1 - ccc ** 2) ** 2)) / (n - 2)
    z = math.atanh(ccc)
    half = Z95 * math.sqrt(max(variance_z, 0.0))
    return {**out, "ci_low": math.tanh(z - half), "ci_high": math.tanh(z + half)}


def bland_altman(x: Sequence[float], y: Sequence[float]) -> Dict[str, Optional[float]]:
    x, y = paired(x, y)
    d = y - x
    out = {"bias": None, "sd": None, "loa_low": None, "loa_high": None, "percent_bias": None, "cov_pct": None,
           "n": int(d.size)}
    if d.size == 0:
        return out
    bias, mean_ref = float(d.mean()), float(x.mean())
    out.update(bias=bias, percent_bias=100.0 * bias / mean_ref if mean_ref != 0 else None)
    if d.size < 2:
        return out  # one pair has no spread: SD, limits and CoV are undefined, not 0
    sd = float(d.std(ddof=1))
    mean_pair = float(((x + y) / 2).mean())
    out.update(sd=sd, loa_low=bias - 1.96 * sd, loa_high=bias + 1.96 * sd,
               cov_pct=100.0 * sd / mean_pair if mean_pair != 0 else None)
    return out


def icc_a1(ratings: np.ndarray, alpha: float = 0.05) -> Dict[str, Optional[float]]:
    """ICC(A,1) (= Shrout-Fleiss ICC(2,1)) of an (n subjects x k raters) matrix, with its F-based CI; `undefined`
    says why the ICC is null (see the module docstring: a NaN or infinite rating, fewer than 3 subjects, no
    variance in any rater's ratings)."""
    ratings = np.asarray(ratings, float)
    if ratings.ndim != 2 or ratings.shape[1] < 2:
        raise ValueError(f"ICC needs an (n subjects x k >= 2 raters) matrix, got shape {ratings.shape}")
    n, k = ratings.shape
    out = {"icc": None, "ci_low": None, "ci_high": None, "n": int(n), "form": "ICC(A,1) absolute agreement",
           "undefined": undefined_agreement(ratings)}
    if out["undefined"]:
        return out
    grand = ratings.mean()
    ss_rows = k * float(((ratings.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((ratings.mean(axis=0) - grand) ** 2).sum())
    ss_err = float(((ratings - grand) ** 2).sum()) - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = max(ss_err, 0.0) / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k / n * (msc - mse)  # > 0 when some rater's ratings vary
    icc = (msr - mse) / denominator
    out["icc"] = float(icc)
    if mse == 0 and msc == 0:
        return {**out, "ci_low": 1.0, "ci_high": 1.0}
    if icc >= 1:
        return out
    return {**out, **_icc_a1_interval(icc, msr, msc, mse, n, k, alpha)}


def _icc_a1_interval(icc: float, msr: float, msc: float, mse: float, n: int, k: int,
                     alpha: float) -> Dict[str, Optional[float]]:
    """McGraw & Wong (1996) F-based interval of ICC(A,1), Satterthwaite degrees of freedom v. Null where v or a
    bound is undefined, e.g. no between-subject variance (MSR = 0: anti-correlated raters, two different constants)."""
    undefined = {"ci_low": None, "ci_high": None}
    a = k * icc / (n * (1 - icc))
    b = 1 + k * icc * (n - 1) / (n * (1 - icc))
    v_denominator = (a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1))
    if v_denominator <= 0:
        return undefined
    v = (a * msc + b * mse) ** 2 / v_denominator
    if not (math.isfinite(v) and v > 0):
        return undefined
    f_low = stats.f.ppf(1 - alpha / 2, n - 1, v)
    f_high = stats.f.ppf(1 - alpha / 2, v, n - 1)
    low_denominator = f_low * (k * msc + (k * n - k - n) * mse) + n * msr
    high_denominator = k * msc + (k * n - k - n) * mse + n * f_high * msr
    if not (math.isfinite(f_low) and math.isfinite(f_high)) or low_denominator == 0 or high_denominator == 0:
        return undefined
    low = n * (msr - f_low * mse) / low_denominator
    high = n * (f_high * msr - mse) / high_denominator
    return {"ci_low": float(low), "ci_high": float(high)}


def icc_agreement(x: Sequence[float], y: Sequence[float]) -> Dict[str, Optional[float]]:
    """ICC(A,1) of paired measurements (reference x, prediction y as two raters), undefined pairs dropped."""
    x, y = paired(x, y)
    return icc_a1(np.stack([x, y], axis=1))


def wilson_interval(successes: int, total: int, z: float = Z95) -> Tuple[Optional[float], Optional[float]]:
    """Wilson (1927) score interval of a proportion; (None, None) when total is 0."""
    if total <= 0:
        return None, None
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    return low, 1.0 if successes == total else min(1.0, centre + half)


def detection(reference_present: Sequence[bool], predicted_present: Sequence[bool]) -> Dict:
    r, p = np.asarray(reference_present, bool), np.asarray(predicted_present, bool)
    tp, fn = int((r & p).sum()), int((r & ~p).sum())
    tn, fp = int((~r & ~p).sum()), int((~r & p).sum())
    sens_ci, spec_ci = wilson_interval(tp, tp + fn), wilson_interval(tn, tn + fp)
    return {"tp": tp, "fn": fn, "tn": tn, "fp": fp,
            "sensitivity": tp / (tp + fn) if tp + fn else None,
            "sensitivity_ci_low": sens_ci[0], "sensitivity_ci_high": sens_ci[1],
            "specificity": tn / (tn + fp) if tn + fp else None,
            "specificity_ci_low": spec_ci[0], "specificity_ci_high": spec_ci[1]}


def weighted_kappa(rater_a: Sequence, rater_b: Sequence, categories: Optional[Sequence] = None,
                   weights: str = "linear") -> Dict[str, Optional[float]]:
    """Cohen's (1968) weighted kappa of two ordinal ratings of the same items.

    `categories` lists the ordered categories (default: the sorted values seen); disagreement weights are
    |i - j| / (K - 1) ("linear") or ((i - j) / (K - 1))^2 ("quadratic"), and "none" gives Cohen's unweighted
    kappa. kappa_w = 1 - sum(w * observed) / sum(w * expected), expected from the marginals. Pairs where either
    rating is None are dropped; kappa is null when the expected weighted disagreement is 0 (e.g. both raters use
    one category only)."""
    if weights not in ("linear", "quadratic", "none"):
        raise ValueError(f"weights must be 'linear', 'quadratic' or 'none', got {weights!r}")
    if len(rater_a) != len(rater_b):
        raise ValueError(f"weighted kappa needs equal lengths, got {len(rater_a)} and {len(rater_b)}")
    pairs = [(a, b) for a, b in zip(rater_a, rater_b) if a is not None and b is not None]
    cats = list(categories) if categories is not None else sorted({v for p in pairs for v in p})
    index = {c: i for i, c in enumerate(cats)}
    unknown = sorted({v for p in pairs for v in p if v not in index}, key=str)
    if unknown:
        raise ValueError(f"ratings {unknown} are not among the categories {cats}")
    out = {"kappa": None, "n": len(pairs), "weights": weights, "categories": cats}
    k = len(cats)
    if not pairs or k < 2:
        return out
    observed = np.zeros((k, k))
    for a, b in pairs:
        observed[index[a], index[b]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    w = {"linear": np.abs(i - j) / (k - 1), "quadratic": ((i - j) / (k - 1)) ** 2,
         "none": (i != j).astype(float)}[weights]
    disagreement_expected = float((w * expected).sum())
    if disagreement_expected == 0:
        return out
    out["kappa"] = 1.0 - float((w * observed).sum()) / disagreement_expected
    return out
