"""Paired statistics of two models on the same patients, checked against independent computations."""
import numpy as np
import pytest
from scipy import stats

from nnunetv2_scarnet.evaluation.evaluate import EvaluationInputError
from nnunetv2_scarnet.evaluation.paired_comparison import (bootstrap_ci, compare_models, comparison_table_rows,
                                                           wilcoxon_signed_rank)


def result(name, dice_scar, pct_pred, pct_ref, dice_myo=None):
    cases = []
    for k, (d, p, r) in enumerate(zip(dice_scar, pct_pred, pct_ref)):
        cases.append({"case": f"Case_{k:03d}", "dice_scar": d, "dice_myocardium": (dice_myo or dice_scar)[k],
                      "scar_pct_lvm_prediction": p, "scar_pct_lvm_reference": r})
    return {"name": name, "cases": cases}


def lin_ccc(x, y):
    """Lin (1989), moments divided by n: textbook formula, written out here."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    sxy = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_wilcoxon_exact_p_of_five_positive_differences():
    # all 5 ranks positive: W- = 0 has probability 1/2^5 under H0, two-sided p = 2/32 (exact null distribution)
    out = wilcoxon_signed_rank([0.1, 0.2, 0.3, 0.4, 0.5])
    assert out["p_value"] == pytest.approx(2 / 32)
    # zero differences are dropped: the same test on the 5 non-zero ones
    assert wilcoxon_signed_rank([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])["p_value"] == pytest.approx(2 / 32)
    assert wilcoxon_signed_rank([0.0, 0.0])["p_value"] is None


def test_dice_comparison_against_scipy_and_undefined_dice_excluded():
    a = [0.50, 0.60, None, 0.30, 0.80, 0.55, 0.20, 0.70]
    b = [0.62, 0.58, 0.0, 0.45, 0.81, 0.71, 0.42, 0.69]  # case 2: reference model's Dice undefined -> excluded
    pct = [1.0] * 8
    out = compare_models([result("stock", a, pct, pct), result("hybrid", b, pct, pct)], n_resamples=500)
    d = out["comparisons"][0]["dice_scar"]
    assert d["n_pairs"] == 7 and d["n_excluded"] == 1 and d["excluded_cases"] == ["Case_002"]
    aa = np.array([v for v in a if v is not None])
    bb = np.array([v for i, v in enumerate(b) if a[i] is not None])
    assert d["wilcoxon"]["p_value"] == pytest.approx(stats.wilcoxon(bb - aa).pvalue)
    assert d["difference_of_medians"] == pytest.approx(np.median(bb) - np.median(aa))
    rows = comparison_table_rows(out)
    assert [r["statistic"] for r in rows] == ["median scar Dice", "median myocardium Dice", "scar %LVM CCC"]
    assert rows[0]["n_excluded"] == 1 and rows[0]["wilcoxon_p"] == d["wilcoxon"]["p_value"]


def test_bootstrap_matches_a_seeded_numpy_rederivation():
    rng = np.random.default_rng(7)
    a = rng.uniform(0.2, 0.8, 15)
    b = a + rng.normal(0.05, 0.05, 15)
    truth = rng.uniform(0, 30, 15)
    pa, pb = truth + rng.normal(2, 4, 15), truth + rng.normal(0, 2, 15)
    out = compare_models([result("A", list(a), list(pa), list(truth)), result("B", list(b), list(pb), list(truth))],
                         n_resamples=400, seed=3)["comparisons"][0]
    # re-derivation: resample patients with replacement, same draw for both models, percentile interval
    draw = np.random.default_rng(3)
    diffs = []
    for _ in range(400):
        i = draw.integers(0, 15, size=15)
        diffs.append(np.median(b[i]) - np.median(a[i]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert out["dice_scar"]["bootstrap"]["ci_low"] == pytest.approx(low)
    assert out["dice_scar"]["bootstrap"]["ci_high"] == pytest.approx(high)
    draw = np.random.default_rng(3)
    cccs = []
    for _ in range(400):
        i = draw.integers(0, 15, size=15)
        cccs.append(lin_ccc(truth[i], pb[i]) - lin_ccc(truth[i], pa[i]))
    s = out["scar_pct_lvm"]
    assert s["ccc_difference"] == pytest.approx(lin_ccc(truth, pb) - lin_ccc(truth, pa))
    assert (s["bootstrap"]["ci_low"], s["bootstrap"]["ci_high"]) == pytest.approx(tuple(np.percentile(cccs,
                                                                                                        [2.5, 97.5])))
    errors = np.abs(pb - truth) - np.abs(pa - truth)
    assert s["abs_error_wilcoxon"]["p_value"] == pytest.approx(stats.wilcoxon(errors).pvalue)


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_more_patients():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 40, 160):
        d = rng.normal(0.1, 0.2, n)
        ci = bootstrap_ci(lambda i: float(np.median(d[i])), n, n_resamples=1000, seed=1)
        assert ci["ci_low"] <= np.median(d) <= ci["ci_high"]
        widths.append(ci["ci_high"] - ci["ci_low"])
    assert widths[0] > widths[1] > widths[2]
    # ~1/sqrt(n): 16x the patients, about a quarter of the width
    assert 0.1 < widths[2] / widths[0] < 0.5
    assert bootstrap_ci(lambda i: 1.0, 1)["ci_low"] is None  # one patient: no interval


def test_models_on_different_cases_are_refused_naming_the_missing_cases():
    a = result("stock", [0.5, 0.6, 0.7], [1, 2, 3], [1, 2, 3])
    b = result("hybrid", [0.5, 0.6], [1, 2], [1, 2])
    c = result("lite", [0.5, 0.6, 0.7], [1, 2, 3], [1, 2, 3])
    c["cases"][2]["case"] = "Case_999"
    with pytest.raises(EvaluationInputError, match=r"hybrid lacks cases \['Case_002'\].*lite lacks cases "
                                                   r"\['Case_002'\].*lite has cases \['Case_999'\]"):
        compare_models([a, b, c])
