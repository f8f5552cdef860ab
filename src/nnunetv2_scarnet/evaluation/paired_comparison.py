"""Paired comparison of two or more models evaluated on the same patients (`evaluate_folders` results).

Against the first (reference) model, for every other model, over the same patients:
- per-patient differences (candidate - reference) of scar and myocardium Dice, and of the absolute scar %LVM error
  |prediction - expert|, each with the Wilcoxon signed-rank test (two-sided, scipy.stats.wilcoxon, zero differences
  dropped as in Wilcoxon's original method; scipy's automatic choice of the null distribution: exact without ties
  or zeros up to 50 pairs, exact sign-flip permutation with ties up to 13 pairs, normal approximation otherwise;
  the scipy version is recorded);
- the difference in median scar (and myocardium) Dice and the difference in Lin's CCC of scar %LVM
  (`agreement.concordance`), each with a paired percentile bootstrap 95% CI: patients are resampled with
  replacement (numpy default_rng(seed)), and both models are evaluated on the same resampled patients.
Undefined values follow the project's rule: a Dice is undefined (null) when prediction and reference are both empty;
a patient whose value is undefined for either model is left out of that comparison and counted (`n_excluded`).
Bootstrap resamples whose statistic is undefined (e.g. a constant %LVM series) are dropped and counted.
"""
from typing import Callable, Dict, List, Optional, Sequence, Set

import numpy as np
import scipy
from scipy import stats

from nnunetv2_scarnet.evaluation.agreement import concordance
from nnunetv2_scarnet.evaluation.evaluate import EvaluationInputError

N_RESAMPLES = 2000
UNDEFINED_RULE = ("a patient whose value is undefined for either model (Dice: prediction and reference both empty; "
                  "%LVM: no myocardium) is left out of that comparison and counted in n_excluded")


def _cases(result: Dict) -> Dict[str, Dict]:
    return {c["case"]: c for c in result["cases"]}


def case_set_problems(reference: Set[str], others: Dict[str, Set[str]], reference_name: str) -> List[str]:
    """One text per model whose case set differs from the reference's: its missing and its extra cases."""
    problems = []
    for name, cases in others.items():
        missing, extra = sorted(reference - cases), sorted(cases - reference)
        if missing:
            problems.append(f"{name} lacks cases {missing}")
        if extra:
            problems.append(f"{name} has cases {extra} that {reference_name} lacks")
    return problems


def check_same_cases(results: Sequence[Dict]) -> List[str]:
    """The common sorted case list; one error naming every model's missing (and extra) cases otherwise."""
    reference = results[0]
    ref_cases = set(_cases(reference))
    problems = case_set_problems(ref_cases, {r["name"]: set(_cases(r)) for r in results[1:]}, reference["name"])
    if problems:
        raise EvaluationInputError(f"models were not evaluated on the same cases (reference model "
                                   f"{reference['name']}): " + "; ".join(problems))
    return sorted(ref_cases)


def wilcoxon_signed_rank(differences: Sequence[float]) -> Dict:
    """Two-sided Wilcoxon signed-rank test of paired differences; p is null when every difference is 0."""
    d = np.asarray(differences, float)
    nonzero = int(np.count_nonzero(d))
    out = {"n": int(d.size), "n_zero": int(d.size) - nonzero, "statistic": None, "p_value": None}
    if nonzero == 0:
        return out
    test = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return {**out, "statistic": float(test.statistic), "p_value": float(test.pvalue)}


def bootstrap_ci(statistic: Callable[[np.ndarray], Optional[float]], n: int, n_resamples: int = N_RESAMPLES,
                 seed: int = 0, level: float = 0.95) -> Dict:
    """Percentile bootstrap CI of `statistic(indices)` over `n` patients resampled with replacement."""
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


def _pairs(a: Sequence[Optional[float]], b: Sequence[Optional[float]], cases: Sequence[str]):
    keep = [i for i, (x, y) in enumerate(zip(a, b)) if x is not None and y is not None]
    dropped = [c for x, y, c in zip(a, b, cases) if x is None or y is None]
    return (np.array([a[i] for i in keep], float), np.array([b[i] for i in keep], float),
            [cases[i] for i in keep], dropped)


def compare_dice(reference: List, candidate: List, cases: List[str], n_resamples: int, seed: int) -> Dict:
    """Per-patient Dice differences, Wilcoxon p, difference of medians with its paired bootstrap CI."""
    a, b, kept, excluded = _pairs(reference, candidate, cases)
    out = {"n_pairs": len(kept), "n_excluded": len(excluded), "excluded_cases": excluded,
           "median_reference": None, "median_candidate": None, "difference_of_medians": None,
           "median_of_differences": None, "wilcoxon": wilcoxon_signed_rank(b - a),
           "differences": dict(zip(kept, (b - a).tolist()))}
    if kept:
        out.update(median_reference=float(np.median(a)), median_candidate=float(np.median(b)),
                   difference_of_medians=float(np.median(b) - np.median(a)),
                   median_of_differences=float(np.median(b - a)))
    out["bootstrap"] = bootstrap_ci(lambda i: float(np.median(b[i]) - np.median(a[i])), len(kept), n_resamples, seed)
    return out


def compare_scar_pct_lvm(ref_cases: Dict, cand_cases: Dict, cases: List[str], n_resamples: int, seed: int) -> Dict:
    """CCC of each model against the expert, their difference with a paired bootstrap CI; Wilcoxon of |errors|."""
    truth = [ref_cases[c]["scar_pct_lvm_reference"] for c in cases]
    a_pred = [ref_cases[c]["scar_pct_lvm_prediction"] for c in cases]
    b_pred = [cand_cases[c]["scar_pct_lvm_prediction"] for c in cases]
    keep = [i for i in range(len(cases)) if None not in (truth[i], a_pred[i], b_pred[i])]
    x = np.array([truth[i] for i in keep], float)
    ya, yb = np.array([a_pred[i] for i in keep], float), np.array([b_pred[i] for i in keep], float)
    kept = [cases[i] for i in keep]

    def ccc_difference(i: np.ndarray) -> Optional[float]:
        ca, cb = concordance(x[i], ya[i])["ccc"], concordance(x[i], yb[i])["ccc"]
        return None if ca is None or cb is None else cb - ca

    ccc_a, ccc_b = concordance(x, ya)["ccc"], concordance(x, yb)["ccc"]
    abs_error_difference = np.abs(yb - x) - np.abs(ya - x)
    return {"n_pairs": len(kept), "n_excluded": len(cases) - len(kept),
            "excluded_cases": sorted(set(cases) - set(kept)),
            "ccc_reference": ccc_a, "ccc_candidate": ccc_b,
            "ccc_difference": None if ccc_a is None or ccc_b is None else ccc_b - ccc_a,
            "bootstrap": bootstrap_ci(ccc_difference, len(kept), n_resamples, seed),
            "abs_error_wilcoxon": wilcoxon_signed_rank(abs_error_difference),
            "abs_error_differences": dict(zip(kept, abs_error_difference.tolist()))}


def compare_pair(reference: Dict, candidate: Dict, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Dict:
    """Candidate vs reference model over the same patients (see the module docstring)."""
    cases = check_same_cases([reference, candidate])
    a, b = _cases(reference), _cases(candidate)
    return {"reference_model": reference["name"], "model": candidate["name"], "n_cases": len(cases),
            "dice_scar": compare_dice([a[c]["dice_scar"] for c in cases], [b[c]["dice_scar"] for c in cases],
                                      cases, n_resamples, seed),
            "dice_myocardium": compare_dice([a[c]["dice_myocardium"] for c in cases],
                                            [b[c]["dice_myocardium"] for c in cases], cases, n_resamples, seed),
            "scar_pct_lvm": compare_scar_pct_lvm(a, b, cases, n_resamples, seed)}


def compare_models(results: Sequence[Dict], n_resamples: int = N_RESAMPLES, seed: int = 0) -> Dict:
    """Every model against the first one; refuses results that do not cover the same cases."""
    if len(results) < 2:
        raise ValueError(f"a paired comparison needs at least two models, got {len(results)}")
    cases = check_same_cases(results)
    return {"reference_model": results[0]["name"], "cases": cases, "undefined_rule": UNDEFINED_RULE,
            "wilcoxon": f"two-sided signed-rank test (scipy {scipy.__version__} stats.wilcoxon, method auto), zero "
                        f"differences dropped",
            "bootstrap": f"paired percentile bootstrap, patients resampled with replacement, {n_resamples} "
                         f"resamples, numpy default_rng({seed})",
            "comparisons": [compare_pair(results[0], r, n_resamples, seed) for r in results[1:]]}


def comparison_table_rows(comparison: Dict) -> List[Dict]:
    """One CSV row per (model, statistic): values, difference, 95% CI, Wilcoxon p, pairs and exclusions."""
    rows = []
    for c in comparison["comparisons"]:
        base = {"model": c["model"], "reference_model": c["reference_model"]}
        for structure in ("scar", "myocardium"):
            d = c[f"dice_{structure}"]
            rows.append({**base, "statistic": f"median {structure} Dice", "reference_value": d["median_reference"],
                         "model_value": d["median_candidate"], "difference": d["difference_of_medians"],
                         "ci_low": d["bootstrap"]["ci_low"], "ci_high": d["bootstrap"]["ci_high"],
                         "wilcoxon_p": d["wilcoxon"]["p_value"], "wilcoxon_of": f"per-patient {structure} Dice",
                         "n_pairs": d["n_pairs"],
                         "n_excluded": d["n_excluded"]})
        s = c["scar_pct_lvm"]
        rows.append({**base, "statistic": "scar %LVM CCC", "reference_value": s["ccc_reference"],
                     "model_value": s["ccc_candidate"], "difference": s["ccc_difference"],
                     "ci_low": s["bootstrap"]["ci_low"], "ci_high": s["bootstrap"]["ci_high"],
                     "wilcoxon_p": s["abs_error_wilcoxon"]["p_value"],
                     "wilcoxon_of": "per-patient |scar %LVM - expert|", "n_pairs": s["n_pairs"],
                     "n_excluded": s["n_excluded"]})
    return rows
