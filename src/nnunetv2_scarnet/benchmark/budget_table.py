"""The equal-budget result table (Markdown): per-trainer accuracy, then the paired statistics against the first."""
from typing import Dict, List, Optional

from nnunetv2_scarnet.benchmark.budget_schedule import COMPILE_RULE, TIMING_RULE


def _number(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _with_ci(value: Optional[float], bootstrap: Dict) -> str:
    text = _number(value)
    if bootstrap.get("ci_low") is not None:
        text += f" [{bootstrap['ci_low']:.3f} to {bootstrap['ci_high']:.3f}]"
    return text


def _p(test: Dict) -> str:
    p = test["p_value"]
    return "n/a" if p is None else (f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}")


def schedule_text(row: Dict) -> str:
    """'E x I' when every epoch had I iterations, else '2 x I + E x J' (or '2 x I + E x J1-J2' when the later
    epochs' counts were refitted to the time left)."""
    counts = row.get("epoch_iterations")
    if not counts:  # rows recorded before the per-epoch counts were
        first, later = row.get("iterations_first_two_epochs", row["iterations_per_epoch"]), row["iterations_per_epoch"]
        counts = [first] * min(2, row["epochs"]) + [later] * max(0, row["epochs"] - 2)
    if len(set(counts)) == 1:
        return f"{len(counts)} x {counts[0]}"
    rest = counts[2:]
    later = str(rest[0]) if len(set(rest)) == 1 else f"{min(rest)}-{max(rest)}"
    return f"2 x {counts[0]} + {len(rest)} x {later}"


def accuracy_lines(rows: List[Dict]) -> List[str]:
    from nnunetv2_scarnet.evaluation.overlap import format_median_iqr

    def fmt(stat):
        return format_median_iqr(stat) or "n/a"

    lines = ["| trainer | epochs x iterations (batch) | first / second epoch s | train s | myocardium Dice | "
             "scar Dice | scar %LVM bias | scar %LVM CCC [95% CI] |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["evaluation"]
        c = s["scar_pct_lvm"]["concordance"]
        ccc = _number(c["ccc"])
        if c.get("ci_low") is not None:
            ccc += f" [{c['ci_low']:.2f}-{c['ci_high']:.2f}]"
        epochs = r.get("epoch_seconds") or []
        pace = " / ".join(f"{t:.1f}" for t in epochs[:2]) or "n/a"
        lines.append(f"| {r['trainer']} | {schedule_text(r)} ({r['batch_size']}) | {pace} | "
                     f"{r['training_seconds']:.0f} | {fmt(s['dice_myocardium_patient'])} | "
                     f"{fmt(s['dice_scar_patient'])} | {_number(s['scar_pct_lvm']['bland_altman']['bias'], 2)} | "
                     f"{ccc} |")
    return lines


def paired_lines(comparison: Dict) -> List[str]:
    first = comparison["comparisons"][0] if comparison["comparisons"] else None
    if first is None:
        return []
    lines = [f"Paired against {comparison['reference_model']} on the same {first['n_cases']} validation patients "
             f"(difference = trainer - {comparison['reference_model']}; {comparison['bootstrap']}; Wilcoxon: "
             f"{comparison['wilcoxon']}; {comparison['undefined_rule']}):", "",
             "| trainer | scar Dice: difference of medians [95% CI] | Wilcoxon p (pairs, excluded) | "
             "myocardium Dice: difference of medians [95% CI] | Wilcoxon p | scar %LVM CCC difference [95% CI] | "
             "Wilcoxon p of abs. %LVM error (pairs) |", "|---|---|---|---|---|---|---|"]
    for c in comparison["comparisons"]:
        scar, myo, pct = c["dice_scar"], c["dice_myocardium"], c["scar_pct_lvm"]
        lines.append(f"| {c['model']} | {_with_ci(scar['difference_of_medians'], scar['bootstrap'])} | "
                     f"{_p(scar['wilcoxon'])} ({scar['n_pairs']}, {scar['n_excluded']}) | "
                     f"{_with_ci(myo['difference_of_medians'], myo['bootstrap'])} | {_p(myo['wilcoxon'])} | "
                     f"{_with_ci(pct['ccc_difference'], pct['bootstrap'])} | {_p(pct['abs_error_wilcoxon'])} "
                     f"({pct['n_pairs']}) |")
    return lines


def markdown(rows: List[Dict], comparison: Optional[Dict], budget_s: float, fold: int) -> str:
    """Both tables, headed by the budget, the compile setting and the timing rule."""
    lines = [f"Budget {budget_s:.0f} s of training per trainer, fold {fold}. Compile: {COMPILE_RULE}. "
             f"Timing: {TIMING_RULE}.", ""] + accuracy_lines(rows)
    if comparison:
        lines += [""] + paired_lines(comparison)
    return "\n".join(lines)
