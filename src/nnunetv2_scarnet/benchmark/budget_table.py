"""The equal-budget result table (Markdown): per-trainer accuracy, then the paired statistics against the first."""
from typing import Dict, List, Optional

from nnunetv2_scarnet.benchmark.budget_schedule import COMPILE_RULE, TIMING_RULE


def _number(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p(test: Dict) -> str:
    p = test["p_value"]
    return "n/a" if p is None else (f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}")


def _signed(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _interval(low: Optional[float], high: Optional[float], why: Optional[str] = None) -> str:
    if low is None:
        return f"[CI undefined: {why}]" if why else "[CI n/a]"
    return f"[{low:+.3f} to {high:+.3f}]"


def _hodges_lehmann(view: Dict) -> str:
    hl = view["hodges_lehmann"]
    text = f"{_signed(hl['estimate'])} {_interval(hl['ci_low'], hl['ci_high'], hl['ci_undefined'])}"
    return text + (f" ({100 * hl['confidence']:.1f}%)" if hl["confidence"] is not None else "")


def _median_of_differences(view: Dict) -> str:
    boot = view["bootstrap"]
    return f"{_signed(view['median_of_differences'])} {_interval(boot['ci_low'], boot['ci_high'])}"


def schedule_text(row: Dict) -> str:
    """'E x I' when every epoch had I iterations, else 'K x I + E x J' (or 'K x I + E x J1-J2'): the K leading
    epochs of the first count, then the later epochs' counts, refitted to the time left."""
    counts = row.get("epoch_iterations")
    if not counts:  # rows recorded before the per-epoch counts were
        first, later = row.get("iterations_first_two_epochs", row["iterations_per_epoch"]), row["iterations_per_epoch"]
        counts = [first] * min(2, row["epochs"]) + [later] * max(0, row["epochs"] - 2)
    lead = next((i for i, c in enumerate(counts) if c != counts[0]), len(counts))
    if lead == len(counts):
        return f"{len(counts)} x {counts[0]}"
    rest = counts[lead:]
    later = str(rest[0]) if len(set(rest)) == 1 else f"{min(rest)}-{max(rest)}"
    return f"{lead} x {counts[0]} + {len(rest)} x {later}"


def accuracy_lines(rows: List[Dict]) -> List[str]:
    from nnunetv2_scarnet.evaluation.agreement import format_agreement
    from nnunetv2_scarnet.evaluation.overlap import format_median_iqr

    def fmt(stat):
        return format_median_iqr(stat) or "n/a"

    lines = ["| trainer | epochs x iterations (batch) | first / second epoch s | train s | myocardium Dice | "
             "scar Dice | scar %LVM bias | scar %LVM CCC [95% CI] |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["evaluation"]
        ccc = format_agreement(s["scar_pct_lvm"]["concordance"], "ccc")
        epochs = r.get("epoch_seconds") or []
        pace = " / ".join(f"{t:.1f}" for t in epochs[:2]) or "n/a"
        lines.append(f"| {r['trainer']} | {schedule_text(r)} ({r['batch_size']}) | {pace} | "
                     f"{r['training_seconds']:.0f} | {fmt(s['dice_myocardium_patient'])} | "
                     f"{fmt(s['dice_scar_patient'])} | {_number(s['scar_pct_lvm']['bland_altman']['bias'], 2)} | "
                     f"{ccc} |")
    return lines


VIEW_TITLES = {"reference_present": "patients with reference scar (primary)",
               "both_defined": "both Dice defined (descriptive)",
               "empty_as_agreement": "all patients, empty-vs-empty = 1"}


def paired_lines(comparison: Dict) -> List[str]:
    """The paired statistics against the first trainer: the headline (Hodges-Lehmann shift of scar Dice in the
    primary view), the three views of scar Dice, false-positive scar in normal patients, myocardium and %LVM."""
    comparisons = comparison["comparisons"]
    if not comparisons:
        return []
    reference = comparison["reference_model"]
    lines = [f"Paired against {reference} on the same {comparisons[0]['n_cases']} validation patients "
             f"(difference = trainer - {reference} per patient). Estimate: {comparison['estimate']}. Median of the "
             f"paired differences with a {comparison['bootstrap']}. Wilcoxon: {comparison['wilcoxon']}. Per-arm "
             f"medians are description only (their difference is not a paired statistic).", "",
             "Scar Dice, three views of the patients (the primary view pre-specified: Dice is defined by the "
             "reference's scar; the normal patients are judged by the false-positive row below):", "",
             "| trainer | patients | pairs (excluded) | Hodges-Lehmann shift [95% CI] (achieved level) | "
             "median of paired differences [95% bootstrap CI] | Wilcoxon p (non-zero pairs) | "
             f"median Dice {reference} / trainer |", "|---|---|---|---|---|---|---|"]
    for c in comparisons:
        for view, title in VIEW_TITLES.items():
            v = c["dice_scar"]["views"][view]
            nonzero = v["wilcoxon"]["n"] - v["wilcoxon"]["n_zero"]
            name = f"**{title}**" if view == comparison.get("primary_view", "reference_present") else title
            lines.append(f"| {c['model']} | {name} | {v['n_pairs']} ({v['n_excluded']}) | {_hodges_lehmann(v)} | "
                         f"{_median_of_differences(v)} | {_p(v['wilcoxon'])} ({nonzero}) | "
                         f"{_number(v['median_reference'])} / {_number(v['median_candidate'])} |")
    lines += ["", "False-positive scar in reference-normal patients (" + comparisons[0]["false_positive_scar"]["rule"]
              + "):", "", "| trainer | normal patients with predicted scar | predicted scar per patient |",
              "|---|---|---|"]
    fp = comparisons[0]["false_positive_scar"]["reference_model"]
    rows = [(reference, fp)] + [(c["model"], c["false_positive_scar"]["model"]) for c in comparisons]
    for name, found in rows:
        ml = ", ".join(f"{case} {value:.2f} mL" for case, value in found["scar_ml"].items()) or "none"
        lines.append(f"| {name} | {found['n_false_positive']} of {found['n_normal']} | {ml} |")
    lines += ["", "| trainer | myocardium Dice: Hodges-Lehmann shift [95% CI] | Wilcoxon p (non-zero pairs) | "
              "scar %LVM CCC difference [95% bootstrap CI] | Wilcoxon p of abs. %LVM error (pairs) |",
              "|---|---|---|---|---|"]
    for c in comparisons:
        myo, pct = c["dice_myocardium"]["views"]["reference_present"], c["scar_pct_lvm"]
        myo_nonzero = myo["wilcoxon"]["n"] - myo["wilcoxon"]["n_zero"]
        ccc = (f"{_signed(pct['ccc_difference'])} {_interval(pct['bootstrap']['ci_low'], pct['bootstrap']['ci_high'])}"
               if pct["ccc_difference"] is not None else
               f"undefined ({pct['ccc_reference_undefined'] or pct['ccc_candidate_undefined']})")
        lines.append(f"| {c['model']} | {_hodges_lehmann(myo)} | {_p(myo['wilcoxon'])} ({myo_nonzero}) | {ccc} | "
                     f"{_p(pct['abs_error_wilcoxon'])} ({pct['n_pairs']}) |")
    return lines


def markdown(rows: List[Dict], comparison: Optional[Dict], budget_s: float, fold: int) -> str:
    """Both tables, headed by the budget, the compile setting and the timing rule."""
    lines = [f"Budget {budget_s:.0f} s of training per trainer, fold {fold}. Compile: {COMPILE_RULE}. "
             f"Timing: {TIMING_RULE}.", ""] + accuracy_lines(rows)
    if comparison:
        lines += [""] + paired_lines(comparison)
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Recompute the paired statistics of a finished run from its per-patient tables (`cases.csv` of each
    trainer's evaluation, e.g. docs/results/gpu_equal_budget_<date>_cases_<trainer>.csv): prints the Markdown,
    writes the CSV rows with --csv."""
    import argparse

    from nnunetv2_scarnet.evaluation.paired_comparison import compare_models, comparison_table_rows, read_cases_csv
    from nnunetv2_scarnet.evaluation.paired_estimates import N_RESAMPLES
    from nnunetv2_scarnet.quantification.report import write_csv

    parser = argparse.ArgumentParser(prog="python -m nnunetv2_scarnet.benchmark.budget_table",
                                     description=main.__doc__)
    parser.add_argument("--cases", action="append", required=True, metavar="TRAINER=CASES_CSV",
                        help="per-patient evaluation rows of one trainer (repeat; the first is the reference)")
    parser.add_argument("--bootstrap", type=int, default=N_RESAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", help="write the paired-statistics rows here")
    args = parser.parse_args(argv)
    results = []
    for item in args.cases:
        name, _, path = item.partition("=")
        if not path:
            parser.error(f"--cases expects TRAINER=CASES_CSV, got {item!r}")
        results.append(read_cases_csv(path, name))
    comparison = compare_models(results, n_resamples=args.bootstrap, seed=args.seed)
    if args.csv:
        write_csv(args.csv, comparison_table_rows(comparison))
    print("\n".join(paired_lines(comparison)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
