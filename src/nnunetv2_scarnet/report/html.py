"""One self-contained HTML file per patient: styles inline, pictures as base64 PNG data URIs, no network."""
import base64
import datetime
import html
import re
from typing import Dict, List, Optional, Sequence, Tuple

#: a number, possibly with a unit or "a / b / c": right-aligned in tables
NUMBER = re.compile(r"^-?\d[\d.]*( ?(mL|g|%|s))?( / -?\d[\d.]*)*$|^n/a$")

STYLE = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:26px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}td.num{text-align:right}.note{color:#555;font-size:12px}
.flag{background:#fff4e5;border-left:5px solid #e67e00;padding:6px 10px;margin:6px 0}
.ok{background:#eef8ee;border-left:5px solid #2e8b2e;padding:6px 10px;margin:6px 0}
.figs img{max-width:100%;border:1px solid #ddd;margin:4px 0}figure{margin:0}.row{display:flex;gap:16px;flex-wrap:wrap}
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _num(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(rows: Sequence[Sequence], header: Optional[Sequence[str]] = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td class='num'>{_e(c)}</td>" if NUMBER.match(str(c))
                                    else f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def image_tag(png: bytes, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def _figure(caption: str, png: bytes, width: Optional[int] = None) -> str:
    style = f" style='width:{width}px'" if width else ""
    return f"<figure{style}>{image_tag(png, caption)}<figcaption class='note'>{_e(caption)}</figcaption></figure>"


def _identifier_table(identifiers: Dict[str, str]) -> str:
    """Identifiers two per row, so that the figures start high on the page."""
    items = list(identifiers.items())
    rows = []
    for i in range(0, len(items), 2):
        pair = items[i:i + 2]
        rows.append("<tr>" + "".join(f"<th>{_e(k)}</th><td>{_e(v)}</td>" for k, v in pair) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def volumes_rows(patient: Dict) -> List[Tuple[str, str, str]]:
    density = 1.05
    mvo = patient.get("mvo_ml")
    return [
        ("LV myocardium", f"{_num(patient.get('myocardium_ml'))} mL", f"{_num(patient.get('myocardium_g'))} g"),
        ("Scar (incl. MVO)", f"{_num(patient.get('scar_ml'))} mL", f"{_num(patient.get('scar_g'))} g"),
        ("Scar % of LV myocardium", f"{_num(patient.get('scar_pct_lvm'))} %", ""),
        ("Microvascular obstruction", f"{_num(mvo, 2)} mL", f"{_num(None if mvo is None else mvo * density, 2)} g"),
        ("LV blood pool (on these slices)", f"{_num(patient.get('blood_pool_ml'))} mL", ""),
        ("Slices with myocardium / scar / total",
         f"{patient.get('n_slices_with_myocardium', '?')} / {patient.get('n_slices_with_scar', '?')} / "
         f"{patient.get('n_slices', '?')}", ""),
    ]


def segment_rows(quantification: Dict) -> Tuple[List[str], List[List[str]]]:
    """AHA segments when present, else one row per slice."""
    if quantification.get("aha"):
        header = ["segment", "name", "scar extent %", "mean transmurality %"]
        rows = []
        for r in quantification["aha"]:
            t = next((v for k, v in r.items() if k.startswith("transmurality") and isinstance(v, (int, float))), None)
            rows.append([str(r.get("segment")), r.get("name", ""), _num(r.get("scar_extent_pct")),
                         _num(None if t is None else 100.0 * t)])
        return header, rows
    header = ["slice", "myocardium mL", "scar mL", "scar % of slice myocardium", "status"]
    rows = [[str(r.get("slice")), _num(r.get("myocardium_ml"), 2), _num(r.get("scar_ml"), 2),
             _num(r.get("scar_pct_lvm")), r.get("status", "")] for r in quantification.get("slices", [])]
    return header, rows


def render_report(patient_name: str, identifiers: Dict[str, str], source: str, quantification: Dict,
                  flags: List[Dict], bullseyes: List[Tuple[str, bytes]], overlays: List[Tuple[str, bytes]],
                  model: Dict, prediction_qc: Dict, outputs: List[str]) -> str:
    """The whole report as one HTML string: identifiers, QC flags, volumes next to the bullseyes, every slice,
    segments, confidence, model identity."""
    p = quantification.get("patient", {})
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>LGE scar report - {_e(patient_name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>LGE scar report: {_e(identifiers.get('PatientName', patient_name))}</h1>",
             "<p class='note'>Automatic segmentation and quantification for review by a reader; "
             "not a diagnosis. Check the QC flags and every slice below.</p>",
             "<h2>Patient and series</h2>", _identifier_table(identifiers),
             f"<p class='note'>Source: {_e(source)}</p>",
             "<h2>QC flags</h2>"]
    if flags:
        for f in flags:
            slices = f" Slices: {', '.join(str(s) for s in f['slices'])}." if f.get("slices") else ""
            parts.append(f"<div class='flag'><b>{_e(f['title'])}</b> <code>{_e(f['code'])}</code><br>"
                         f"{_e(f['detail'])}.{_e(slices)}</div>")
    else:
        parts.append("<div class='ok'>No QC flag raised. The reader still reviews every slice.</div>")
    parts.append("<p class='note'>Flags are explained in the package's docs/report.md.</p>")
    parts += ["<h2>Volumes and bullseyes</h2><div class='row figs'><div>",
              _table(volumes_rows(p), ["", "volume", "mass (1.05 g/mL)"]),
              f"<p class='note'>Voxel spacing {_e(' x '.join(f'{s:.2f}' for s in p.get('spacing_mm', [])))} mm."
              f"</p></div>"]
    parts += [_figure(caption, png, 330) for caption, png in bullseyes]
    parts.append("</div><h2>Every slice</h2><div class='figs'>")
    parts += [_figure(caption, png) for caption, png in overlays]
    parts.append("</div>")
    header, rows = segment_rows(quantification)
    parts += ["<h2>Segments</h2>", _table(rows, header)]
    conf = prediction_qc.get("confidence", {})
    dice = prediction_qc.get("member_dice", {})
    qc_rows = [("Mean max probability in myocardium", _num(conf.get("myocardium"), 3)),
               ("Mean max probability in scar", _num(conf.get("scar"), 3)),
               ("Ensemble members", str(len(prediction_qc.get("members", [])))),
               ("Lowest member Dice vs ensemble, myocardium", _num(min(dice["myocardium"]), 3)
                if dice.get("myocardium") else "n/a"),
               ("Lowest member Dice vs ensemble, scar", _num(min(dice["scar"]), 3) if dice.get("scar") else "n/a")]
    parts += ["<h2>Prediction confidence</h2>", _table(qc_rows)]
    versions = model.get("versions", {})
    model_rows = [(k, model.get(k)) for k in ("trainer", "plans", "configuration", "dataset", "model_folder",
                                              "checkpoint", "device", "members")]
    model_rows += [("folds", ", ".join(str(f) for f in model.get("folds", []))),
                   ("mirroring", ", ".join(str(a) for a in model.get("mirroring_axes", [])) or "off"),
                   ("labels", ", ".join(f"{k}={v}" for k, v in model.get("labels", {}).items()))]
    model_rows += [(f"version {k}", v) for k, v in versions.items()]
    parts += ["<h2>Model</h2>", _table(model_rows),
              "<h2>Files</h2><ul>" + "".join(f"<li><code>{_e(o)}</code></li>" for o in outputs) + "</ul>",
              f"<p class='note'>Generated {_e(datetime.datetime.now().isoformat(timespec='seconds'))} by "
              f"scarnet report.</p></body></html>"]
    return "\n".join(parts)
