"""Paired comparison of two or more models evaluated on the same patients (`evaluate_folders` results).

Against the first (reference) model, for every other model, over the same patients, per-patient differences
d = candidate - reference (`paired_estimates`):
- Dice (scar and myocardium): the Hodges-Lehmann estimate of the paired differences with its signed-rank 95% CI
  (the headline: the estimate that goes with the Wilcoxon test), the median of the paired differences with a paired
  percentile bootstrap 95% CI, the Wilcoxon signed-rank p, and each model's median Dice as description only (the
  difference of the two medians is not a paired statistic and is not reported). Each in three views of the
  patients (`VIEWS`), because a Dice without reference structure is undefined or degenerate:
  * `reference_present` (primary, pre-specified): patients whose reference has the structure. Dice is an overlap
    of the reference structure and is defined for every such patient whatever the models predict (Reinke et al.
    2024, Nat Methods 21:182, and Maier-Hein et al. 2024, Nat Methods 21:195: an empty reference needs its own
    handling; Seghier 2024, Int J Imaging Syst Technol 34:e23203: Dice over images without a target measures
    detection, not segmentation). Patients without it are judged by the false-positive row below.
  * `both_defined`: patients where both models' Dice is defined (not prediction and reference both empty). Its
    membership depends on what the models predicted (a normal patient enters only when both drew some scar), so it
    is descriptive: the view of the first GPU verdict.
  * `empty_as_agreement`: every patient; empty prediction on an empty reference scores 1 (agreement), a
    non-empty prediction on an empty reference scores 0 (Dice's own value, 2|A and B| / (|A| + |B|) = 0), an
    empty prediction on a non-empty reference 0.
- false-positive scar in reference-normal patients (reference scar 0 mL): per model, the patients with any
  predicted scar (> 0 mL, the patients that `empty_as_agreement` scores 0) and their predicted scar volume (mL);
- the difference in Lin's CCC of scar %LVM (`agreement.concordance`) with a paired percentile bootstrap 95% CI
  (both models evaluated on the same resampled patients), and the Wilcoxon test of the per-patient absolute
  %LVM errors |prediction - expert|.
A patient whose value is undefined for either model (%LVM: no myocardium) is left out of that comparison and
counted (`n_excluded`). Bootstrap resamples whose statistic is undefined (e.g. a constant %LVM series) are dropped
and counted.
"""
import csv
from typing import Dict, List, Optional, Sequence, Set

import numpy as np
import scipy

from nnunetv2_scarnet.evaluation.agreement import concordance
from nnunetv2_scarnet.evaluation.evaluate import EvaluationInputError
from nnunetv2_scarnet.evaluation.paired_estimates import (N_RESAMPLES, bootstrap_ci, paired_differences,
                                                          wilcoxon_signed_rank)

#: the patient sets of a Dice comparison, the primary one first
VIEWS = {
    "reference_present": "patients whose reference has the structure (primary, pre-specified: Dice is defined by "
                         "the reference)",
    "both_defined": "patients where both models' Dice is defined (a normal patient counts only when both models "
                    "drew some of the structure; descriptive)",
    "empty_as_agreement": "every patient; empty prediction on an empty reference scores 1, a non-empty prediction "
                          "on an empty reference 0",
}
PRIMARY_VIEW = "reference_present"
FALSE_POSITIVE_RULE = ("reference-normal patient: reference scar 0 mL; false-positive scar: predicted scar > 0 mL "
                       "(any voxel)")
UNDEFINED_RULE = ("Dice views as listed; %LVM: a patient without myocardium in either model's prediction is left "
                  "out of the CCC comparison and counted in n_excluded")


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


def dice_view_values(ref_cases: Dict, cand_cases: Dict, cases: List[str], structure: str, view: str):
    """(reference model's Dice, candidate's Dice, kept cases, excluded cases) of one view (`VIEWS`)."""
    key = f"dice_{structure}"
    kept, excluded, a, b = [], [], [], []
    for case in cases:
        x, y = ref_cases[case][key], cand_cases[case][key]
        if view == "reference_present":
            keep = ref_cases[case][f"{structure}_ml_reference"] > 0
            if keep and (x is None or y is None):
                raise EvaluationInputError(f"{case}: {structure} Dice undefined although the reference has "
                                           f"{structure} ({ref_cases[case][f'{structure}_ml_reference']} mL)")
        elif view == "both_defined":
            keep = x is not None and y is not None
        elif view == "empty_as_agreement":
            keep, x, y = True, 1.0 if x is None else x, 1.0 if y is None else y
        else:
            raise ValueError(f"unknown view {view!r}; expected one of {list(VIEWS)}")
        (kept if keep else excluded).append(case)
        if keep:
            a.append(x)
            b.append(y)
    return np.array(a, float), np.array(b, float), kept, excluded


def compare_dice(ref_cases: Dict, cand_cases: Dict, cases: List[str], structure: str, n_resamples: int,
                 seed: int) -> Dict:
    """The paired Dice statistics of one structure in every view (`VIEWS`)."""
    views, computed = {}, {}
    for view in VIEWS:
        a, b, kept, excluded = dice_view_values(ref_cases, cand_cases, cases, structure, view)
        key = (a.tobytes(), b.tobytes())  # views holding the same pairs (often all three for myocardium) share them
        if key not in computed:
            computed[key] = paired_differences(a, b, n_resamples, seed)
        views[view] = {**computed[key], "n_excluded": len(excluded), "excluded_cases": excluded,
                       "differences": dict(zip(kept, (b - a).tolist()))}
    return {"primary_view": PRIMARY_VIEW, "views": views}


def false_positive_scar(result_cases: Dict, cases: List[str]) -> Dict:
    """Reference-normal patients with predicted scar (`FALSE_POSITIVE_RULE`): count and mL per patient."""
    normal = [c for c in cases if result_cases[c]["scar_ml_reference"] == 0]
    found = {c: result_cases[c]["scar_ml_prediction"] for c in normal if result_cases[c]["scar_ml_prediction"] > 0}
    return {"n_normal": len(normal), "n_false_positive": len(found), "scar_ml": found,
            "total_ml": float(sum(found.values()))}


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

    ccc_a, ccc_b = concordance(x, ya), concordance(x, yb)
    abs_error_difference = np.abs(yb - x) - np.abs(ya - x)
    return {"n_pairs": len(kept), "n_excluded": len(cases) - len(kept),
            "excluded_cases": sorted(set(cases) - set(kept)),
            "ccc_reference": ccc_a["ccc"], "ccc_candidate": ccc_b["ccc"],
            "ccc_reference_undefined": ccc_a["undefined"], "ccc_candidate_undefined": ccc_b["undefined"],
            "ccc_difference": None if ccc_a["ccc"] is None or ccc_b["ccc"] is None else ccc_b["ccc"] - ccc_a["ccc"],
            "bootstrap": bootstrap_ci(ccc_difference, len(kept), n_resamples, seed),
            "abs_error_wilcoxon": wilcoxon_signed_rank(abs_error_difference),
            "abs_error_differences": dict(zip(kept, abs_error_difference.tolist()))}


def compare_pair(reference: Dict, candidate: Dict, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Dict:
    """Candidate vs reference model over the same patients (see the module docstring)."""
    cases = check_same_cases([reference, candidate])
    a, b = _cases(reference), _cases(candidate)
    return {"reference_model": reference["name"], "model": candidate["name"], "n_cases": len(cases),
            "dice_scar": compare_dice(a, b, cases, "scar", n_resamples, seed),
            "dice_myocardium": compare_dice(a, b, cases, "myocardium", n_resamples, seed),
            "false_positive_scar": {"rule": FALSE_POSITIVE_RULE, "reference_model": false_positive_scar(a, cases),
                                    "model": false_positive_scar(b, cases)},
            "scar_pct_lvm": compare_scar_pct_lvm(a, b, cases, n_resamples, seed)}


def compare_models(results: Sequence[Dict], n_resamples: int = N_RESAMPLES, seed: int = 0) -> Dict:
    """Every model against the first one; refuses results that do not cover the same cases."""
    if len(results) < 2:
        raise ValueError(f"a paired comparison needs at least two models, got {len(results)}")
    cases = check_same_cases(results)
    return {"reference_model": results[0]["name"], "cases": cases, "views": VIEWS, "primary_view": PRIMARY_VIEW,
            "undefined_rule": UNDEFINED_RULE,
            "estimate": "Hodges-Lehmann estimate (median of the Walsh averages) of the per-patient differences, "
                        "95% CI by inverting the two-sided signed-rank test (exact null distribution, achieved "
                        "confidence reported)",
            "wilcoxon": f"two-sided signed-rank test (scipy {scipy.__version__} stats.wilcoxon, method auto), zero "
                        f"differences dropped",
            "bootstrap": f"paired percentile bootstrap, patients resampled with replacement, {n_resamples} "
                         f"resamples, numpy default_rng({seed})",
            "comparisons": [compare_pair(results[0], r, n_resamples, seed) for r in results[1:]]}


def _dice_row(base: Dict, structure: str, view: str, v: Dict) -> Dict:
    hl, boot = v["hodges_lehmann"], v["bootstrap"]
    return {**base, "quantity": f"{structure} Dice", "view": view, "primary": view == PRIMARY_VIEW,
            "n_pairs": v["n_pairs"], "n_excluded": v["n_excluded"], "n_zero_differences": v["wilcoxon"]["n_zero"],
            "value_of": "median Dice per model (description)", "reference_value": v["median_reference"],
            "model_value": v["median_candidate"], "estimate": "Hodges-Lehmann shift of the paired differences",
            "estimate_value": hl["estimate"], "ci_low": hl["ci_low"], "ci_high": hl["ci_high"],
            "ci_method": (f"{hl['method']}, achieved confidence {hl['confidence']:.3f}" if hl["method"]
                          else f"undefined: {hl['ci_undefined']}"),
            "median_of_differences": v["median_of_differences"], "bootstrap_ci_low": boot["ci_low"],
            "bootstrap_ci_high": boot["ci_high"], "wilcoxon_p": v["wilcoxon"]["p_value"],
            "wilcoxon_of": f"per-patient {structure} Dice differences", "detail": ""}


def _ml_list(found: Dict[str, float]) -> str:
    return ", ".join(f"{case} {ml:.2f} mL" for case, ml in found.items()) or "none"


def comparison_table_rows(comparison: Dict) -> List[Dict]:
    """One CSV row per (model, quantity, view): the Dice views, the false-positive row and the CCC row."""
    rows = []
    empty = {"view": "", "primary": "", "n_zero_differences": None, "median_of_differences": None,
             "bootstrap_ci_low": None, "bootstrap_ci_high": None}
    for c in comparison["comparisons"]:
        base = {"model": c["model"], "reference_model": c["reference_model"]}
        for structure in ("scar", "myocardium"):
            for view, v in c[f"dice_{structure}"]["views"].items():
                rows.append(_dice_row(base, structure, view, v))
        fp = c["false_positive_scar"]
        ref_fp, cand_fp = fp["reference_model"], fp["model"]
        rows.append({**base, **empty, "quantity": "false-positive scar in reference-normal patients",
                     "n_pairs": ref_fp["n_normal"], "n_excluded": 0,
                     "value_of": "patients with predicted scar > 0 mL", "reference_value": ref_fp["n_false_positive"],
                     "model_value": cand_fp["n_false_positive"], "estimate": "difference in patients",
                     "estimate_value": cand_fp["n_false_positive"] - ref_fp["n_false_positive"], "ci_low": None,
                     "ci_high": None, "ci_method": "", "wilcoxon_p": None, "wilcoxon_of": "",
                     "detail": f"{c['reference_model']}: {_ml_list(ref_fp['scar_ml'])}; {c['model']}: "
                               f"{_ml_list(cand_fp['scar_ml'])}"})
        s = c["scar_pct_lvm"]
        undefined = "; ".join(f"{name} CCC undefined: {why}" for name, why in
                              ((c["reference_model"], s["ccc_reference_undefined"]),
                               (c["model"], s["ccc_candidate_undefined"])) if why)
        rows.append({**base, **empty, "quantity": "scar %LVM CCC", "n_pairs": s["n_pairs"],
                     "n_excluded": s["n_excluded"], "value_of": "Lin's CCC against the expert",
                     "reference_value": s["ccc_reference"], "model_value": s["ccc_candidate"],
                     "estimate": "CCC difference", "estimate_value": s["ccc_difference"],
                     "ci_low": s["bootstrap"]["ci_low"], "ci_high": s["bootstrap"]["ci_high"],
                     "ci_method": "paired percentile bootstrap", "wilcoxon_p": s["abs_error_wilcoxon"]["p_value"],
                     "wilcoxon_of": "per-patient |scar %LVM - expert|", "detail": undefined})
    return rows


def read_cases_csv(path: str, name: str) -> Dict:
    """An evaluation's per-patient rows (`cases.csv` of `scarnet evaluate`) as a result for `compare_models`:
    numbers as floats, empty cells as None (undefined), True/False as booleans."""
    def value(key: str, text: str):
        if key == "case":
            return text
        if text == "":
            return None
        if text in ("True", "False"):
            return text == "True"
        try:
            return float(text)
        except ValueError:
            return text

    with open(path, newline="") as f:
        rows = [{k: value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
    needed = {"case", "dice_scar", "dice_myocardium", "scar_ml_reference", "scar_ml_prediction",
              "myocardium_ml_reference", "scar_pct_lvm_reference", "scar_pct_lvm_prediction"}
    missing = sorted(needed - set(rows[0] if rows else {}))
    if missing:
        raise EvaluationInputError(f"{path}: not a per-patient evaluation table (columns {missing} missing)")
    return {"name": name, "cases": rows}
