"""The report's style sheet: screen layout, the three orientation states, and a print layout (A4, no table or
picture split across pages, colours kept) for a report that is printed and scanned into the record."""

#: displayed width of a slice picture (CSS px); the PNG has more pixels for the enlarged view
SLICE_WIDTH_PX = 264

STYLE = f"""
body{{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1150px}}
h1{{font-size:22px;margin-bottom:4px;overflow-wrap:anywhere}}
h2{{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:26px}}
table{{border-collapse:collapse;margin:6px 0;font-size:13px;max-width:100%}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;overflow-wrap:anywhere;word-break:break-word}}
th{{background:#f0f0f0}}th,td:first-child{{overflow-wrap:normal;word-break:normal}}
td.num{{text-align:right;white-space:nowrap}}.note{{color:#555;font-size:12px}}
code,p,li,div{{overflow-wrap:anywhere}}
.flag{{background:#fff4e5;border-left:6px solid #e67e00;padding:6px 10px;margin:6px 0}}
.ok{{background:#eef8ee;border-left:6px solid #2e8b2e;padding:6px 10px;margin:6px 0}}
.stop{{background:#f3f3f3;border-left:6px solid #555;border-top:2px dashed #555;padding:6px 10px;margin:6px 0}}
#banner{{font-size:15px;border-width:0 0 0 10px;padding:8px 12px}}#banner ul{{margin:4px 0}}
#banner.flag{{border-left-color:#c85a00}}
figure{{margin:0}}figcaption{{overflow-wrap:anywhere}}
.row{{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}}
.volumes{{max-width:360px}}
.bullseye{{width:370px;max-width:100%}}
.bullseye img{{box-sizing:border-box;width:100%;height:auto;border:1px solid #ddd}}
.slices{{display:grid;grid-template-columns:repeat(auto-fill,minmax({SLICE_WIDTH_PX}px,1fr));gap:10px}}
.slices img{{box-sizing:border-box;width:100%;min-width:{SLICE_WIDTH_PX}px;height:auto;
border:1px solid #ddd;cursor:zoom-in;display:block}}
.zoom{{display:none}}
.zoom:checked+label{{position:fixed;top:0;left:0;right:0;bottom:0;z-index:9;background:rgba(0,0,0,.9);
display:flex;align-items:center;justify-content:center;cursor:zoom-out}}
.zoom:checked+label img{{width:auto;min-width:0;height:auto;max-width:96vw;max-height:96vh;cursor:zoom-out}}
#signoff td{{height:30px;min-width:320px}}
@page{{size:A4;margin:11mm 10mm}}
@media print{{
body{{margin:0;max-width:none;font-size:10px;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
h1{{font-size:17px}}h2{{font-size:13px;margin-top:10px;break-after:avoid}}
table{{font-size:9.5px;margin:3px 0}}td,th{{padding:1px 5px}}.note{{font-size:9px}}
table,tr,figure,.flag,.ok,.stop,#signoff,.keep{{break-inside:avoid}}
.row{{gap:8px}}
.volumes{{max-width:none;width:100%}}.bullseye{{width:40%}}
.slices{{grid-template-columns:repeat(5,1fr);gap:4px}}
.slices img{{min-width:0;cursor:auto}}
.zoom,details{{display:none}}
}}
"""
