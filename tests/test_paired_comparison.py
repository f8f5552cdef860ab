"""Paired statistics of two models on the same patients, checked against hand-worked examples, scipy on data the
tests write, brute-force enumeration, Monte Carlo coverage and a hand-written bootstrap."""
import csv
import itertools
import os

import numpy as np
import pytest
from scipy import stats

from nnunetv2_scarnet.evaluation.evaluate import EvaluationInputError
from nnunetv2_scarnet.evaluation.paired_comparison import compare_models, comparison_table_rows
from nnunetv2_scarnet.evaluation.paired_estimates import (bootstrap_ci, hodges_lehmann, hodges_lehmann_interval,
                                                          signed_rank_null_cdf, wilcoxon_signed_rank)

RESULTS = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "results")


def result(name, dice_scar, pct_pred, pct_ref, dice_myo=None, scar_ml_ref=None, scar_ml_pred=None):
    """An evaluation result written by hand; reference scar present unless `scar_ml_ref` says 0 mL."""
    cases = []
    for k, (d, p, r) in enumerate(zip(dice_scar, pct_pred, pct_ref)):
        cases.append({"case": f"Case_{k:03d}", "dice_scar": d, "dice_myocardium": (dice_myo or dice_scar)[k],
                      "scar_pct_lvm_prediction": p, "scar_pct_lvm_reference": r,
                      "scar_ml_reference": 5.0 if scar_ml_ref is None else scar_ml_ref[k],
                      "scar_ml_prediction": 4.0 if scar_ml_pred is None else scar_ml_pred[k],
                      "myocardium_ml_reference": 100.0})
    return {"name": name, "cases": cases}


def lin_ccc(x, y):
    """Lin (1989), moments divided by n: textbook formula, written out here."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    sxy = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_hodges_lehmann_by_hand():
    # d = 0, 1, 5. Walsh averages (d_i + d_j) / 2, i <= j:
    #   (0+0)/2 = 0, (0+1)/2 = 0.5, (0+5)/2 = 2.5, (1+1)/2 = 1, (1+5)/2 = 3, (5+5)/2 = 5
    #   sorted 0, 0.5, 1, 2.5, 3, 5 -> median (1 + 2.5) / 2 = 1.75 (the median of d is 1)
    assert hodges_lehmann([0, 1, 5]) == pytest.approx(1.75)
    # d = -2, 1, 3, 10. Walsh averages: -2, -0.5, 0.5, 4 | 1, 2, 5.5 | 3, 6.5 | 10
    #   sorted -2, -0.5, 0.5, 1, 2, 3, 4, 5.5, 6.5, 10 -> median (2 + 3) / 2 = 2.5 (the median of d is 2)
    assert hodges_lehmann([10, -2, 3, 1]) == pytest.approx(2.5)
    assert hodges_lehmann([]) is None


def test_signed_rank_interval_by_hand():
    # n = 6: T+ (sum of the ranks with a + sign) takes each of the 2^6 = 64 sign patterns with probability 1/64;
    # T+ = 0 only for {}, T+ = 1 only for {1}, T+ = 2 only for {2}, T+ = 3 for {3} and {1, 2}.
    # P(T+ <= 0) = 1/64 = 0.016, P(T+ <= 1) = 2/64 = 0.031, P(T+ <= 2) = 3/64 = 0.047, P(T+ <= 3) = 5/64 = 0.078.
    # 95%: the largest C with P(T+ <= C - 1) <= 0.025 is C = 1, confidence 1 - 2/64;
    # 90%: the largest C with P(T+ <= C - 1) <= 0.05 is C = 3, confidence 1 - 6/64.
    # d = -1, 1, 2, 4, 5, 9: the 21 Walsh averages, sorted:
    #   -1, 0, 0.5, 1, 1.5, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4, 4, 4.5, 5, 5, 5.5, 6.5, 7, 9
    #   (from -1: -1, 0, 0.5, 1.5, 2, 4; from 1: 1, 1.5, 2.5, 3, 5; from 2: 2, 3, 3.5, 5.5; from 4: 4, 4.5, 6.5;
    #    from 5: 5, 7; from 9: 9). Median (11th) 3; interval [W_(C), W_(22 - C)].
    d = [-1, 1, 2, 4, 5, 9]
    ci95 = hodges_lehmann_interval(d, 0.95)
    assert ci95["estimate"] == pytest.approx(3.0)
    assert (ci95["ci_low"], ci95["ci_high"]) == (-1.0, 9.0) and ci95["confidence"] == pytest.approx(62 / 64)
    ci90 = hodges_lehmann_interval(d, 0.90)
    assert (ci90["ci_low"], ci90["ci_high"]) == (0.5, 6.5) and ci90["confidence"] == pytest.approx(58 / 64)
    # 5 pairs: P(T+ <= 0) = 1/32 > 0.025, so even [min, max] is only a 93.75% interval: undefined, with the reason
    five = hodges_lehmann_interval([1, 2, 3, 4, 5])
    assert five["estimate"] == 3.0 and five["ci_low"] is None and "0.938 < 0.95" in five["ci_undefined"]


def test_signed_rank_null_distribution_matches_brute_force_enumeration():
    for n in range(1, 11):
        counts = np.zeros(n * (n + 1) // 2 + 1)
        for signs in itertools.product((0, 1), repeat=n):
            counts[sum(r for r, s in zip(range(1, n + 1), signs) if s)] += 1
        assert signed_rank_null_cdf(n) == pytest.approx(np.cumsum(counts) / 2 ** n)


def test_interval_is_the_set_of_shifts_scipy_wilcoxon_does_not_reject():
    rng = np.random.default_rng(11)
    for n in (8, 12, 20):
        d = rng.normal(0.1, 0.3, n)
        ci = hodges_lehmann_interval(d)
        eps = 1e-9
        for theta, rejected in ((ci["ci_low"] - eps, True), (ci["ci_low"] + eps, False),
                                (ci["ci_high"] - eps, False), (ci["ci_high"] + eps, True)):
            p = stats.wilcoxon(d - theta, method="exact").pvalue
            assert (p <= 0.05) == rejected, (n, theta, p)
        assert 1 - ci["confidence"] == pytest.approx(stats.wilcoxon(d - (ci["ci_low"] - eps), method="exact").pvalue)


def test_interval_coverage_on_a_known_symmetric_distribution():
    # differences from a Laplace distribution centred on 0.2 (symmetric: its pseudo-median is 0.2): the exact
    # signed-rank interval covers 0.2 with its achieved confidence (10 pairs: 1 - 2 * 25/1024 = 0.951)
    rng = np.random.default_rng(5)
    trials = 3000
    covered = 0
    for _ in range(trials):
        ci = hodges_lehmann_interval(rng.laplace(0.2, 0.3, 10))
        covered += ci["ci_low"] <= 0.2 <= ci["ci_high"]
    assert ci["confidence"] == pytest.approx(1 - 2 * 25 / 1024)
    assert abs(covered / trials - ci["confidence"]) < 0.015  # 3.8 binomial standard errors


def test_wilcoxon_exact_p_of_five_positive_differences():
    # all 5 ranks positive: W- = 0 has probability 1/2^5 under H0, two-sided p = 2/32 (exact null distribution)
    out = wilcoxon_signed_rank([0.1, 0.2, 0.3, 0.4, 0.5])
    assert out["p_value"] == pytest.approx(2 / 32)
    # zero differences are dropped: the same test on the 5 non-zero ones
    assert wilcoxon_signed_rank([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])["p_value"] == pytest.approx(2 / 32)
    assert wilcoxon_signed_rank([0.0, 0.0])["p_value"] is None


def test_wilcoxon_with_ties_and_zeros_matches_scipys_permutation_test():
    # differences on a coarse grid: tied |d| and zeros, where scipy (method auto) runs its sign-flip permutation test
    rng = np.random.default_rng(2)
    for _ in range(15):
        d = rng.integers(-3, 4, int(rng.integers(2, 10))) / 4
        if not d.any():
            continue
        ours, scipys = wilcoxon_signed_rank(d), stats.wilcoxon(d)
        assert ours["p_value"] == pytest.approx(scipys.pvalue) and ours["statistic"] == scipys.statistic, d


def test_three_views_and_false_positive_scar_on_a_hand_built_table():
    # patients 0-2 have reference scar; 3-5 are normal (reference scar 0 mL):
    #   3: neither model draws scar (Dice undefined for both), 4: only the candidate draws some (Dice None vs 0),
    #   5: both draw some (Dice 0 vs 0)
    a = [0.5, 0.4, 0.3, None, None, 0.0]
    b = [0.6, 0.6, 0.7, None, 0.0, 0.0]
    ml_ref = [5.0, 5.0, 5.0, 0.0, 0.0, 0.0]
    pred_a, pred_b = [4.0, 4.0, 4.0, 0.0, 0.0, 0.3], [4.0, 4.0, 4.0, 0.0, 0.2, 0.1]
    pct = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0]
    myo = [0.8] * 6
    out = compare_models([result("stock", a, pct, pct, myo, scar_ml_ref=ml_ref, scar_ml_pred=pred_a),
                          result("hybrid", b, pct, pct, myo, scar_ml_ref=ml_ref, scar_ml_pred=pred_b)],
                         n_resamples=200)["comparisons"][0]
    views = out["dice_scar"]["views"]
    assert out["dice_scar"]["primary_view"] == "reference_present"
    # reference scar: d = 0.1, 0.2, 0.4; Walsh 0.1, 0.15, 0.25, 0.2, 0.3, 0.4 -> median (0.2 + 0.25) / 2 = 0.225
    present = views["reference_present"]
    assert present["n_pairs"] == 3 and present["excluded_cases"] == ["Case_003", "Case_004", "Case_005"]
    assert present["hodges_lehmann"]["estimate"] == pytest.approx(0.225)
    assert present["median_of_differences"] == pytest.approx(0.2)
    assert present["hodges_lehmann"]["ci_low"] is None  # 3 pairs: no 95% signed-rank interval
    # both defined: patient 5 joins with d = 0; Walsh of 0, 0.1, 0.2, 0.4:
    #   0, 0.05, 0.1, 0.2 | 0.1, 0.15, 0.25 | 0.2, 0.3 | 0.4 -> sorted 0, 0.05, 0.1, 0.1, 0.15, 0.2, 0.2, 0.25,
    #   0.3, 0.4 -> median (0.15 + 0.2) / 2 = 0.175
    both = views["both_defined"]
    assert both["n_pairs"] == 4 and both["excluded_cases"] == ["Case_003", "Case_004"]
    assert both["hodges_lehmann"]["estimate"] == pytest.approx(0.175)
    assert both["median_of_differences"] == pytest.approx(0.15)
    # every patient, empty vs empty = 1: patient 3 d = 1 - 1 = 0, patient 4 d = 0 - 1 = -1, patient 5 d = 0.
    #   d = -1, 0, 0, 0.1, 0.2, 0.4; Walsh: -1, -0.5, -0.5, -0.45, -0.4, -0.3 | 0, 0, 0.05, 0.1, 0.2 |
    #   0, 0.05, 0.1, 0.2 | 0.1, 0.15, 0.25 | 0.2, 0.3 | 0.4 -> 11th of 21 sorted: 0.05
    every = views["empty_as_agreement"]
    assert every["n_pairs"] == 6 and every["n_excluded"] == 0
    assert every["differences"]["Case_003"] == 0.0 and every["differences"]["Case_004"] == -1.0
    assert every["hodges_lehmann"]["estimate"] == pytest.approx(0.05)
    assert every["median_reference"] == pytest.approx(np.median([0.5, 0.4, 0.3, 1.0, 1.0, 0.0]))
    for view, d in (("reference_present", [0.1, 0.2, 0.4]), ("both_defined", [0.1, 0.2, 0.4, 0.0]),
                    ("empty_as_agreement", [0.1, 0.2, 0.4, 0.0, -1.0, 0.0])):
        assert views[view]["wilcoxon"]["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    # false-positive scar of the normal patients: stock in patient 5 (0.3 mL), hybrid in 4 and 5
    fp = out["false_positive_scar"]
    assert fp["reference_model"]["n_normal"] == 3 and fp["reference_model"]["scar_ml"] == {"Case_005": 0.3}
    assert fp["model"]["n_false_positive"] == 2 and fp["model"]["total_ml"] == pytest.approx(0.3)
    rows = comparison_table_rows({"comparisons": [out]})
    fp_row = [r for r in rows if r["quantity"].startswith("false-positive")][0]
    assert (fp_row["reference_value"], fp_row["model_value"], fp_row["n_pairs"]) == (1, 2, 3)
    assert "Case_004 0.20 mL" in fp_row["detail"]
    primary = [r for r in rows if r["primary"] is True and r["quantity"] == "scar Dice"]
    assert len(primary) == 1 and primary[0]["estimate_value"] == pytest.approx(0.225)


def test_dice_comparison_against_scipy_on_data_the_test_writes():
    a = [0.50, 0.60, 0.35, 0.30, 0.80, 0.55, 0.20, 0.70, 0.45, 0.62]
    b = [0.62, 0.58, 0.52, 0.45, 0.81, 0.71, 0.42, 0.67, 0.66, 0.66]  # no tied |differences|
    pct = [1.0, 2.0, 4.0, 3.0, 5.0, 6.0, 2.5, 1.5, 3.5, 4.5]
    out = compare_models([result("stock", a, pct, pct), result("hybrid", b, pct, pct)], n_resamples=300)
    view = out["comparisons"][0]["dice_scar"]["views"]["reference_present"]
    d = np.array(b) - np.array(a)
    assert view["n_pairs"] == 10
    assert view["wilcoxon"]["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert view["median_of_differences"] == pytest.approx(np.median(d))
    # Hodges-Lehmann: the median of all pairwise means, written out as a double loop
    walsh = [(d[i] + d[j]) / 2 for i in range(10) for j in range(i, 10)]
    assert view["hodges_lehmann"]["estimate"] == pytest.approx(np.median(walsh))


def test_bootstrap_matches_a_hand_written_percentile_bootstrap():
    rng = np.random.default_rng(7)
    a = rng.uniform(0.2, 0.8, 15)
    b = a + rng.normal(0.05, 0.05, 15)
    truth = rng.uniform(0, 30, 15)
    pa, pb = truth + rng.normal(2, 4, 15), truth + rng.normal(0, 2, 15)
    out = compare_models([result("A", list(a), list(pa), list(truth)), result("B", list(b), list(pb), list(truth))],
                         n_resamples=400, seed=3)["comparisons"][0]
    # re-derivation: resample patients with replacement, same draw for both models, percentile interval
    draw = np.random.default_rng(3)
    medians = []
    for _ in range(400):
        i = draw.integers(0, 15, size=15)
        medians.append(np.median(b[i] - a[i]))
    boot = out["dice_scar"]["views"]["reference_present"]["bootstrap"]
    assert (boot["ci_low"], boot["ci_high"]) == pytest.approx(tuple(np.percentile(medians, [2.5, 97.5])))
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


def test_first_gpu_verdict_recomputed_from_its_raw_per_patient_files(tmp_path, capsys):
    """The figures of the independent audit (issue 21) from the raw per-patient CSVs of 2026-11-27: median of the
    paired differences +0.068 with bootstrap CI [0.000, 0.153] over the 10 pairs of the first verdict, 0.000 (p 0.43)
    with empty-vs-empty as agreement, +0.088 (p 0.11) over the 8 patients with scar; false-positive scar in 3 of 5
    normals for the hybrid, 2 of 5 for stock."""
    from nnunetv2_scarnet.benchmark.budget_table import main

    stock, hybrid = (os.path.join(RESULTS, f"gpu_equal_budget_2026-11-27_cases_{t}.csv")
                     for t in ("nnUNetTrainer", "ScarNetTrainerLiteHybrid"))
    assert main(["--cases", f"stock={stock}", "--cases", f"hybrid={hybrid}", "--csv", str(tmp_path / "p.csv")]) == 0
    table = capsys.readouterr().out
    rows = {(r["quantity"], r["view"]): r for r in csv.DictReader(open(tmp_path / "p.csv"))}
    old = rows[("scar Dice", "both_defined")]
    assert (old["n_pairs"], old["n_excluded"]) == ("10", "3")
    assert float(old["median_of_differences"]) == pytest.approx(0.068, abs=5e-4)
    assert float(old["bootstrap_ci_low"]) == pytest.approx(0.0, abs=5e-4)
    assert float(old["bootstrap_ci_high"]) == pytest.approx(0.153, abs=5e-4)
    every = rows[("scar Dice", "empty_as_agreement")]
    assert every["n_pairs"] == "13" and float(every["median_of_differences"]) == 0.0
    assert float(every["wilcoxon_p"]) == pytest.approx(0.43, abs=5e-3)
    scar = rows[("scar Dice", "reference_present")]
    assert scar["n_pairs"] == "8" and scar["primary"] == "True"
    assert float(scar["median_of_differences"]) == pytest.approx(0.088, abs=5e-4)
    assert float(scar["wilcoxon_p"]) == pytest.approx(0.11, abs=5e-3)
    fp = rows[("false-positive scar in reference-normal patients", "")]
    assert (fp["reference_value"], fp["model_value"], fp["n_pairs"]) == ("2", "3", "5")
    assert "| stock | 2 of 5 |" in table and "| hybrid | 3 of 5 |" in table
    assert "**patients with reference scar (primary)**" in table


def test_models_on_different_cases_are_refused_naming_the_missing_cases():
    a = result("stock", [0.5, 0.6, 0.7], [1, 2, 3], [1, 2, 3])
    b = result("hybrid", [0.5, 0.6], [1, 2], [1, 2])
    c = result("lite", [0.5, 0.6, 0.7], [1, 2, 3], [1, 2, 3])
    c["cases"][2]["case"] = "Case_999"
    with pytest.raises(EvaluationInputError, match=r"hybrid lacks cases \['Case_002'\].*lite lacks cases "
                                                   r"\['Case_002'\].*lite has cases \['Case_999'\]"):
        compare_models([a, b, c])
