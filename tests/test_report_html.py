"""The HTML of `scarnet report` as a reader sees it in headless Chromium: a faithful face of the quantification
(orientation, territories, Kim categories, MVO status), the septum line on every slice, readable pictures for a
1-slice and a 40-slice stack, and the AHA bullseye layout of Cerqueira et al. 2002.

Reports are built from real EMIDEC expert labels and images quantified by the real quantification code (no model):
the HTML rendering functions are called as `scarnet report` calls them."""
import html as html_lib
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from scipy.stats import spearmanr

from bullseye_spy import drawn_segments
from nnunetv2_scarnet.quantification import LabelScheme, read_label_stack, read_stack
from nnunetv2_scarnet.quantification.label_scheme import Stack
from nnunetv2_scarnet.quantification.report import quantify_stack
from nnunetv2_scarnet.quantification.sectors import SectorGeometry
from nnunetv2_scarnet.report.figures import slice_captions, slice_overlays, transmurality_bullseye
from nnunetv2_scarnet.report.html import orientation_section, render_report
from nnunetv2_scarnet.report.qc import all_flags, member_agreement_text

#: coronary territories of the AHA segments (Cerqueira et al., Circulation 2002, recommended assignment)
CERQUEIRA = {"LAD": [1, 2, 7, 8, 13, 14, 17], "RCA": [3, 4, 9, 10, 15], "LCx": [5, 6, 11, 12, 16]}
LONG_UID = "1.2.826.0.1.3680043.8.498." + "1234567890" * 6
SCHEME = LabelScheme()

MEASURE = """<script>addEventListener('load', () => {
 const box = e => { const b = e.getBoundingClientRect();
   return [b.left, b.top + scrollY, b.right, b.bottom + scrollY]; };
 const m = {inner: innerWidth, scroll: document.documentElement.scrollWidth,
  height: document.documentElement.scrollHeight,
  slices: [...document.querySelectorAll('.slices figure')].map(f => ({box: box(f.querySelector('img')),
    caption: f.querySelector('figcaption').textContent})),
  bullseyes: [...document.querySelectorAll('.bullseye img')].map(i => ({box: box(i),
    natural: [i.naturalWidth, i.naturalHeight]})),
  clipped: [...document.querySelectorAll('figcaption, h1, h2, p, li, td, th, div')]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.tagName + ': ' + e.textContent.slice(0, 80)),
  figures: [...document.querySelectorAll('figure')].map(box),
  tables: Object.fromEntries([...document.querySelectorAll('table[id]')]
    .map(t => [t.id, [...t.rows].map(r => [...r.cells].map(c => c.textContent))])),
  texts: Object.fromEntries(['orientation', 'ge50', 'territories'].filter(i => document.getElementById(i))
    .map(i => [i, document.getElementById(i).innerText]))};
 const label = document.querySelector('.slices label');
 if (label) { label.click(); m.zoomed = label.querySelector('img').getBoundingClientRect().width;
   label.click(); m.closed = label.querySelector('img').getBoundingClientRect().width; }
 const pre = document.createElement('pre'); pre.id = 'measure'; pre.textContent = JSON.stringify(m);
 document.body.appendChild(pre);
});</script>"""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium not installed (.ci/run installs Debian's chromium)")


def _run_chromium(args, url):
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-device-scale-factor=1", *args, url], check=True, capture_output=True, text=True,
                          timeout=180).stdout


def measure(page: str, tmp_path, width: int = 1200):
    """Layout and content of `page` measured by Chromium (a copy of the page with a measuring script)."""
    path = tmp_path / f"measured_{width}.html"
    path.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _run_chromium([f"--window-size={width},1000", "--virtual-time-budget=20000", "--dump-dom"],
                        f"file://{path}")
    found = re.search(r"<pre id=\"measure\">(.*?)</pre>", dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html_lib.unescape(found.group(1)))


def screenshot(page: str, tmp_path, width: int, height: int, name="shot"):
    from PIL import Image

    path, png = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
    path.write_text(page, encoding="utf-8")
    _run_chromium([f"--window-size={width},{height}", f"--screenshot={png}"], f"file://{path}")
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


# ---------------------------------------------------------------- inputs: real EMIDEC labels, real quantification
def case_stacks(emidec_cases, case):
    return (read_label_stack(f"{emidec_cases}/{case}/label.nii.gz", SCHEME),
            read_stack(f"{emidec_cases}/{case}/image.nii.gz"))


def substack(stack: Stack, indices, repeat: int = 1) -> Stack:
    """The slices `indices` of a stack, each repeated `repeat` times (slice spacing divided by `repeat`)."""
    affine = np.array(stack.affine, float)
    affine[:3, 2] /= repeat
    spacing = (stack.spacing[0], stack.spacing[1], stack.spacing[2] / repeat)
    return Stack(stack.path, np.repeat(stack.data[..., list(indices)], repeat, axis=2), spacing, affine)


def build_page(label, image, quant, members=("fold 0",), dice=None, identifiers=None):
    """The report page as `scarnet report` writes it for this stack and quantification."""
    dice = dice if dice is not None else {"myocardium": [1.0] * len(members), "scar": [1.0] * len(members)}
    flags = all_flags(label.data, label.spacing, SCHEME, quant, None)
    identifiers = identifiers or {"PatientName": "EMIDEC^TEST", "SeriesInstanceUID": LONG_UID,
                                  "StudyInstanceUID": LONG_UID + ".7"}
    return render_report("P", identifiers, "test", quant, flags,
                         [("Transmurality", transmurality_bullseye(quant, "P"))],
                         slice_overlays(image, label, SCHEME, quant), {"trainer": "T"},
                         {"confidence": {"myocardium": 0.95, "scar": 0.9}, "member_dice": dice,
                          "members": list(members)}, ["x"])


@pytest.fixture(scope="module")
def p004(emidec_cases):
    label, image = case_stacks(emidec_cases, "Case_P004")
    quant = quantify_stack(label, SCHEME, SectorGeometry(), image=image.data, mvo_assessed=False)
    assert quant["aha_status"] == "ok" and quant.get("aha")  # the real case reads with an AHA table
    return label, image, quant


# ---------------------------------------------------------------- what the page says
def test_page_shows_orientation_territories_kim_and_mvo_as_the_quantification_has_them(p004, tmp_path):
    label, image, quant = p004
    m = measure(build_page(label, image, quant), tmp_path)
    o, summary, aha = quant["orientation"], quant["aha_summary"], quant["aha"]
    block = m["texts"]["orientation"]
    for text in (o["source"], f"{o['confidence']:.2f}", quant["aha_status"], *o["warnings"]):
        assert text in block
    assert "none" in block or o["warnings"]
    # territories: Cerqueira's segments, the scarred ones and report.json's > 50 % ones, per territory
    rows = {r[0]: r for r in m["tables"]["territories"][1:]}
    assert sorted(rows) == sorted(CERQUEIRA)
    for territory, numbers in CERQUEIRA.items():
        assert rows[territory][1] == ", ".join(map(str, numbers))
        scarred = [r["segment"] for r in aha if r["segment"] in numbers and r["scar_px"] > 0]
        assert rows[territory][2] == (", ".join(map(str, scarred)) or "none")
        ge50 = [s for s in summary["segments_transmurality_ge_50"] if s in numbers]
        assert rows[territory][3] == (", ".join(map(str, ge50)) or "none")
    assert f"> 50 % (Kim 51-100 %): {summary['n_segments_transmurality_ge_50']}" in m["texts"]["ge50"]
    # Kim categories per segment and their counts, as report.json has them
    header, *segments = m["tables"]["segments"]
    column = header.index("Kim category")
    assert [r[column] for r in segments] == [r["transmurality_category"] or "n/a" for r in aha]
    counts = {r[0]: int(r[1]) for r in m["tables"]["kim-categories"][1:]}
    assert {k: v for k, v in counts.items() if v} == summary["segments_per_category"]
    # MVO merged into scar: "not assessed", never a number or "n/a mL"
    mvo = next(r for r in m["tables"]["volumes"] if r[0] == "Microvascular obstruction")
    assert mvo[1].startswith("not assessed") and "mL" not in mvo[1]
    # one ensemble member: no agreement claimed
    confidence = {r[0]: r[1] for r in m["tables"]["confidence"]}
    assert confidence["Lowest member Dice vs ensemble, myocardium"] == "one member: no agreement measured"
    assert confidence["Lowest member Dice vs ensemble, scar"] == "one member: no agreement measured"


def test_mvo_volume_shown_when_the_labels_carry_it(p004, emidec_cases):
    label, _, _ = p004
    quant = quantify_stack(label, SCHEME, SectorGeometry(), mvo_assessed=True)
    page = render_report("P", {}, "s", quant, [], [], [], {}, {}, [])
    mvo_ml = float((label.data == 4).sum()) * label.voxel_ml  # EMIDEC label 4 = MVO
    assert f"<td class='num'>{mvo_ml:.2f} mL</td>" in page and "not assessed" not in page


def test_member_agreement_text():
    assert member_agreement_text({"myocardium": [1.0]}, ["fold 0"], "myocardium") == \
        "one member: no agreement measured"
    assert member_agreement_text({"myocardium": [0.97, 0.91]}, ["fold 0", "fold 1"], "myocardium") == \
        "0.910 (fold 1)"


# ---------------------------------------------------------------- the septum line, seen in Chromium
def _colour_pixels(rgb, kind):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if kind == "cyan":
        return (r < 90) & (g > 170) & (b > 170)
    return (g > 170) & (r < 90) & (b < 90)  # lime


def test_septum_line_points_to_the_septum_of_the_orientation(p004, tmp_path):
    """Every slice with myocardium shows a cyan line from the LV towards report.json's septum angle of that slice
    (theta = atan2(dj, di): the display shows i to the right and j downwards); without a septum there is none."""
    label, image, quant = p004
    page = build_page(label, image, quant)
    m = measure(page, tmp_path)
    shot = screenshot(page, tmp_path, 1200, int(m["height"]) + 20)
    o = quant["orientation"]
    per_slice = {int(k): v for k, v in o["slice_septum_deg"].items()}
    for k, figure in enumerate(m["slices"]):
        x0, y0, x1, y1 = [int(round(v)) for v in figure["box"]]
        crop = shot[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
        cyan, lime = np.argwhere(_colour_pixels(crop, "cyan")), np.argwhere(_colour_pixels(crop, "lime"))
        assert len(cyan) > 30, k
        d = cyan.mean(axis=0) - lime.mean(axis=0)  # (row, col): from the myocardium's centre to the line's middle
        angle = np.degrees(np.arctan2(d[0], d[1]))
        expected = per_slice.get(k, o["septum_deg"])
        assert abs((angle - expected + 180.0) % 360.0 - 180.0) < 30.0, (k, angle, expected)
    without = dict(quant, orientation=dict(o, septum_deg=None, slice_septum_deg={}))
    shot = screenshot(build_page(label, image, without), tmp_path, 1200, int(m["height"]) + 20, "no_septum")
    for figure in m["slices"]:
        x0, y0, x1, y1 = [int(round(v)) for v in figure["box"]]
        assert not _colour_pixels(shot[y0 + 1:y1 - 1, x0 + 1:x1 - 1], "cyan").any()


# ---------------------------------------------------------------- 1 and 40 slices fit the page
def _stack_of(kind, emidec_cases):
    if kind == "1 slice":
        label, image = case_stacks(emidec_cases, "Case_P004")
        return substack(label, [3]), substack(image, [3]), True
    label, image = case_stacks(emidec_cases, "Case_P001")  # 10 slices of 10 mm -> 40 of 2.5 mm
    assert label.data.shape[2] == 10
    return substack(label, range(10), 4), substack(image, range(10), 4), kind == "40 slices"


@pytest.mark.parametrize("kind", ["1 slice", "40 slices", "40 slices, no AHA"])
def test_reports_of_1_and_40_slices_are_readable(kind, emidec_cases, tmp_path):
    label, image, with_image = _stack_of(kind, emidec_cases)
    quant = quantify_stack(label, SCHEME, SectorGeometry(), image=image.data if with_image else None)
    page = build_page(label, image, quant)
    for width in (1200, 900):  # a full-HD browser window, and half of a wide screen
        check_readable(page, kind, quant, label.data.shape[2], width, tmp_path)


def check_readable(page, kind, quant, n, width, tmp_path):
    m = measure(page, tmp_path, width)
    assert m["scroll"] <= m["inner"] == width  # no horizontal overflow, long UIDs wrap
    assert not m["clipped"]
    # every slice, numbered from 1, at least 256 px wide, enlarged when clicked and back when clicked again
    assert [s["caption"].split(" (")[0].split(",")[0] for s in m["slices"]] == [f"slice {k}" for k in
                                                                                range(1, n + 1)]
    widths = [s["box"][2] - s["box"][0] for s in m["slices"]]
    assert min(widths) >= 256
    assert m["zoomed"] > 1.5 * widths[0] and m["closed"] == pytest.approx(widths[0])
    # the bullseye stays a readable disc: >= 256 px wide, and its picture is not stretched by a long title
    (bullseye,) = m["bullseyes"]
    assert bullseye["box"][2] - bullseye["box"][0] >= 256
    assert 0.7 < bullseye["natural"][0] / bullseye["natural"][1] < 1.6
    # no two figures overlap
    boxes = m["figures"]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    if n == 1:  # one slice: no slice order, hence no base / apex label
        assert "apex" not in m["slices"][0]["caption"] and "base" not in m["slices"][0]["caption"]
    if kind == "40 slices":  # an AHA table is drawn (its status may be "needs review": P001's image septum is flagged)
        assert quant.get("aha") and quant["aha_status"] in m["texts"]["orientation"]
    if kind == "40 slices, no AHA":
        assert not quant.get("aha") and "No AHA segments" in m["texts"]["territories"]


# ---------------------------------------------------------------- base / apex labels only when the order is known
def _epicardial_area(label, k):
    from scipy import ndimage
    return float(ndimage.binary_fill_holes(np.isin(label.data[..., k], (1, 2, 3, 4))).sum())


def test_base_and_apex_labelled_only_when_the_slice_order_is_known(p004, tmp_path, axes_titles):
    from nnunetv2_scarnet.quantification.figures import overlay_png

    label, image, quant = p004
    # known order: the end slice with the smaller LV is the apex
    captions = slice_captions(quant)
    ends = (0, label.data.shape[2] - 1)
    apex = min(ends, key=lambda k: _epicardial_area(label, k))
    base = max(ends, key=lambda k: _epicardial_area(label, k))
    assert "(apex)" in captions[apex] and "(base)" in captions[base]
    # shuffled slices: the LV size along the stack no longer tells the order (Spearman |rho| < 0.5)
    order = [2, 0, 5, 1, 4, 3]
    areas = [_epicardial_area(label, k) for k in order]
    assert abs(spearmanr(range(6), areas).statistic) < 0.5
    shuffled_label, shuffled_image = substack(label, order), substack(image, order)
    shuffled = quantify_stack(shuffled_label, SCHEME, SectorGeometry(), image=shuffled_image.data)
    assert shuffled["aha_status"] != "ok"
    assert not any("apex" in c or "base" in c for c in slice_captions(shuffled).values())
    assert "slice order</td><td>not determined (inconclusive vote" in orientation_section(shuffled)
    titles = axes_titles
    titles.clear()  # only this overlay's titles
    overlay_png(shuffled_image, shuffled_label, SCHEME, str(tmp_path / "o.png"), orientation=shuffled["orientation"])
    assert len(titles) == 6 and not any("apex" in t or "base" in t for t in titles)


# ---------------------------------------------------------------- the transmurality bullseye: AHA layout
def test_transmurality_bullseye_uses_the_aha_layout(monkeypatch):
    """Segment 1 at the top, septum (2-3, 8-9, 14) on the viewer's left, apical ring 13/14/15/16 centred on
    top/left/bottom/right (not rotated), segment 17 a central disc; colour = mean transmurality."""
    aha = [{"segment": n, "name": str(n), "territory": "", "myocardium_px": 10, "scar_px": 1,
            "scar_extent_pct": 50.0, "transmurality_mean": 0.05 * n if n < 17 else 0.9} for n in range(1, 18)]
    wedges, discs = drawn_segments(monkeypatch, lambda: transmurality_bullseye({"aha": aha}, "t"),
                                   lambda n: aha[n - 1]["transmurality_mean"])
    circles = [disc for _, disc in discs]
    assert sorted(wedges) == list(range(1, 17)) and [n for n, _ in discs] == [17]
    centres = {1: 90, 2: 150, 3: 210, 4: 270, 5: 330, 6: 30, 7: 90, 8: 150, 9: 210, 10: 270, 11: 330, 12: 30,
               13: 90, 14: 180, 15: 270, 16: 0}
    for n, centre in centres.items():
        w = wedges[n]
        assert ((w.theta1 + w.theta2) / 2) % 360.0 == pytest.approx(centre), n
        assert w.theta2 - w.theta1 == pytest.approx(60.0 if n <= 12 else 90.0), n
    assert wedges[1].r > wedges[7].r > wedges[13].r > circles[0].radius


def test_overlay_title_of_a_single_slice_fits_its_picture(p004, tmp_path, monkeypatch):
    """`scarnet quantify`'s montage of one slice: the title (wrapped) lies inside the saved figure."""
    import matplotlib.figure

    from nnunetv2_scarnet.quantification.figures import overlay_png

    label, image, quant = p004
    saved = []
    original = matplotlib.figure.Figure.savefig

    def spy(self, *args, **kwargs):
        self.canvas.draw()
        saved.append((self.bbox, self._suptitle.get_window_extent(self.canvas.get_renderer())))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    one_label, one_image = substack(label, [3]), substack(image, [3])
    overlay_png(one_image, one_label, SCHEME, str(tmp_path / "o.png"), "Case_P004_with_a_long_name: myocardium "
                "(green), scar (red), MVO (yellow)", orientation=quant["orientation"])
    ((figure, title),) = saved
    assert figure.x0 <= title.x0 and title.x1 <= figure.x1 and title.y1 <= figure.y1
