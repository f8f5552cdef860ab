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

from bullseye_spy import segments_by_number
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
  texts: Object.fromEntries(['orientation', 'ge50', 'territories', 'banner', 'territory-caveat', 'mass-caveat',
    'scar-method'].filter(i => document.getElementById(i))
    .map(i => [i, document.getElementById(i).textContent])),
  boxes: Object.fromEntries(['banner', 'orientation', 'identifiers'].filter(i => document.getElementById(i))
    .map(i => { const e = document.getElementById(i), st = getComputedStyle(e);
      return [i, {box: box(e), border: st.borderLeftColor, background: st.backgroundColor}]; })),
  caveats: [...document.querySelectorAll('.caveat')].map(e => e.textContent)};
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
    for text in (o["source"], f"{o['confidence']:.2f}", quant["aha_status"], *o["warnings"], *o["assumptions"]):
        assert text in block
    # in words: the state, where the septum is (report.json's clock hour) and that the anterior side was assumed
    assert o["state"] == "ok" and "Orientation OK" in block
    hour = o["septum_clock_hour"]
    assert (f"at {int(hour)} o'clock" if hour == int(hour) else f"at {int(hour)}:30") in block
    assert o["handedness"] == "assumed" and "ASSUMED" in block
    # an ok case without QC flags opens with the green banner; nothing on the page is a caveat
    assert "No QC flag raised" in m["texts"]["banner"] and not m["caveats"]
    assert m["boxes"]["banner"]["border"] == m["boxes"]["orientation"]["border"]  # both green
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
    """Pixels of the septum line (Okabe-Ito blue, 0/114/178) or of the myocardium contour (sky blue, 86/180/233)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if kind == "septum":
        return (r < 50) & (g > 85) & (g < 145) & (b > 140)
    return (r > 55) & (r < 125) & (g > 150) & (g < 210) & (b > 195)  # myocardium


def test_septum_line_points_to_the_septum_of_the_orientation(p004, tmp_path):
    """Every slice with myocardium shows a blue line from the LV towards report.json's septum angle of that slice
    (theta = atan2(dj, di): the display shows i to the right and j downwards); without a septum there is none. The
    RV insertion points (blue dots, same colour) are left out here so that only the line is measured."""
    label, image, quant = p004
    quant = json.loads(json.dumps(quant))
    for entry in quant["orientation"]["slices"].values():
        entry["insertion_points_deg"] = entry["rejected_insertion_points_deg"] = None
    page = build_page(label, image, quant)
    m = measure(page, tmp_path)
    shot = screenshot(page, tmp_path, 1200, int(m["height"]) + 20)
    o = quant["orientation"]
    per_slice = {int(k): v for k, v in o["slice_septum_deg"].items()}
    for k, figure in enumerate(m["slices"]):
        x0, y0, x1, y1 = [int(round(v)) for v in figure["box"]]
        crop = shot[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
        line, myo = np.argwhere(_colour_pixels(crop, "septum")), np.argwhere(_colour_pixels(crop, "myocardium"))
        assert len(line) > 30, k
        d = line.mean(axis=0) - myo.mean(axis=0)  # (row, col): from the myocardium's centre to the line's middle
        angle = np.degrees(np.arctan2(d[0], d[1]))
        expected = per_slice.get(k, o["septum_deg"])
        assert abs((angle - expected + 180.0) % 360.0 - 180.0) < 30.0, (k, angle, expected)
    without = dict(quant, orientation=dict(o, septum_deg=None, slice_septum_deg={}))
    shot = screenshot(build_page(label, image, without), tmp_path, 1200, int(m["height"]) + 20, "no_septum")
    for figure in m["slices"]:
        x0, y0, x1, y1 = [int(round(v)) for v in figure["box"]]
        assert not _colour_pixels(shot[y0 + 1:y1 - 1, x0 + 1:x1 - 1], "septum").any()


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
    assert "<th>Slice order</th><td>not determined: the LV size along the stack does not tell it" in \
        orientation_section(shuffled)
    titles = axes_titles
    titles.clear()  # only this overlay's titles
    overlay_png(shuffled_image, shuffled_label, SCHEME, str(tmp_path / "o.png"), orientation=shuffled["orientation"])
    assert len(titles) == 6 and not any("apex" in t or "base" in t for t in titles)


# ---------------------------------------------------------------- the transmurality bullseye: AHA layout
def _relative_luminance(colour):
    """WCAG 2 relative luminance of an sRGB colour (matplotlib colour spec)."""
    from matplotlib.colors import to_rgb

    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(a, b):
    """WCAG 2 contrast ratio (1 to 21); 4.5 is the minimum for normal text."""
    la, lb = sorted((_relative_luminance(a), _relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


#: Kim et al. (NEJM 2000) categories of a mean transmurality in % (hand-written: 0, 1-25, 26-50, 51-75, 76-100)
def kim_of(percent):
    return 0 if percent <= 0 else 1 if percent <= 25 else 2 if percent <= 50 else 3 if percent <= 75 else 4


def test_transmurality_bullseye_is_a_kim_category_map_in_the_aha_layout(monkeypatch):
    """Segment 1 at the top, septum (2-3, 8-9, 14) on the viewer's left, apical ring 13/14/15/16 centred on
    top/left/bottom/right (not rotated), segment 17 a central disc. Issue 23: the colour is the Kim et al.
    category of the mean transmurality (one colour per category, darker with the category: it no longer looks
    like the extent map), the labels are the segment number and its value in % (no unexplained 'T'), at least
    9 pt and with a WCAG contrast of at least 4.5 against their segment."""
    means = {n: [0.0, 0.05, 0.2, 0.25, 0.3, 0.45, 0.5, 0.55, 0.7, 0.75, 0.8, 0.95, 1.0, 0.0, 0.35, 0.6][n - 1]
             for n in range(1, 17)}
    aha = [{"segment": n, "name": str(n), "territory": "", "myocardium_px": 10, "scar_px": 1,
            "scar_extent_pct": 50.0, "transmurality_mean": means.get(n)} for n in range(1, 18)]
    found = segments_by_number(monkeypatch, lambda: transmurality_bullseye({"aha": aha}, "t"))
    assert sorted(found) == list(range(1, 18))
    wedges = {n: patch for n, (patch, _) in found.items() if n < 17}
    centres = {1: 90, 2: 150, 3: 210, 4: 270, 5: 330, 6: 30, 7: 90, 8: 150, 9: 210, 10: 270, 11: 330, 12: 30,
               13: 90, 14: 180, 15: 270, 16: 0}
    for n, centre in centres.items():
        w = wedges[n]
        assert ((w.theta1 + w.theta2) / 2) % 360.0 == pytest.approx(centre), n
        assert w.theta2 - w.theta1 == pytest.approx(60.0 if n <= 12 else 90.0), n
    disc = found[17][0]
    assert not hasattr(disc, "theta1") and wedges[1].r > wedges[7].r > wedges[13].r > disc.radius
    # one colour per Kim category, each category its own colour, lighter for less transmural scar
    by_category = {}
    for n, patch in wedges.items():
        by_category.setdefault(kim_of(100 * means[n]), set()).add(tuple(np.round(patch.get_facecolor(), 4)))
    assert sorted(by_category) == [0, 1, 2, 3, 4] and all(len(c) == 1 for c in by_category.values())
    lightness = [_relative_luminance(next(iter(by_category[k]))[:3]) for k in range(5)]
    assert all(a > b for a, b in zip(lightness, lightness[1:])), lightness
    # segment 17 (no chords) is not a category: not one of the five colours
    assert tuple(np.round(disc.get_facecolor(), 4)) not in set().union(*by_category.values())
    for n, (patch, text) in found.items():
        lines = text["text"].split("\n")
        assert lines[0] == str(n) and "T" not in text["text"]
        assert lines[1] == ("n/a" if means.get(n) is None else f"{100 * means[n]:.0f}%"), n
        assert text["fontsize"] >= 9 and contrast_ratio(text["color"], patch.get_facecolor()[:3]) >= 4.5, n


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


# ---------------------------------------------------------------- issue 23: "needs review" is a QC flag, at the top
@pytest.fixture(scope="module")
def p001(emidec_cases, tmp_path_factory):
    """P001 (the cardiologist's first 'needs review' case: its image septum lies 66 deg from the standard
    display's), its page and the page as Chromium lays it out."""
    label, image = case_stacks(emidec_cases, "Case_P001")
    quant = quantify_stack(label, SCHEME, SectorGeometry(), image=image.data, mvo_assessed=True)
    page = build_page(label, image, quant)
    return quant, page, measure(page, tmp_path_factory.mktemp("p001"))


def test_needs_review_case_opens_with_the_flag_banner(p001, tmp_path):
    """The banner is the first box of the page (above the identifiers), orange, and names the orientation review;
    no green 'No QC flag raised' anywhere; the territories and the segment table carry the caveat and no segment
    reads 'ok'. Checked in a Chromium screenshot: the banner's left border is orange, not green."""
    quant, page, m = p001
    assert quant["orientation"]["state"] == "needs review"
    assert "No QC flag raised" not in page
    banner = m["boxes"]["banner"]
    assert banner["box"][1] < m["boxes"]["identifiers"]["box"][1]  # at the top, before the identifiers
    assert "Review before signing" in m["texts"]["banner"] and "Orientation needs review" in m["texts"]["banner"]
    shot = screenshot(page, tmp_path, 1200, 700)
    x0, y0, _, y1 = [int(round(v)) for v in banner["box"]]
    r, g, b = shot[(y0 + y1) // 2, x0 + 3]
    assert r > 150 and 50 < g < 140 and b < 60, (r, g, b)  # orange (#c85a00), not the green of an ok report
    assert len(m["caveats"]) == 2 and all("Orientation needs review" in c for c in m["caveats"])
    header, *rows = m["tables"]["segments"]
    assert header[2] == "typical territory" and not [r for r in rows if r[-1] == "ok"]
    assert m["tables"]["territories"][0][0] == "typical territory"
    caveat = m["texts"]["territory-caveat"]  # the AHA statement's caveat on territories (Cerqueira et al. 2002)
    assert "variability" in caveat and "wrap-around LAD" in caveat and "dominant" in caveat


def test_a_review_state_is_a_flag_even_when_the_caller_passes_none(p004):
    """A hand-made orientation that needs review (the real P004 reads ok): render_report given no flags still
    opens with the orange banner naming the reason; 'not determined' gets its own, third, box."""
    label, image, quant = p004
    review = json.loads(json.dumps(quant))
    review["orientation"].update(state="needs review", review_reasons=["hand-made reason"])
    review["aha_status"] = "needs review: hand-made reason"
    page = render_report("P", {}, "s", review, [], [], [], {}, {}, [])
    assert "id='banner'" in page and "No QC flag raised" not in page
    banner = page[page.index("id='banner'"):page.index("</div>", page.index("id='banner'"))]
    assert "Review before signing: 1 QC flag" in banner and "needs review" in banner
    assert "hand-made reason" in page and page.index("id='banner'") < page.index("Patient and series")
    ok = render_report("P", {}, "s", quant, [], [], [], {}, {}, [])
    assert "No QC flag raised" in ok and "class='ok' id='orientation'" in ok
    assert "class='flag' id='orientation'" in page
    undetermined = json.loads(json.dumps(quant))
    undetermined["orientation"].update(state="not determined", not_determined=["anterior side"])
    undetermined.pop("aha")
    page = render_report("P", {}, "s", undetermined, [], [], [], {}, {}, [])
    assert "class='stop' id='orientation'" in page and "Orientation not determined" in page


# ---------------------------------------------------------------- issue 23: print layout
def _pdf_pages(page, tmp_path):
    pypdf = pytest.importorskip("pypdf", reason="pypdf reads the printed PDF (pip install .[test])")
    path, pdf = tmp_path / "print.html", tmp_path / "print.pdf"
    path.write_text(page, encoding="utf-8")
    _run_chromium(["--no-pdf-header-footer", f"--print-to-pdf={pdf}"], f"file://{path}")
    return [re.sub(r"\s+", "", p.extract_text()) for p in pypdf.PdfReader(str(pdf)).pages]


def test_print_layout_fits_a_few_a4_pages_without_splitting_a_table(p001, tmp_path):
    """Chromium's print to PDF (A4) of a 10-slice report: at most 4 pages (6-7 before), and the first and the last
    row of every table lie on the same page (the rows as Chromium laid them out, found in the PDF's text)."""
    _, page, m = p001
    pages = _pdf_pages(page, tmp_path)
    assert len(pages) <= 4, len(pages)
    checked = []
    for table, rows in m["tables"].items():
        if table == "orientation-details":  # folded on screen, not printed
            continue
        first, last = ["".join(re.sub(r"\s+", "", c) for c in row) for row in (rows[0], rows[-1])]
        on = [[k for k, text in enumerate(pages) if row in text] for row in (first, last)]
        assert on[0] and on[1], (table, first, last)
        assert set(on[0]) & set(on[1]), (table, on)
        checked.append(table)
    assert {"segments", "volumes", "territories", "kim-categories", "acquisition", "confidence"} <= set(checked)
    assert "Readersign-off" in pages[-1]


# ---------------------------------------------------------------- issue 23: where each segment is, on each slice
#: the world phantom: RV crescent 100 degrees wide (insertion points 50 deg either side of the septum)
RV_ARC_DEG, HEART_SPACING = 100.0, (1.6, 1.6, 10.0)


@pytest.fixture(scope="module")
def world_page():
    """A stack of tests/world_heart.py (anatomy in world RAS coordinates, a real oblique affine, apex first, 9
    slices), quantified as `scarnet report` does, and the world truth."""
    from world_heart import world_heart

    image, label, affine, truth = world_heart(rv_arc_deg=RV_ARC_DEG, spacing=HEART_SPACING)
    label_stack = Stack("heart.nii.gz", label, HEART_SPACING, affine)
    image_stack = Stack("heart_0000.nii.gz", image, HEART_SPACING, affine)
    quant = quantify_stack(label_stack, SCHEME, SectorGeometry(), image=image)
    return label_stack, image_stack, quant, affine, truth


def _screen(vector, affine):
    """A world direction as a unit direction in the slice pictures: x along array axis i (right), y along j
    (down)."""
    e_i, e_j = affine[:3, 0] / np.linalg.norm(affine[:3, 0]), affine[:3, 1] / np.linalg.norm(affine[:3, 1])
    d = np.array([vector @ e_i, vector @ e_j])
    return d / np.linalg.norm(d)


def _rotated(vector, axis, deg):
    t = np.radians(deg)
    return vector * np.cos(t) + np.cross(axis, vector) * np.sin(t) + axis * (axis @ vector) * (1 - np.cos(t))


def _heart_radii(k, n=9):
    """(cavity, epicardium) radius in mm of slice k of world_heart (apex first: slice k lies (n-1-k)/(n-1) of the
    way from the base to the apex)."""
    f = (n - 1 - k) / (n - 1)
    cavity = 22.0 * (1 - 0.6 * f)
    return cavity, cavity + 9.0 * (1 - 0.2 * f)


def _ring_in_shot(crop, epi_mm):
    """(centre (x, y) in px, px per mm) of the myocardium's outer contour (sky blue) in one slice picture."""
    ys, xs = np.nonzero(_colour_pixels(crop, "myocardium"))
    centre = np.array([(xs.min() + xs.max()) / 2.0, (ys.min() + ys.max()) / 2.0])
    return centre, ((xs.max() - xs.min()) + (ys.max() - ys.min())) / 4.0 / epi_mm


def test_slice_pictures_show_insertion_points_and_segment_borders_where_the_anatomy_is(world_page, tmp_path):
    """Chromium screenshots of the report of a heart placed in world coordinates. Expected positions come from the
    world anatomy, not from the code's angles: the RV insertion points (where the RV crescent meets the LV,
    50 deg either side of the LV -> RV direction, on the epicardium) carry a blue dot on every slice with an RV;
    the segment borders (drawn white, found as what disappears when the borders are left out) cross the wall at
    the septum turned by multiples of 60 deg on basal and mid slices (thirds from the base) and 45 + multiples of
    90 deg on apical ones (Cerqueira et al. 2002)."""
    label, image, quant, affine, truth = world_page
    assert quant["orientation"]["state"] == "ok" and quant.get("aha")
    page = build_page(label, image, quant)
    m = measure(page, tmp_path)
    height = int(m["height"]) + 20
    shot = screenshot(page, tmp_path, 1200, height)
    bare = json.loads(json.dumps(quant))
    for entry in bare["orientation"]["slices"].values():
        entry["segment_borders_deg"] = []
    without_borders = screenshot(build_page(label, image, bare), tmp_path, 1200, height, "bare")
    septum, apex = truth["septum"], truth["apex"]
    levels = {k: ("apical", "mid", "basal")[k // 3] for k in range(9)}  # 9 ringed slices, apex first: thirds
    for k, figure in enumerate(m["slices"]):
        x0, y0, x1, y1 = [int(round(v)) for v in figure["box"]]
        crop, crop_bare = shot[y0 + 1:y1 - 1, x0 + 1:x1 - 1], without_borders[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
        cavity, epi = _heart_radii(k)
        centre, scale = _ring_in_shot(crop, epi)
        # insertion points: a blue dot within 4 mm of each, on every slice with an RV (fraction from base < 0.85)
        dots = np.argwhere(_colour_pixels(crop, "septum"))[:, ::-1]  # (x, y)
        has_rv = (8 - k) / 8 < 0.85
        for side in (1, -1):
            expected = centre + scale * epi * _screen(_rotated(septum, apex, side * RV_ARC_DEG / 2), affine)
            near = np.linalg.norm(dots - expected, axis=1) < 4.0 * scale
            assert near.sum() >= 8 if has_rv else not near.any(), (k, side, near.sum())
        lateral = centre - scale * epi * _screen(septum, affine)  # the opposite wall: no dot there
        assert not (np.linalg.norm(dots - lateral, axis=1) < 6.0 * scale).any(), k
        # segment borders: the pixels the borders change, inside the wall, lie along the expected directions
        changed = np.abs(crop - crop_bare).sum(axis=2) > 120
        ys, xs = np.nonzero(changed)
        d = np.stack([xs, ys], axis=1) - centre
        r = np.linalg.norm(d, axis=1) / scale
        inside = (r > cavity + 1.5) & (r < epi - 1.5)
        angles = np.degrees(np.arctan2(d[inside, 1], d[inside, 0]))
        offsets = np.arange(6) * 60.0 if levels[k] != "apical" else 45.0 + np.arange(4) * 90.0
        expected = [np.degrees(np.arctan2(*_screen(_rotated(septum, apex, a), affine)[::-1])) for a in offsets]
        gap = np.array([[abs((a - e + 180.0) % 360.0 - 180.0) for e in expected] for a in angles])
        assert (gap.min(axis=1) < 10.0).mean() > 0.9, k  # the changed pixels lie along expected borders ...
        for j in range(len(expected)):  # ... and every expected border is drawn
            assert (gap[:, j] < 6.0).sum() >= 10, (k, j)


def test_wall_names_point_to_the_world_anterior_and_septum(world_page, monkeypatch):
    """The words anterior / inferior / septal / lateral written on each slice: anterior minus inferior points
    along the world's anterior wall direction, septal minus lateral along the LV -> RV direction (world_heart's
    truth projected into the slice), within 10 deg: the handedness is drawn as the anatomy has it."""
    import matplotlib.axes

    label, image, quant, affine, truth = world_page
    written = []
    original = matplotlib.axes.Axes.text

    def spy(self, x, y, s, *args, **kwargs):
        written.append((s, np.array([float(x), float(y)])))
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy)
    slice_overlays(image, label, SCHEME, quant)
    per_slice = [dict(written[i:i + 4]) for i in range(len(written))
                 if [w for w, _ in written[i:i + 4]] == ["anterior", "septal", "inferior", "lateral"]]
    assert len(per_slice) == 9
    for words in per_slice:
        for a, b, world in (("anterior", "inferior", truth["anterior"]), ("septal", "lateral", truth["septum"])):
            d = words[a] - words[b]
            got = np.degrees(np.arctan2(d[1], d[0]))
            want = np.degrees(np.arctan2(*_screen(world, affine)[::-1]))
            assert abs((got - want + 180.0) % 360.0 - 180.0) < 10.0, (a, got, want)


# ---------------------------------------------------------------- issue 23: colours for colour-blind readers
#: Machado, Oliveira & Fernandes (IEEE TVCG 2009), severity 1.0, on linear RGB
MACHADO = {"deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                                     [-0.011820, 0.042940, 0.968881]]),
           "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                                   [-0.003882, -0.048116, 1.051998]])}


def _lab(rgb255, matrix=np.eye(3)):
    """CIELAB (D65) of an sRGB colour seen through a colour-vision simulation matrix."""
    c = np.asarray(rgb255, float) / 255.0
    linear = np.clip(matrix @ np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4), 0.0, 1.0)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 216 / 24389, np.cbrt(t), (24389 / 27 * t + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_contour_colours_stay_apart_under_deuteranopia_and_protanopia(tmp_path):
    """A slice picture of a hand-made ring (64 x 64 px of 1.5 mm: blood pool r < 12 mm, myocardium to 20 mm, scar
    from 200 to 280 deg, an MVO disc of 3 mm at 16 mm / 240 deg, septum line at 0 deg). Each contour's colour is
    read from the picture where only it runs; seen through Machado et al.'s deuteranopia and protanopia, every
    two of myocardium, scar, MVO and septum line differ by a CIELAB distance of at least 20 and each keeps a
    chroma of at least 20 (not grey on the grey image). Red / green / yellow all turned olive (distance 5)."""
    from PIL import Image

    from nnunetv2_scarnet.quantification.figures import slice_overlay_png

    n, mm = 64, 1.5
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    x, y = (ii - n / 2) * mm, (jj - n / 2) * mm
    r, angle = np.hypot(x, y), np.degrees(np.arctan2(y, x)) % 360.0
    mvo_centre = 16.0 * np.array([np.cos(np.radians(240)), np.sin(np.radians(240))])
    plane = np.zeros((n, n), np.uint8)
    plane[r < 12] = 1
    plane[(r >= 12) & (r < 20)] = 2
    plane[(r >= 12) & (r < 20) & (angle > 200) & (angle < 280)] = 3
    plane[np.hypot(x - mvo_centre[0], y - mvo_centre[1]) < 3.0] = 4
    label = plane[..., None]
    image = np.choose(plane, [150, 400, 80, 600, 80]).astype(float)[..., None]
    affine = np.diag([mm, mm, 8.0, 1.0])
    path = str(tmp_path / "slice.png")
    slice_overlay_png(Stack("i.nii.gz", image, (mm, mm, 8.0), affine), Stack("l.nii.gz", label, (mm, mm, 8.0), affine),
                      SCHEME, 0, path, {"septum_deg": 0.0})
    png = np.asarray(Image.open(path).convert("RGB")).astype(float)
    px = png.shape[1] / n  # the picture shows the whole plane (the heart crop adds 30 mm around the myocardium)

    def colour_at(point_mm):
        """The most saturated colour within 1.5 mm of a point (the contour's core, not its antialiased edge)."""
        cx, cy = (np.asarray(point_mm) / mm + n / 2) * px
        w = int(round(1.5 / mm * px))
        window = png[int(cy) - w:int(cy) + w, int(cx) - w:int(cx) + w].reshape(-1, 3)
        chroma = window.max(axis=1) - window.min(axis=1)
        return window[np.argsort(chroma)[-5:]].mean(axis=0)

    def polar(radius, deg):
        return radius * np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])
    colours = {"myocardium": colour_at(polar(20.25, 90)),  # epicardium, away from the scar
               "scar": colour_at(polar(16.0, 200)),  # the scar's radial edge: only the scar contour runs there
               "mvo": colour_at(mvo_centre + polar(3.0, 330)),  # the MVO disc's edge, tangential to the wall
               "septum line": colour_at(polar(6.0, 0))}  # inside the blood pool
    for name, rgb in colours.items():
        assert rgb.max() - rgb.min() > 60, (name, rgb)  # a colour was found, not the grey image
    for vision, matrix in MACHADO.items():
        lab = {name: _lab(rgb, matrix) for name, rgb in colours.items()}
        for name, value in lab.items():
            assert np.hypot(value[1], value[2]) >= 20.0, (vision, name, value)
        names = sorted(lab)
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                distance = np.linalg.norm(lab[names[a]] - lab[names[b]])
                assert distance >= 20.0, (vision, names[a], names[b], distance)


# ---------------------------------------------------------------- issue 23: what a cvi42 or Segment report carries
def test_acquisition_coverage_method_mvo_and_sign_off_hand_worked(p004):
    """P004's quantification (6 slices of 13 mm, MVO labelled) with a hand-made change: slice 3 (index 2) lost its
    myocardium, so the LV has a missing slice. Hand-worked: DICOM Slice Thickness 8 mm and spacing 13 mm leave a
    5 mm gap; the LV spans slices 1-6 = 78 mm with slice 3 missing; both ends of the stack hold myocardium; MVO %
    of LV myocardium = MVO / myocardium; the scar method names the model and no intensity threshold; the LV mass
    carries the LGE-stack caveat; the page ends with a sign-off line. A NIfTI input has no slice thickness."""
    label, image, quant = p004
    quant = json.loads(json.dumps(quantify_stack(label, SCHEME, SectorGeometry(), image=image.data,
                                                 mvo_assessed=True)))
    quant["slices"][2]["myocardium_ml"] = 0.0
    model = {"trainer": "ScarNetTrainerLite", "dataset": "Dataset501_EMIDEC", "configuration": "2d",
             "folds": ["0", "1"], "members": 8}
    page = render_report("P", {"SeriesInstanceUID": "1.2", "SliceThickness": "8"}, "s", quant, [], [], [], model,
                         {}, [])
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td(?: class='num')?>([^<]*)</td>", page))
    assert label.spacing[2] == 13.0 and label.data.shape[2] == 6
    assert rows["Slice thickness"] == "8 mm (DICOM Slice Thickness)"
    assert rows["Slice spacing (centre to centre)"] == "13.00 mm" and rows["Gap between slices"] == "5.00 mm"
    assert rows["LV coverage"] == "slices 1 to 6, 78 mm"
    assert rows["Slices missing inside the LV"].startswith("slice 3 has no myocardium")
    assert "may go on beyond" in rows["Base"] and "may go on beyond" in rows["Apex"]
    mvo = (label.data == 4).sum() / np.isin(label.data, (2, 3, 4)).sum() * 100  # EMIDEC: 2 myo, 3 scar, 4 MVO
    assert rows["MVO % of LV myocardium"] == f"{mvo:.1f} %"
    assert "ScarNetTrainerLite" in page and "folds 0, 1, 8 ensemble members" in page
    assert "no intensity threshold (n-SD, FWHM)" in page
    assert "LGE stacks often miss the base or the apex" in page
    assert page.index("Reader sign-off") > page.index("<h2>Model</h2>") and "Signature" in page
    nifti = render_report("P", {"File": "x.nii.gz"}, "s", quant, [], [], [], {}, {}, [])
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td(?: class='num')?>([^<]*)</td>", nifti))
    assert rows["Slice thickness"].startswith("not recorded (NIfTI")
    assert rows["Gap between slices"] == "n/a (slice thickness not known)"


@pytest.mark.parametrize("order_known", [True, False])
def test_coverage_of_an_lv_on_the_stack_s_first_slice_only(order_known):
    """Review 2026-12-05: a prediction with LV myocardium on one slice only, the stack's first of 6 (hand-made
    quantification). That slice is both base and apex and it is the end of the stack, so the LV may go on beyond
    it. The coverage rows said 'the stack goes beyond it' (the LV's first and last slice were one dict key, and the
    'last slice of the stack?' answer overwrote the 'first slice?' one)."""
    quant = {"slices": [{"slice": k, "myocardium_ml": 5.0 if k == 0 else 0.0} for k in range(6)],
             "patient": {"spacing_mm": [1.0, 1.0, 10.0]},
             "orientation": {"apex_first": False, "sources": {"slice_order": "geometry" if order_known else "labels"},
                             "confidences": {"slice_order": 0.9 if order_known else 0.0}}}
    page = render_report("P", {}, "s", quant, [], [], [], {}, {}, [])
    rows = {k: html_lib.unescape(v) for k, v in
            re.findall(r"<tr><td>([^<]+)</td><td(?: class='num')?>([^<]*)</td>", page)}
    assert rows["LV coverage"] == "slices 1 to 1, 10 mm"
    if order_known:
        assert rows["Base"].startswith("slice 1: the stack's end slice holds LV myocardium"), rows["Base"]
        assert "may go on beyond" in rows["Apex"], rows["Apex"]
    else:
        assert "end slice(s) 1" in rows["Base and apex"], rows["Base and apex"]


def test_second_opinion_row_names_the_cue_that_confirmed_an_image_only_septum():
    """Hand-made orientations (angles: 0 = right of the pictures, 90 = down, 180 = the viewer's left = 9 o'clock;
    30 degrees = one clock hour). Papillary septum 15 degrees from the septum: confirmed by the muscles; septum 30
    degrees from the viewer's left with no muscles measured: the display agrees (30 <= 30); septum at 100 with the
    muscles at 200: 80 degrees from the display and 100 from the muscles, no cue; a septum from the file's
    geometry needs no second opinion (no row)."""
    from nnunetv2_scarnet.report.html_orientation import second_opinion_text

    image = {"sources": {"septum": "image"}}
    assert second_opinion_text(dict(image, septum_deg=200.0, papillary_septum_deg=185.0)) == (
        "confirmed by the papillary muscles: the septum opposite the papillary muscles is at 9 o'clock, 15 degrees "
        "away (within 30)")
    assert second_opinion_text(dict(image, septum_deg=150.0, papillary_septum_deg=None)) == (
        "consistent with the standard short-axis display (septum on the viewer's left, 30 degrees away, within 30); "
        "the papillary muscles could not be measured")
    assert second_opinion_text(dict(image, septum_deg=100.0, papillary_septum_deg=200.0)) == (
        "none: 80 degrees from the standard display's septum and the septum opposite the papillary muscles is at "
        "9:30, 100 degrees away (each must be within 30 to confirm it)")
    assert second_opinion_text({"sources": {"septum": "geometry"}, "septum_deg": 200.0}) is None
    page = orientation_section({"orientation": dict(image, septum_deg=200.0, papillary_septum_deg=185.0,
                                                    state="ok", slices={})})
    assert "Second opinion on the septum" in page and "confirmed by the papillary muscles" in page
