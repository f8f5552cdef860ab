"""The cohort summary: one self-contained HTML page (styles inline, histograms as base64 PNG, no network).

Sections: counts (orientation states and studies without any flag included); distributions of scar %LVM, scar mL
and LV mass (myocardium g) over the reported studies; QC-flag counts, each with links to the reports of the studies
flagged; the studies whose orientation needs review or is not determined, with links and reasons; failures grouped
by reason (the error with its paths replaced by `<path>`, so one cause over many studies is one group); the model
identity of the parts. A study whose orientation is not ok is never counted as "without a flag" (issue 23).
"""
import datetime
import io
import re
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nnunetv2_scarnet.report.html import STYLE, _e, _table, image_tag  # noqa: E402
from nnunetv2_scarnet.report.qc import STATES  # noqa: E402

#: (cohort.csv column, axis label) of the distributions shown
DISTRIBUTIONS = (("scar_pct_lvm", "scar % of LV myocardial mass"), ("scar_ml", "scar volume (mL)"),
                 ("myocardium_g", "LV myocardial mass (g)"))
PATH = re.compile(r"(?:[A-Za-z]:)?[^\s:;,()'\"]*[/\\][^\s:;,()'\"]*")


def failure_reason(error: str) -> str:
    """The error of a failure row with its paths replaced by `<path>` (the grouping key)."""
    return PATH.sub("<path>", error or "unknown error").strip()


def histogram_png(values: Sequence[float], label: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4.2, 3.0), dpi=100)
    ax.hist(values, bins=min(20, max(5, len(values) // 3)), color="#3a6ea5", edgecolor="white")
    ax.set_xlabel(label)
    ax.set_ylabel("studies")
    ax.set_title(f"{label}\n(n = {len(values)})", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _grouped_table(key: str, last: str, groups: Dict[str, List[Dict]], cell) -> str:
    """One row per group, largest first: the key, how many studies, and `cell(studies)` (already HTML)."""
    rows = [f"<table><tr><th>{key}</th><th>studies</th><th>{last}</th></tr>"]
    for name, studies in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        rows.append(f"<tr><td>{_e(name)}</td><td class='num'>{len(studies)}</td><td>{cell(studies)}</td></tr>")
    return "".join(rows) + "</table>"


def _link(row: Dict, title: str = "") -> str:
    href = row.get("report_html") or ""
    hover = f" title='{_e(title)}'" if title else ""
    return f"<a href='{_e(href)}'{hover}>{_e(row['study'])}</a>" if href else _e(row["study"])


def render_summary(rows: List[Dict], model: Dict, parts: Sequence[str]) -> str:
    """The summary page of merged cohort rows (`report_html` relative to the page)."""
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    states: Dict[str, List[Dict]] = {}
    for row in ok:
        states.setdefault(row.get("orientation_state") or "not recorded", []).append(row)
    clean = [r for r in ok if not r.get("qc_flags") and not r.get("review")]
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>LGE scar cohort summary</title>",
           f"<style>{STYLE}</style></head><body><h1>LGE scar cohort summary</h1>",
           f"<p class='note'>Merged {datetime.datetime.now().isoformat(timespec='seconds')} from {len(parts)} "
           f"part(s): {_e(', '.join(parts))}</p>",
           _table([["studies", len(rows)], ["reported", len(ok)], ["failed", len(failed)],
                   *[[f"orientation {state}", len(states.get(state, []))] for state in STATES],
                   ["reported without any QC flag or orientation review", len(clean)]], table_id="counts"),
           "<h2>Distributions</h2><div class='row figs'>"]
    for column, label in DISTRIBUTIONS:
        values = [v for v in (_number(r.get(column)) for r in ok) if v == v]
        out.append(f"<figure>{image_tag(histogram_png(values, label), label)}</figure>" if values else
                   f"<p class='note'>{_e(label)}: no values</p>")
    out.append("</div><h2>QC flags</h2>")
    flagged: Dict[str, List[Dict]] = {}
    for row in ok:
        for code in (row.get("qc_flags") or "").split():
            flagged.setdefault(code, []).append(row)
    if flagged:
        out.append(_grouped_table("flag", "reports", flagged, lambda studies: ", ".join(_link(r) for r in studies)))
    else:
        out.append("<p class='ok'>No QC flag in any reported study.</p>")
    out.append(f"<p class='note'>{len(clean)} reported studies without a flag (orientation ok).</p>")
    out.append("<h2>Orientation</h2>")
    review = {state: states[state] for state in states if state != "ok"}
    if review:
        out.append(_grouped_table("orientation", "reports (reason on hover)", review,
                                  lambda studies: ", ".join(_link(r, r.get("review")) for r in studies)))
    else:
        out.append("<p class='ok'>Orientation ok in every reported study.</p>")
    out.append("<h2>Failures</h2>")
    groups: Dict[str, List[Dict]] = {}
    for row in failed:
        groups.setdefault(failure_reason(row.get("error") or ""), []).append(row)
    if groups:
        out.append(_grouped_table("reason", "which", groups,
                                  lambda studies: _e(", ".join(r["study"] for r in studies))))
    else:
        out.append("<p class='ok'>No study failed.</p>")
    out.append("<h2>Model</h2>")
    out.append(_table([[k, ", ".join(map(str, v)) if isinstance(v, list) else v] for k, v in model.items()]))
    out.append(f"<p class='note'>Per-study reports: {len(ok)} links above and in cohort.csv "
               f"(column report_html, relative to this page).</p></body></html>")
    return "".join(out)
