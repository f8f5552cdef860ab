"""One self-contained HTML file per patient: styles inline, pictures as base64 PNG data URIs, no script, no network.

The page shows what the quantification's report.json holds (orientation, volumes, AHA segments with territories
and Kim et al. transmurality categories) and says so when something was not determined or not assessed. Slices
are numbered from 1 (report.json and the CSVs keep the array index, from 0). Each slice picture enlarges when
clicked (a hidden checkbox and a CSS rule; no script).
"""
import base64
import datetime
import html
import re
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_scarnet.quantification.figures import slice_order_known
from nnunetv2_scarnet.quantification.transmurality import CATEGORIES
from nnunetv2_scarnet.report.figures import FIRST_SLICE_NUMBER
from nnunetv2_scarnet.report.qc import member_agreement_text

#: a number, possibly with a unit or "a / b / c": right-aligned in tables
NUMBER = re.compile(r"^-?\d[\d.]*( ?(mL|g|s|deg)| %)?( / -?\d[\d.]*)*$|^n/a$")
#: coronary territories in the order of Cerqueira et al. 2002
TERRITORIES = ("LAD", "RCA", "LCx")
#: displayed width of a slice picture (CSS px); the PNG has more pixels for the enlarged view
SLICE_WIDTH_PX = 264

STYLE = f"""
body{{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1150px}}
h1{{font-size:22px;margin-bottom:4px;overflow-wrap:anywhere}}
h2{{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:26px}}
table{{border-collapse:collapse;margin:6px 0;font-size:13px;max-width:100%}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;overflow-wrap:anywhere;word-break:break-word}}
th{{background:#f0f0f0}}th,td:first-child{{overflow-wrap:normal;word-break:normal}}td.num{{text-align:right;white-space:nowrap}}.note{{color:#555;font-size:12px}}
code,p,li,div{{overflow-wrap:anywhere}}
.flag{{background:#fff4e5;border-left:5px solid #e67e00;padding:6px 10px;margin:6px 0}}
.ok{{background:#eef8ee;border-left:5px solid #2e8b2e;padding:6px 10px;margin:6px 0}}
figure{{margin:0}}figcaption{{overflow-wrap:anywhere}}
.row{{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}}
.bullseye{{width:340px;max-width:100%}}
.bullseye img{{box-sizing:border-box;width:100%;height:auto;border:1px solid #ddd}}
.slices{{display:grid;grid-template-columns:repeat(auto-fill,minmax({SLICE_WIDTH_PX}px,1fr));gap:10px}}
.slices img{{box-sizing:border-box;width:100%;min-width:{SLICE_WIDTH_PX}px;height:auto;
border:1px solid #ddd;cursor:zoom-in;display:block}}
.zoom{{display:none}}
.zoom:checked+label{{position:fixed;top:0;left:0;right:0;bottom:0;z-index:9;background:rgba(0,0,0,.9);
display:flex;align-items:center;justify-content:center;cursor:zoom-out}}
.zoom:checked+label img{{width:auto;min-width:0;height:auto;max-width:96vw;max-height:96vh;cursor:zoom-out}}
"""


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


def mvo_cells(patient: Dict) -> Tuple[str, str]:
    """(volume, mass) of MVO, or 'not assessed' with the reason when the labels do not carry MVO."""
    status = str(patient.get("mvo_status") or "")
    mvo = patient.get("mvo_ml")
    if mvo is None or status.startswith("not_assessed"):
        reason = status.split("(", 1)[1].rstrip(")") if "(" in status else "MVO not labelled"
        return f"not assessed ({reason})", ""
    return f"{_num(mvo, 2)} mL", f"{_num(mvo * 1.05, 2)} g"


def volumes_rows(patient: Dict) -> List[Tuple[str, str, str]]:
    mvo_volume, mvo_mass = mvo_cells(patient)
    return [
        ("LV myocardium", f"{_num(patient.get('myocardium_ml'))} mL", f"{_num(patient.get('myocardium_g'))} g"),
        ("Scar (incl. MVO)", f"{_num(patient.get('scar_ml'))} mL", f"{_num(patient.get('scar_g'))} g"),
        ("Scar % of LV myocardium", f"{_num(patient.get('scar_pct_lvm'))} %", ""),
        ("Microvascular obstruction", mvo_volume, mvo_mass),
        ("LV blood pool (on these slices)", f"{_num(patient.get('blood_pool_ml'))} mL", ""),
        ("Slices with myocardium / scar / total",
         f"{patient.get('n_slices_with_myocardium', '?')} / {patient.get('n_slices_with_scar', '?')} / "
         f"{patient.get('n_slices', '?')}", ""),
    ]


def orientation_section(quantification: Dict) -> str:
    """The orientation report.json holds: who decided each part, with what confidence, its warnings and
    `aha_status`; highlighted when the AHA table is missing or a warning was raised."""
    o = quantification.get("orientation")
    if not o:
        return "<div class='flag' id='orientation'><b>No orientation in the quantification</b>: AHA segments, " \
               "territories and the septum line are not shown.</div>"
    status = quantification.get("aha_status", o.get("aha_status")) or ""
    warnings = o.get("warnings") or []
    direction = {1: "+1 (anterior to septum to inferior with increasing angle)",
                 -1: "-1 (anterior to septum to inferior with decreasing angle)"}.get(o.get("direction"), "n/a")
    apex_first = o.get("apex_first")
    order = "n/a" if apex_first is None else f"slice {FIRST_SLICE_NUMBER} is the " + ("apex" if apex_first else "base")
    if apex_first is not None and not slice_order_known(o):
        order = f"not determined (inconclusive vote: {order})"
    sources, confidences = o.get("sources") or {}, o.get("confidences") or {}

    def decided(part):
        return "" if part not in sources else f"{sources[part]} (confidence {_num(confidences.get(part), 2)})"
    septum = "n/a" if o.get("septum_deg") is None else \
        f"{o['septum_deg']:.0f} deg (0 = right of the slice pictures, 90 = down)"
    rows = [("overall", f"source {o.get('source')}, confidence {_num(o.get('confidence'), 2)}", ""),
            ("septum", septum, decided("septum")), ("handedness", direction, decided("handedness")),
            ("slice order", order, decided("slice_order"))]
    rows += [(part.replace("_", " "), "", decided(part)) for part in sources
             if part not in ("septum", "handedness", "slice_order")]
    rows.append(("AHA status", status, ""))
    box = "ok" if status == "ok" and not warnings else "flag"
    if not quantification.get("aha"):
        head = "AHA segments not reported: orientation not determined"
    elif status == "ok":
        head = "Orientation determined: AHA segments reported"
    else:
        head = "AHA segments reported, but the orientation needs review (see AHA status)"
    items = "<ul id='orientation-warnings'>" + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>" \
        if warnings else " none."
    return (f"<div class='{box}' id='orientation'><b>{_e(head)}</b>"
            f"{_table(rows, ['', 'value', 'decided by'])}<b>Warnings:</b>{items}"
            "<div class='note'>Check the cyan septum line on every slice below: it must point to the "
            "interventricular septum.</div></div>")


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
    """Territories, Kim et al. categories and the > 50 % transmural count (Kim 51-100 %), or why they are missing."""
    aha, summary = quantification.get("aha"), quantification.get("aha_summary") or {}
    if not aha:
        return ("<div class='flag' id='territories'>No AHA segments, hence no territories or transmurality "
                f"categories: {_e(quantification.get('aha_status') or 'no AHA table in the quantification')}. "
                "The transmurality bullseye shows sectors per slice instead.</div>")
    ge50 = summary.get("segments_transmurality_ge_50", [])
    territories = summary.get("territories_transmurality_ge_50", [])
    count = (f"<p id='ge50'><b>Segments with mean transmurality &gt; 50 % (Kim 51-100 %): "
             f"{_e(summary.get('n_segments_transmurality_ge_50'))}</b> of {_e(summary.get('n_segments_measured'))} "
             f"measured (segments {_e(', '.join(str(s) for s in ge50) or 'none')}; territories "
             f"{_e(', '.join(territories) or 'none')}).</p>")
    per_category = summary.get("segments_per_category") or {}
    names = [name for _, name in CATEGORIES] + [c for c in per_category if c not in [n for _, n in CATEGORIES]]
    kim = _table([[name, str(per_category.get(name, 0))] for name in names],
                 ["Kim category (mean transmurality)", "segments"], "kim-categories")
    territory = _table(territory_rows(aha, summary),
                       ["territory", "segments", "with scar", "mean transmurality > 50 %", "scar",
                        "scar % of territory myocardium"], "territories")
    return (count + "<div class='row'>" + territory + kim + "</div><p class='note'>Territories: Cerqueira et al. "
            "2002 (LAD 1, 2, 7, 8, 13, 14, 17; RCA 3, 4, 9, 10, 15; LCx 5, 6, 11, 12, 16). Categories: Kim et al. "
            "2000 (0, 1-25, 26-50, 51-75, 76-100 % of the wall thickness, centerline chords).</p>")


def segment_rows(quantification: Dict) -> Tuple[List[str], List[List[str]]]:
    """AHA segments when present, else one row per slice."""
    if quantification.get("aha"):
        header = ["segment", "name", "territory", "slices", "scar extent %", "mean transmurality",
                  "max transmurality", "Kim category", "status"]
        rows = [[str(r.get("segment")), r.get("name", ""), r.get("territory", ""),
                 _slice_numbers(str(r.get("slices") or "").split()) or "none", _num(r.get("scar_extent_pct")),
                 _pct(r.get("transmurality_mean")), _pct(r.get("transmurality_max")),
                 r.get("transmurality_category") or "n/a", r.get("status", "")] for r in quantification["aha"]]
        return header, rows
    header = ["slice", "myocardium mL", "scar mL", "scar % of slice myocardium", "status"]
    rows = [[str(int(r.get("slice")) + FIRST_SLICE_NUMBER), _num(r.get("myocardium_ml"), 2),
             _num(r.get("scar_ml"), 2), _num(r.get("scar_pct_lvm")), r.get("status", "")]
            for r in quantification.get("slices", [])]
    return header, rows


def _flags_html(flags: List[Dict]) -> List[str]:
    if not flags:
        return ["<div class='ok'>No QC flag raised. The reader still reviews every slice.</div>"]
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


def render_report(patient_name: str, identifiers: Dict[str, str], source: str, quantification: Dict,
                  flags: List[Dict], bullseyes: List[Tuple[str, bytes]], overlays: List[Tuple[str, bytes]],
                  model: Dict, prediction_qc: Dict, outputs: List[str]) -> str:
    """The whole report as one HTML string: identifiers, QC flags, orientation, volumes next to the bullseyes,
    territories and transmurality, every slice (`overlays`: one (caption, PNG) per slice), segments, confidence,
    model identity."""
    p = quantification.get("patient", {})
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>LGE scar report - {_e(patient_name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>LGE scar report: {_e(identifiers.get('PatientName', patient_name))}</h1>",
             "<p class='note'>Automatic segmentation and quantification for review by a reader; "
             "not a diagnosis. Check the QC flags, the orientation and every slice below.</p>",
             "<h2>Patient and series</h2>", _identifier_table(identifiers),
             f"<p class='note'>Source: {_e(source)}</p>", "<h2>QC flags</h2>"]
    parts += _flags_html(flags)
    parts += ["<p class='note'>Flags are explained in the package's docs/report.md. Slices are numbered from "
              f"{FIRST_SLICE_NUMBER} in stack order (report.json and the CSVs: array index from 0).</p>",
              "<h2>Orientation</h2>", orientation_section(quantification),
              "<h2>Volumes and bullseyes</h2><div class='row'><div>",
              _table(volumes_rows(p), ["", "volume", "mass (1.05 g/mL)"], "volumes"),
              f"<p class='note'>Voxel spacing {_e(' x '.join(f'{s:.2f}' for s in p.get('spacing_mm', [])))} mm."
              f"</p></div>"]
    parts += [_bullseye(caption, png) for caption, png in bullseyes]
    parts += ["</div>", "<h2>Every slice</h2><p class='note'>Myocardium green, scar red, MVO yellow, septum "
              "direction cyan (from the orientation above). Click a slice to enlarge it, click again to close.</p>"
              "<div class='slices'>"]
    parts += [_slice_figure(i, caption, png) for i, (caption, png) in enumerate(overlays)]
    parts += ["</div>", "<h2>Territories and transmurality</h2>", transmurality_section(quantification)]
    header, rows = segment_rows(quantification)
    parts += ["<h2>Segments</h2>" if quantification.get("aha") else "<h2>Slices</h2>", _table(rows, header,
                                                                                             "segments")]
    conf = prediction_qc.get("confidence", {})
    dice, members = prediction_qc.get("member_dice", {}), prediction_qc.get("members", [])
    qc_rows = [("Mean max probability in myocardium", _num(conf.get("myocardium"), 3)),
               ("Mean max probability in scar", _num(conf.get("scar"), 3)),
               ("Ensemble members", str(len(members))),
               ("Lowest member Dice vs ensemble, myocardium", member_agreement_text(dice, members, "myocardium")),
               ("Lowest member Dice vs ensemble, scar", member_agreement_text(dice, members, "scar"))]
    parts += ["<h2>Prediction confidence</h2>", _table(qc_rows, table_id="confidence"),
              "<h2>Model</h2>", _table(_model_rows(model)),
              "<h2>Files</h2><ul>" + "".join(f"<li><code>{_e(o)}</code></li>" for o in outputs) + "</ul>",
              f"<p class='note'>Generated {_e(datetime.datetime.now().isoformat(timespec='seconds'))} by "
              f"scarnet report.</p></body></html>"]
    return "\n".join(parts)
