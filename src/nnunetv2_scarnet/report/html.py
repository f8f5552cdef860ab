"""One self-contained HTML file per patient: styles inline, pictures as base64 PNG data URIs, no script, no network.

The page shows what the quantification's report.json holds (orientation, volumes, AHA segments with typical
territories and Kim et al. transmurality categories) and says so when something was not determined or not assessed.
It opens with a banner of every QC flag (an orientation that needs review is one), ends with the reader's sign-off,
and prints on A4 without splitting a table (html_style.py). Slices
are numbered from 1 (report.json and the CSVs keep the array index, from 0). Each slice picture enlarges when
clicked (a hidden checkbox and a CSS rule; no script).
"""
import base64
import datetime
import html
import re
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_scarnet.quantification import palette
from nnunetv2_scarnet.quantification.transmurality import CATEGORIES
from nnunetv2_scarnet.report.figures import FIRST_SLICE_NUMBER
from nnunetv2_scarnet.report.html_acquisition import (LV_MASS_CAVEAT, acquisition_rows, mvo_cells,  # noqa: F401
                                                      scar_method, volumes_rows)
from nnunetv2_scarnet.report.html_orientation import orientation_caveat, orientation_section  # noqa: F401
from nnunetv2_scarnet.report.html_style import SLICE_WIDTH_PX, STYLE  # noqa: F401
from nnunetv2_scarnet.report.qc import member_agreement_text, orientation_state, with_orientation_flags

#: a number, possibly with a unit or "a / b / c": right-aligned in tables
NUMBER = re.compile(r"^-?\d[\d.]*( ?(mL|g|s|deg)| %)?( / -?\d[\d.]*)*$|^n/a$")
#: coronary territories in the order of Cerqueira et al. 2002
TERRITORIES = ("LAD", "RCA", "LCx")
#: the AHA statement's caveat on its territories (Cerqueira et al. 2002; docs/report.md, "Territories")
TERRITORY_CAVEAT = (
    "Typical territory of each segment as assigned by the AHA statement (Cerqueira et al. 2002: LAD 1, 2, 7, 8, 13, "
    "14, 17; RCA 3, 4, 9, 10, 15; LCx 5, 6, 11, 12, 16), which stresses the large variability of the coronary blood "
    "supply: the apical segments and the apex can be supplied by any artery; a wrap-around LAD supplies the apical "
    "inferior wall (15) and the apex; the inferoseptal segments (3, 9) take septal branches of the LAD as well as "
    "the posterior descending artery; with a left-dominant circulation the LCx supplies the inferior wall (4, 10). "
    "A territory here is not the culprit artery: correlate with the angiogram.")

def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _num(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(fraction: Optional[float]) -> str:
    return "n/a" if fraction is None else f"{100.0 * fraction:.0f} %"


def _slice_numbers(indices) -> str:
    return ", ".join(str(int(k) + FIRST_SLICE_NUMBER) for k in indices)


def _table(rows: Sequence[Sequence], header: Optional[Sequence[str]] = None, table_id: str = "") -> str:
    out = [f"<table id='{table_id}'>" if table_id else "<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td class='num'>{_e(c)}</td>" if NUMBER.match(str(c))
                                    else f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def image_tag(png: bytes, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def _bullseye(caption: str, png: bytes) -> str:
    return f"<figure class='bullseye'>{image_tag(png, caption)}<figcaption class='note'>{_e(caption)}</figcaption>" \
           f"</figure>"


def _slice_figure(index: int, caption: str, png: bytes) -> str:
    """A slice picture that enlarges when clicked (checkbox + label, no script) and shrinks when clicked again."""
    box = f"zoom{index}"
    return (f"<figure class='slice'><input type='checkbox' class='zoom' id='{box}'>"
            f"<label for='{box}' title='click to enlarge'>{image_tag(png, caption)}</label>"
            f"<figcaption class='note'>{_e(caption)}</figcaption></figure>")


def _identifier_table(identifiers: Dict[str, str]) -> str:
    """Identifiers two per row, so that the figures start high on the page; long UIDs wrap."""
    items = list(identifiers.items())
    rows = []
    for i in range(0, len(items), 2):
        pair = items[i:i + 2]
        rows.append("<tr>" + "".join(f"<th>{_e(k)}</th><td>{_e(v)}</td>" for k, v in pair) + "</tr>")
    return "<table id='identifiers'>" + "".join(rows) + "</table>"


def territory_rows(aha: List[Dict], summary: Dict) -> List[List[str]]:
    """Per coronary territory: its segments, those with scar and those report.json counts as > 50 % transmural
    (Kim 51-100 %)."""
    ge50 = set(summary.get("segments_transmurality_ge_50", []))
    rows = []
    for territory in TERRITORIES:
        segments = [r for r in aha if r.get("territory") == territory]
        myo = sum(r.get("myocardium_ml") or 0.0 for r in segments)
        scar = sum(r.get("scar_ml") or 0.0 for r in segments)
        rows.append([territory, ", ".join(str(r["segment"]) for r in segments),
                     ", ".join(str(r["segment"]) for r in segments if (r.get("scar_px") or 0) > 0) or "none",
                     ", ".join(str(r["segment"]) for r in segments if r["segment"] in ge50) or "none",
                     f"{_num(scar, 2)} mL", _num(100.0 * scar / myo if myo else None) + " %"])
    return rows


def transmurality_section(quantification: Dict) -> str:
    """Typical territories with the AHA statement's caveat, Kim et al. categories and the > 50 % transmural count
    (Kim 51-100 %), or why they are missing; an orange caveat first when the orientation needs review."""
    aha, summary = quantification.get("aha"), quantification.get("aha_summary") or {}
    if not aha:
        return ("<div class='stop' id='territories'>No AHA segments, hence no territories or transmurality "
                f"categories: {_e(quantification.get('aha_status') or 'no AHA table in the quantification')}. "
                "The transmurality bullseye shows sectors per slice instead.</div>")
    ge50 = summary.get("segments_transmurality_ge_50", [])
    territories = summary.get("territories_transmurality_ge_50", [])
    count = (f"<p id='ge50'><b>Segments with mean transmurality &gt; 50 % (Kim 51-100 %): "
             f"{_e(summary.get('n_segments_transmurality_ge_50'))}</b> of {_e(summary.get('n_segments_measured'))} "
             f"measured (segments {_e(', '.join(str(s) for s in ge50) or 'none')}; their typical territories: "
             f"{_e(', '.join(territories) or 'none')}).</p>")
    per_category = summary.get("segments_per_category") or {}
    names = [name for _, name in CATEGORIES] + [c for c in per_category if c not in [n for _, n in CATEGORIES]]
    kim = _table([[name, str(per_category.get(name, 0))] for name in names],
                 ["Kim category (mean transmurality)", "segments"], "kim-categories")
    territory = _table(territory_rows(aha, summary),
                       ["typical territory", "segments", "with scar", "mean transmurality > 50 %", "scar",
                        "scar % of territory myocardium"], "territories")
    return (orientation_caveat(quantification, "the segments and their territories") + count +
            f"<p class='note' id='territory-caveat'>{_e(TERRITORY_CAVEAT)}</p><div class='row'>" + territory + kim +
            "</div><p class='note'>Categories: Kim et al. 2000 (0, 1-25, 26-50, 51-75, 76-100 % of the wall "
            "thickness, mean over the segment's centerline chords).</p>")


def segment_rows(quantification: Dict) -> Tuple[List[str], List[List[str]]]:
    """AHA segments when present (status 'check orientation' while the orientation needs review), else one row per
    slice."""
    if quantification.get("aha"):
        review = orientation_state(quantification) == "needs review"
        header = ["segment", "name", "typical territory", "slices", "scar extent %", "mean transmurality",
                  "max transmurality", "Kim category", "status"]
        rows = [[str(r.get("segment")), r.get("name", ""), r.get("territory", ""),
                 _slice_numbers(str(r.get("slices") or "").split()) or "none", _num(r.get("scar_extent_pct")),
                 _pct(r.get("transmurality_mean")), _pct(r.get("transmurality_max")),
                 r.get("transmurality_category") or "n/a",
                 "check orientation" if review and r.get("status") == "ok" else r.get("status", "")]
                for r in quantification["aha"]]
        return header, rows
    header = ["slice", "myocardium mL", "scar mL", "scar % of this slice's myocardium",
              "scar % of LV myocardium (slice's share)", "status"]
    rows = [[str(int(r.get("slice")) + FIRST_SLICE_NUMBER), _num(r.get("myocardium_ml"), 2),
             _num(r.get("scar_ml"), 2), _num(r.get("scar_pct_slice_myocardium")),
             _num(r.get("scar_share_pct_lvm")), r.get("status", "")]
            for r in quantification.get("slices", [])]
    return header, rows


def banner(flags: List[Dict]) -> str:
    """The first box of the page: orange with every QC flag's title (orientation first) when any is raised,
    else green."""
    if not flags:
        return ("<div class='ok' id='banner'><b>No QC flag raised</b>; orientation OK. The reader still reviews "
                "every slice and signs at the end of the report.</div>")
    n = len(flags)
    return (f"<div class='flag' id='banner'><b>Review before signing: {n} QC flag{'s' if n != 1 else ''}</b>"
            "<ul>" + "".join(f"<li>{_e(f['title'])}</li>" for f in flags) + "</ul>"
            "<span class='note'>Details under QC flags below.</span></div>")


def _flags_html(flags: List[Dict]) -> List[str]:
    if not flags:
        return ["<div class='ok'>No QC flag raised.</div>"]
    out = []
    for f in flags:
        slices = f" Slices: {_slice_numbers(f['slices'])}." if f.get("slices") else ""
        out.append(f"<div class='flag'><b>{_e(f['title'])}</b> <code>{_e(f['code'])}</code><br>"
                   f"{_e(f['detail'])}.{_e(slices)}</div>")
    return out


def _model_rows(model: Dict) -> List[Tuple[str, str]]:
    rows = [(k, model.get(k)) for k in ("trainer", "plans", "configuration", "dataset", "model_folder",
                                        "checkpoint", "device", "members")]
    rows += [("folds", ", ".join(str(f) for f in model.get("folds", []))),
             ("mirroring", ", ".join(str(a) for a in model.get("mirroring_axes", [])) or "off"),
             ("labels", ", ".join(f"{k}={v}" for k, v in model.get("labels", {}).items()))]
    return rows + [(f"version {k}", v) for k, v in model.get("versions", {}).items()]


BULLSEYE_NOTE = ("Bullseyes (AHA layout, Cerqueira et al. 2002: basal ring outside, anterior up, septum left): scar "
                 "extent colours each segment by the % of its myocardium that is scar; transmurality colours it by "
                 "the Kim et al. (2000) category of its mean transmurality. Each segment shows its number and, below "
                 "it, that %. Grey hatched: not measured (segment 17, the apical cap, has no wall-thickness chords).")
SECTOR_NOTE = ("Without AHA segments (orientation not determined) the transmurality bullseye shows one ring per slice "
               "of sectors, drawn where they lie in the slice pictures (not an anatomical orientation), coloured by "
               "the Kim et al. (2000) category of their mean transmurality, with the mean in %.")
SLICE_LEGEND = (f"Contours: myocardium {palette.NAMES[palette.MYOCARDIUM]}, scar {palette.NAMES[palette.SCAR]}, "
                f"MVO {palette.NAMES[palette.MVO]} (Okabe-Ito colours, distinguishable with colour-vision "
                "deficiency). Blue line: the septum this slice's segments use; blue dots: the RV insertion points it "
                "lies between (open circles: found but not used); white lines: borders between the AHA segments, "
                "numbered; anterior / septal / inferior / lateral: the walls. Click a slice to enlarge it, click "
                "again to close.")
SIGN_OFF = ("<div id='signoff' class='keep'><h2>Reader sign-off</h2><p class='note'>I reviewed the QC flags, the "
            "orientation and every slice of this automatic report.</p><table><tr><th>Reviewed by (name)</th><td></td>"
            "</tr><tr><th>Signature</th><td></td></tr><tr><th>Date</th><td></td></tr><tr><th>Corrections</th><td>"
            "</td></tr></table></div>")


def render_report(patient_name: str, identifiers: Dict[str, str], source: str, quantification: Dict,
                  flags: List[Dict], bullseyes: List[Tuple[str, bytes]], overlays: List[Tuple[str, bytes]],
                  model: Dict, prediction_qc: Dict, outputs: List[str]) -> str:
    """The whole report as one HTML string: the flag banner, identifiers, QC flags, orientation, volumes next to
    the bullseyes, acquisition and coverage, every slice (`overlays`: one (caption, PNG) per slice), territories
    and transmurality, segments, confidence, model identity and the reader's sign-off. The orientation's QC flag
    is added to `flags` when missing, so an orientation that needs review never reads as 'no flag'."""
    p = quantification.get("patient", {})
    flags = with_orientation_flags(flags, quantification)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>LGE scar report - {_e(patient_name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>LGE scar report: {_e(identifiers.get('PatientName', patient_name))}</h1>",
             "<p class='note'>Automatic segmentation and quantification for review by a reader; "
             "not a diagnosis. Check the QC flags, the orientation and every slice below.</p>", banner(flags),
             "<h2>Patient and series</h2>", _identifier_table(identifiers),
             f"<p class='note'>Source: {_e(source)}</p>", "<h2>QC flags</h2>"]
    parts += _flags_html(flags)
    parts += ["<p class='note'>Flags are explained in the package's docs/report.md. Slices are numbered from "
              f"{FIRST_SLICE_NUMBER} in stack order (report.json and the CSVs: array index from 0).</p>",
              "<h2>Orientation</h2>", orientation_section(quantification),
              "<h2>Volumes and bullseyes</h2><div class='row'><div class='volumes'>",
              _table(volumes_rows(p), ["", "volume", "mass (1.05 g/mL)"], "volumes"),
              f"<p class='note' id='mass-caveat'>{_e(LV_MASS_CAVEAT)}</p></div>"]
    parts += [_bullseye(caption, png) for caption, png in bullseyes]
    parts += ["</div>", f"<p class='note'>{_e(BULLSEYE_NOTE if quantification.get('aha') else SECTOR_NOTE)}</p>",
              "<h2>Acquisition, LV coverage and method</h2>",
              _table(acquisition_rows(quantification, identifiers), table_id="acquisition"),
              f"<p id='scar-method'><b>Scar method:</b> {_e(scar_method(model))}</p>",
              f"<h2>Every slice</h2><p class='note'>{_e(SLICE_LEGEND)}</p><div class='slices'>"]
    parts += [_slice_figure(i, caption, png) for i, (caption, png) in enumerate(overlays)]
    parts += ["</div>", "<h2>Territories and transmurality</h2>", transmurality_section(quantification)]
    header, rows = segment_rows(quantification)
    parts += ["<h2>Segments</h2>" + orientation_caveat(quantification, "the segment values")
              if quantification.get("aha") else "<h2>Slices</h2>", _table(rows, header, "segments")]
    conf = prediction_qc.get("confidence", {})
    dice, members = prediction_qc.get("member_dice", {}), prediction_qc.get("members", [])
    qc_rows = [("Mean max probability in myocardium", _num(conf.get("myocardium"), 3)),
               ("Mean max probability in scar", _num(conf.get("scar"), 3)),
               ("Ensemble members", str(len(members))),
               ("Lowest member Dice vs ensemble, myocardium", member_agreement_text(dice, members, "myocardium")),
               ("Lowest member Dice vs ensemble, scar", member_agreement_text(dice, members, "scar"))]
    parts += ["<h2>Prediction confidence</h2>", _table(qc_rows, table_id="confidence"),
              "<h2>Model</h2>", _table(_model_rows(model), table_id="model"),
              "<h2>Files</h2><ul>" + "".join(f"<li><code>{_e(o)}</code></li>" for o in outputs) + "</ul>",
              SIGN_OFF,
              f"<p class='note'>Generated {_e(datetime.datetime.now().isoformat(timespec='seconds'))} by "
              f"scarnet report.</p></body></html>"]
    return "\n".join(parts)
