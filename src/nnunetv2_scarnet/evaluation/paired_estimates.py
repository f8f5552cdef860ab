"""Estimates, intervals and tests of paired differences d_i = candidate_i - reference_i (one per patient).

- Hodges-Lehmann estimate (Hodges & Lehmann 1963): the median of the M = n(n+1)/2 Walsh averages
  (d_i + d_j) / 2, i <= j. It is the shift at which the signed-rank statistic is balanced: the estimate that goes
  with the Wilcoxon signed-rank test (for symmetric differences it estimates their median).
- Its distribution-free confidence interval, the set of shifts the two-sided signed-rank test does not reject
  (Tukey 1949; Bauer 1972, JASA 67:687; Hollander, Wolfe & Chicken 2014, Nonparametric Statistical Methods,
  3rd ed., section 3.3): [W_(C), W_(M+1-C)] of the sorted Walsh averages, C the largest integer with
  P(T+ <= C - 1) <= alpha / 2 under the exact null distribution of the signed-rank statistic T+ (computed by
  recursion over the ranks, up to `EXACT_MAX_N` pairs; the normal approximation with continuity correction above).
  The achieved confidence 1 - 2 P(T+ <= C - 1), at least the nominal level, is reported. Undefined (null, with the
  reason) when even [min, max] falls short of the level: at 95%, fewer than 6 pairs (1 - 2^(1-n) < 0.95). The
  level is exact for continuous differences; zeros and ties (e.g. two patients with Dice 0 for both models) make
  it approximate.
- Wilcoxon signed-rank test (Wilcoxon 1945): two-sided, zero differences dropped (zero_method "wilcox"), with
  scipy.stats.wilcoxon's automatic choice of the null distribution: exact without ties or zeros up to 50 pairs,
  the exact sign-flip permutation distribution with ties or zeros up to 13 pairs (computed here by recursion over
  the mid-ranks, `sign_flip_p`: scipy's permutation test gives the same p in seconds), normal approximation
  otherwise.
- Median of the differences with a paired percentile bootstrap interval (Efron & Tibshirani 1993): patients
  resampled with replacement (numpy default_rng(seed)), the same draw for both models.
"""
import math
from functools import lru_cache
from typing import Callable, Dict, Optional, Sequence

import numpy as np
from scipy import stats

N_RESAMPLES = 2000
#: pairs up to which the null distribution of the signed-rank statistic is computed exactly
EXACT_MAX_N = 1000


def walsh_averages(differences: Sequence[float]) -> np.ndarray:
    """The n(n+1)/2 averages (d_i + d_j) / 2 over i <= j, sorted."""
    d = np.asarray(differences, float)
    i, j = np.triu_indices(d.size)
    return np.sort((d[i] + d[j]) / 2)


def hodges_lehmann(differences: Sequence[float]) -> Optional[float]:
    """Median of the Walsh averages; None without differences."""
    w = walsh_averages(differences)
    return float(np.median(w)) if w.size else None


@lru_cache(maxsize=64)
def signed_rank_null_cdf(n: int) -> np.ndarray:
    """P(T+ <= t), t = 0 .. n(n+1)/2, of the signed-rank statistic of n pairs under H0 (each rank's sign +/- with
    probability 1/2): the distribution of a sum of ranks r = 1..n each included with probability 1/2."""
    p = np.ones(1)
    for r in range(1, n + 1):
        grown = np.zeros(p.size + r)
        grown[:p.size] += p / 2
        grown[r:] += p / 2
        p = grown
    return np.cumsum(p)


def _critical_rank(n: int, alpha: float):
    """(C, achieved confidence, method) of the signed-rank interval; C = 0 when no interval reaches the level."""
    if n <= EXACT_MAX_N:
        cdf = signed_rank_null_cdf(n)
        c = int(np.searchsorted(cdf, alpha / 2, side="right"))  # number of t with P(T+ <= t) <= alpha/2
        return c, (1 - 2 * float(cdf[c - 1]) if c else None), "exact"
    m = n * (n + 1) / 4
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    c = int(math.floor(m - stats.norm.ppf(1 - alpha / 2) * sd + 0.5))  # P(T+ <= c - 1) ~ Phi((c - 1/2 - m) / sd)
    return c, 1 - 2 * float(stats.norm.cdf((c - 0.5 - m) / sd)), "normal approximation"


def hodges_lehmann_interval(differences: Sequence[float], level: float = 0.95) -> Dict:
    """Hodges-Lehmann estimate with its signed-rank confidence interval (see the module docstring)."""
    d = np.asarray(differences, float)
    out = {"estimate": hodges_lehmann(d), "ci_low": None, "ci_high": None, "confidence": None, "level": level,
           "n": int(d.size), "method": None, "ci_undefined": None}
    if d.size == 0:
        out["ci_undefined"] = "no pairs"
        return out
    c, achieved, method = _critical_rank(int(d.size), 1 - level)
    if c < 1:
        out["ci_undefined"] = (f"{d.size} pairs: even the widest signed-rank interval [min, max] has confidence "
                               f"{1 - 2 ** (1 - int(d.size)):.3f} < {level:g}")
        return out
    w = walsh_averages(d)
    return {**out, "ci_low": float(w[c - 1]), "ci_high": float(w[w.size - c]), "confidence": achieved,
            "method": f"signed-rank interval ({method} null distribution)"}


def sign_flip_p(differences: Sequence[float]) -> Optional[float]:
    """Two-sided p of the signed-rank statistic T+ over all 2^n sign flips of the differences: exact with tied
    |d| (mid-ranks) and zeros (rank 0, dropped), 2 min(P(T+ <= t), P(T+ >= t)) capped at 1. The distribution of
    the doubled (integer) mid-ranks is built by recursion, as `signed_rank_null_cdf` for untied ranks."""
    d = np.asarray(differences, float)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return None
    doubled = np.rint(2 * stats.rankdata(np.abs(nonzero))).astype(int)
    p = np.zeros(int(doubled.sum()) + 1)
    p[0] = 1.0
    for r in doubled:
        shifted = np.zeros_like(p)
        shifted[r:] = p[:p.size - r]
        p = (p + shifted) / 2
    cdf = np.cumsum(p)
    t = int(doubled[nonzero > 0].sum())
    at_least = 1.0 - (cdf[t - 1] if t > 0 else 0.0)
    return float(min(1.0, 2 * min(cdf[t], at_least)))


def wilcoxon_signed_rank(differences: Sequence[float]) -> Dict:
    """Two-sided Wilcoxon signed-rank test of paired differences; p is null when every difference is 0. The null
    distribution as scipy.stats.wilcoxon(method="auto") chooses it; its exact sign-flip permutation (ties or zeros,
    up to 13 pairs) is computed by `sign_flip_p` (the same p in milliseconds instead of seconds)."""
    d = np.asarray(differences, float)
    nonzero = int(np.count_nonzero(d))
    out = {"n": int(d.size), "n_zero": int(d.size) - nonzero, "statistic": None, "p_value": None}
    if nonzero == 0:
        return out
    magnitudes = np.abs(d[d != 0])
    tied_or_zero = nonzero < d.size or np.unique(magnitudes).size < magnitudes.size
    if tied_or_zero and d.size <= 13:
        ranks = stats.rankdata(magnitudes)
        statistic = min(ranks[d[d != 0] > 0].sum(), ranks[d[d != 0] < 0].sum())
        return {**out, "statistic": float(statistic), "p_value": sign_flip_p(d)}
    test = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return {**out, "statistic": float(test.statistic), "p_value": float(test.pvalue)}


def bootstrap_ci(statistic: Callable[[np.ndarray], Optional[float]], n: int, n_resamples: int = N_RESAMPLES,
                 seed: int = 0, level: float = 0.95) -> Dict:
    """Percentile bootstrap CI of `statistic(indices)` over `n` patients resampled with replacement; resamples whose
    statistic is undefined (None) are dropped and counted."""
    out = {"ci_low": None, "ci_high": None, "n_resamples": n_resamples, "n_undefined": 0, "seed": seed}
    if n < 2:
        return out
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, size=n)) for _ in range(n_resamples)]
    defined = np.array([v for v in values if v is not None], float)
    out["n_undefined"] = n_resamples - int(defined.size)
    if defined.size:
        tail = 100 * (1 - level) / 2
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(defined, [tail, 100 - tail]))
    return out


def paired_differences(reference: Sequence[float], candidate: Sequence[float], n_resamples: int = N_RESAMPLES,
                       seed: int = 0) -> Dict:
    """Every paired statistic of candidate - reference: Hodges-Lehmann with its signed-rank CI (the headline),
    median of the differences with its bootstrap CI, Wilcoxon p; the medians per arm as description."""
    a, b = np.asarray(reference, float), np.asarray(candidate, float)
    d = b - a
    return {"n_pairs": int(d.size),
            "median_reference": float(np.median(a)) if d.size else None,
            "median_candidate": float(np.median(b)) if d.size else None,
            "hodges_lehmann": hodges_lehmann_interval(d),
            "median_of_differences": float(np.median(d)) if d.size else None,
            "bootstrap": bootstrap_ci(lambda i: float(np.median(d[i])), int(d.size), n_resamples, seed),
            "wilcoxon": wilcoxon_signed_rank(d)}
