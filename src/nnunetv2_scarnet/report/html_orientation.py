"""The orientation block of the report page, in a reader's words: where the septum was found and how, which side
is anterior and whether that was assumed, the slice order, and one of three states (docs/report.md, "Orientation"):
ok (green), needs review (orange) and not determined (grey, no AHA segments). The numbers of report.json stay in a
folded "technical details" table."""
import html
from typing import Dict, List, Optional

from nnunetv2_scarnet.quantification.figures import slice_order_known
from nnunetv2_scarnet.quantification.geometry import wrap_deg
from nnunetv2_scarnet.quantification.orientation import (DISPLAY_TOLERANCE_DEG, PAPILLARY_TOLERANCE_DEG,
                                                         clock_hour, second_opinion_gaps)
from nnunetv2_scarnet.report.figures import FIRST_SLICE_NUMBER
from nnunetv2_scarnet.report.qc import orientation_review, orientation_state

#: the box of each state (style sheet classes) and its headline
STATE_BOX = {"ok": "ok", "needs review": "flag", "not determined": "stop"}
HEADLINE = {"ok": "Orientation OK: AHA segments and territories reported",
            "needs review": "Orientation NEEDS REVIEW: AHA segments reported, check them before use",
            "not determined": "Orientation NOT DETERMINED: no AHA segments or territories"}
#: how the septum was found, by `orientation.sources.septum`
SEPTUM_HOW = {"geometry": "from the scanner's patient orientation (the right ventricle lies right-anterior of the "
                          "LV)",
              "geometry+image": "from the scanner's patient orientation, refined by the right-ventricular blood pool "
                                "seen in the images",
              "image": "from the right-ventricular blood pool seen in the images (the file carries no patient "
                       "orientation)",
              "user": "given by the user (--septum-deg)"}
ORDER_HOW = {"user": "given by the user", "geometry": "from the scanner's patient orientation",
             "geometry (labels agree)": "from the scanner's patient orientation; the LV size along the stack agrees",
             "labels": "from the LV getting smaller towards the apex"}


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def clock_text(hour: Optional[float]) -> str:
    """'9 o'clock', '8:30' for half hours (the report's clock hours are rounded to half an hour)."""
    if hour is None:
        return "n/a"
    whole = int(hour) if int(hour) else 12
    return f"{whole} o'clock" if hour == int(hour) else f"{whole}:30"


def _septum_text(o: Dict) -> str:
    source = (o.get("sources") or {}).get("septum")
    if o.get("septum_deg") is None:
        return "not found: no confident right ventricle in the images and no patient orientation in the file"
    hour = o.get("septum_clock_hour") or clock_hour(o["septum_deg"])
    side = " (the viewer's left, as in the standard short-axis display)" if abs(hour - 9.0) <= 1.0 else ""
    return f"at {clock_text(hour)} in the slice pictures{side}, {SEPTUM_HOW.get(source, f'source {source}')}"


def _per_slice_text(o: Dict) -> str:
    entries = list((o.get("slices") or {}).values())
    if not entries:
        return "no slice has its own septum (the case's septum is used, or none)"
    own = sum(str(e.get("septum_source", "")).startswith("slice") for e in entries)
    if not own:
        return f"every slice ({len(entries)}) uses the case's septum"
    return (f"on {own} of {len(entries)} slices the septum is the slice's own, midway between its RV insertion "
            f"points (blue dots); the others use the case's septum")


def second_opinion_text(o: Dict) -> Optional[str]:
    """For a septum found in the images alone: which independent cue confirmed it (orientation.py's second opinion:
    the septum opposite the papillary muscles, or the standard short-axis display, each within half a segment), or
    that none did. None for a septum from the file's geometry or the user, which need no second opinion."""
    if (o.get("sources") or {}).get("septum") != "image" or o.get("septum_deg") is None:
        return None
    papillary = o.get("papillary_septum_deg")
    display_gap, papillary_gap = second_opinion_gaps(o["septum_deg"], papillary)
    if papillary_gap is None:
        muscles = "the papillary muscles could not be measured"
    else:
        muscles = (f"the septum opposite the papillary muscles is at {clock_text(clock_hour(papillary))}, "
                   f"{papillary_gap:.0f} degrees away")
    if papillary_gap is not None and papillary_gap <= PAPILLARY_TOLERANCE_DEG:
        return f"confirmed by the papillary muscles: {muscles} (within {PAPILLARY_TOLERANCE_DEG:.0f})"
    if display_gap <= DISPLAY_TOLERANCE_DEG:
        return (f"consistent with the standard short-axis display (septum on the viewer's left, {display_gap:.0f} "
                f"degrees away, within {DISPLAY_TOLERANCE_DEG:.0f}); {muscles}")
    return (f"none: {display_gap:.0f} degrees from the standard display's septum and {muscles} (each must be within "
            f"{PAPILLARY_TOLERANCE_DEG:.0f} to confirm it)")


def _anterior_text(o: Dict) -> str:
    handedness, direction, septum = o.get("handedness"), o.get("direction"), o.get("septum_deg")
    if handedness is None:  # a report.json written before `handedness` existed
        handedness = {"user": "user", "geometry": "from geometry"}.get((o.get("sources") or {}).get("handedness"))
    if direction is None or septum is None:
        return "not determined"
    where = f"anterior wall at {clock_text(clock_hour(wrap_deg(septum - 90.0 * direction)))}"
    if handedness == "from geometry":
        return f"{where}, from the scanner's patient orientation"
    if handedness == "user":
        return f"{where}, given by the user (--direction)"
    return (f"{where}: ASSUMED (the file carries no patient orientation); check that the wall labelled "
            f"'anterior' on the slices is the anterior wall")


def _order_text(o: Dict) -> str:
    apex_first = o.get("apex_first")
    source = (o.get("sources") or {}).get("slice_order")
    confidence = (o.get("confidences") or {}).get("slice_order")
    if apex_first is None:
        return "not determined"
    text = f"slice {FIRST_SLICE_NUMBER} is the {'apex' if apex_first else 'base'}"
    if not slice_order_known(o):
        return (f"not determined: the LV size along the stack does not tell it (Spearman "
                f"{confidence or 0.0:.2f}; inconclusive vote: {text})")
    how = ORDER_HOW.get(source, f"source {source}")
    if source == "labels":
        how += f" (Spearman {confidence or 0.0:.2f})"
    return f"{text}, {how}"


def _items(values: List[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(v)}</li>" for v in values) + "</ul>"


def _technical(o: Dict, status: str) -> str:
    """report.json's numbers, folded: source, confidences, angles in the module convention, status."""
    sources, confidences = o.get("sources") or {}, o.get("confidences") or {}

    def num(value):
        return "n/a" if value is None else f"{value:.2f}"
    rows = [("state", o.get("state")), ("source, confidence", f"{o.get('source')}, {num(o.get('confidence'))}"),
            ("septum_deg (0 = right of the pictures, 90 = down)",
             "n/a" if o.get("septum_deg") is None else f"{o['septum_deg']:.1f}"),
            ("direction (+1: anterior -> septum -> inferior with increasing angle)", o.get("direction")),
            ("papillary_septum_deg (septum opposite the papillary muscles)",
             "n/a" if o.get("papillary_septum_deg") is None else f"{o['papillary_septum_deg']:.1f}"),
            ("apex_first", o.get("apex_first")), ("aha_status", status)]
    rows += [(f"{part} decided by", f"{sources[part]} (confidence {num(confidences.get(part))})") for part in sources]
    return ("<details><summary>Technical details (report.json)</summary><table id='orientation-details'>" +
            "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table></details>")


def orientation_section(quantification: Dict) -> str:
    """The orientation block: a headline with its state, then the septum, per-slice septum, anterior side and
    slice order in words, the review reasons, assumptions and warnings, and the technical details folded."""
    o = quantification.get("orientation")
    state = orientation_state(quantification)
    if not o:
        return (f"<div class='stop' id='orientation'><b>{_e(HEADLINE['not determined'])}</b>: no orientation in the "
                "quantification; AHA segments, territories and the septum line are not shown.</div>")
    status = quantification.get("aha_status", o.get("aha_status")) or ""
    rows = [("Septum", _septum_text(o))]
    second_opinion = second_opinion_text(o)
    if second_opinion is not None:
        rows.append(("Second opinion on the septum", second_opinion))
    rows += [("Septum per slice", _per_slice_text(o)), ("Anterior side", _anterior_text(o)),
             ("Slice order", _order_text(o))]
    parts = [f"<div class='{STATE_BOX[state]}' id='orientation'><b>{_e(HEADLINE[state])}</b>",
             "<table id='orientation-summary'>" +
             "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"]
    if state != "ok":
        what = "Why it needs review" if state == "needs review" else "Not determined"
        parts.append(f"<b>{what}:</b>" + _items(orientation_review(quantification)))
    if o.get("assumptions"):
        parts.append("<b>Assumed (stated, not flagged):</b>" + _items(o["assumptions"]))
    warnings = [w for w in o.get("warnings") or [] if w not in (o.get("review_reasons") or [])]
    if warnings:
        parts.append("<b>Warnings:</b><ul id='orientation-warnings'>" +
                     "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>")
    if state != "not determined":
        parts.append("<div class='note'>Check on every slice below: the blue line points to the interventricular "
                     "septum, the blue dots sit where the right-ventricular wall joins the LV, and the white lines "
                     "split the wall into the numbered AHA segments.</div>")
    parts.append(_technical(o, status) + "</div>")
    return "".join(parts)


def orientation_caveat(quantification: Dict, what: str) -> str:
    """An orange caveat above `what` (the segment table, the territories) when the orientation needs review."""
    if orientation_state(quantification) != "needs review":
        return ""
    reasons = "; ".join(orientation_review(quantification))
    return (f"<div class='flag caveat'><b>Orientation needs review</b>: {_e(what)} rest on an orientation to be "
            f"checked ({_e(reasons)}). Check the segment borders on every slice before using them.</div>")
