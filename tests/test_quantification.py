"""Quantification: EMIDEC manifest volumes reproduced on all real patients; hand-worked small examples."""
import json
import os

import nibabel as nib
import numpy as np
import pytest

from bullseye_spy import drawn_segments
from conftest import EMIDEC_DEV
from nnunetv2_scarnet.quantification import LabelScheme, SectorGeometry, quantify_case, quantify_folder
from nnunetv2_scarnet.quantification.label_scheme import Stack
from nnunetv2_scarnet.quantification.sectors import aha_segments, stack_sectors
from nnunetv2_scarnet.quantification.volumes import patient_volumes, slice_volumes


def test_manifest_volumes_reproduced_for_every_patient(emidec_cases):
    manifest = json.load(open(os.path.join(EMIDEC_DEV, "manifest.json")))
    assert len(manifest["patients"]) == 62
    for patient in manifest["patients"]:
        # EMIDEC's labels carry MVO (its README declares value 4): a patient without MVO has 0 mL, not "not assessed"
        result = quantify_case(os.path.join(emidec_cases, patient["patient_id"], "label.nii.gz"), LabelScheme(),
                               SectorGeometry(), mvo_assessed=True)
        volumes = patient["volumes"]
        assert result["patient"]["myocardium_ml"] == pytest.approx(volumes["myocardium_ml"], abs=0.1)
        assert result["patient"]["scar_ml"] == pytest.approx(volumes["infarct_ml"], abs=0.1)
        assert result["patient"]["mvo_ml"] == pytest.approx(volumes["mvo_ml"], abs=0.1)
        assert result["patient"]["blood_pool_ml"] == pytest.approx(volumes["lv_cavity_ml"], abs=0.1)
        voxel = np.prod(patient["spacing_mm"]) / 1000
        for row, expected in zip(result["slices"], patient["slices"]):
            assert row["myocardium_ml"] == pytest.approx(expected["myo_px"] * voxel, rel=1e-4, abs=1e-9)
            assert row["scar_ml"] == pytest.approx(expected["infarct_px"] * voxel, rel=1e-4, abs=1e-9)


def ring_label(shape=(64, 64, 3), center=(32, 32), r_in=10, r_out=16):
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    radius = np.hypot(ii - center[0], jj - center[1])
    label = np.zeros(shape, np.int16)
    for k in range(shape[2]):
        label[..., k][radius < r_in] = 1
        label[..., k][(radius >= r_in) & (radius < r_out)] = 2
    return label, radius, ii, jj


def test_hand_example_volumes_mass_and_empty_slice():
    label = np.zeros((10, 10, 3), np.int16)
    label[2:6, 2:6, 0] = 2          # 16 myocardium px
    label[2:4, 2:6, 0] = 3          # 8 of them scar
    label[0, 0, 0] = 4              # 1 MVO px (counts as myocardium and scar)
    label[5:7, 5:7, 2] = 1          # slice 2: blood pool only
    stack = Stack("hand", label, (1.5, 2.0, 10.0), np.diag([1.5, 2.0, 10.0, 1.0]))  # 30 uL voxels
    rows = slice_volumes(stack, LabelScheme())
    assert rows[0]["myocardium_ml"] == pytest.approx(17 * 0.03)
    assert rows[0]["scar_ml"] == pytest.approx(9 * 0.03)
    assert rows[0]["mvo_ml"] == pytest.approx(0.03)
    assert rows[0]["scar_pct_slice_myocardium"] == pytest.approx(100 * 9 / 17)
    assert rows[1]["status"] == rows[2]["status"] == "no_myocardium" and rows[1]["scar_pct_slice_myocardium"] is None
    assert rows[2]["blood_pool_ml"] == pytest.approx(4 * 0.03)
    patient = patient_volumes(stack, LabelScheme(), rows)
    assert patient["myocardium_g"] == pytest.approx(17 * 0.03 * 1.05)
    assert patient["scar_g"] == pytest.approx(9 * 0.03 * 1.05)
    assert patient["slices_without_myocardium"] == [1, 2]


def test_slices_csv_tells_a_slice_s_own_percentage_from_its_share_of_the_lv(tmp_path):
    """Issue 23: slices.csv's `scar_pct_lvm` was each slice's scar as % of that slice's myocardium (P002's added up
    to 172 %). Hand-worked: slice 0 holds 20 myocardium px of which 10 scar, slice 1 60 px of which 6 scar, slice
    2 none. Of its own myocardium: 50 % and 10 %; of the LV's 80 px: 12.5 % and 7.5 %, which add up to the
    patient's 16 / 80 = 20 %."""
    import csv

    label = np.zeros((12, 12, 3), np.int16)
    label[0:4, 0:5, 0] = 2
    label[0:2, 0:5, 0] = 3
    label[0:6, 0:10, 1] = 2
    label[0:1, 0:6, 1] = 3
    folder = tmp_path / "labels"
    folder.mkdir()
    nib.save(nib.Nifti1Image(label, np.diag([1.0, 1.0, 5.0, 1.0])), str(folder / "hand.nii.gz"))
    quantify_folder(str(folder), str(tmp_path / "report"), pictures=False)
    rows = list(csv.DictReader(open(tmp_path / "report" / "slices.csv")))
    assert "scar_pct_lvm" not in rows[0]  # the misleading name is gone, not given another meaning
    assert [float(r["scar_pct_slice_myocardium"]) for r in rows[:2]] == [pytest.approx(50.0), pytest.approx(10.0)]
    assert [float(r["scar_share_pct_lvm"]) for r in rows[:2]] == [pytest.approx(12.5), pytest.approx(7.5)]
    assert rows[2]["scar_pct_slice_myocardium"] == rows[2]["scar_share_pct_lvm"] == ""
    (patient,) = csv.DictReader(open(tmp_path / "report" / "patients.csv"))
    assert float(patient["scar_pct_lvm"]) == pytest.approx(20.0)
    assert sum(float(r["scar_share_pct_lvm"]) for r in rows[:2]) == pytest.approx(float(patient["scar_pct_lvm"]))


def test_sector_extent_and_transmurality_hand_example():
    label, radius, ii, jj = ring_label()
    # scar in the quadrant of angles 0..90 deg (i > 32, j > 32), inner half of the wall only (r < 13)
    quadrant = (ii > 32) & (jj > 32)
    scar = quadrant & (radius >= 10) & (radius < 13)
    label[..., 1][scar] = 3
    stack = Stack("ring", label, (1.0, 1.0, 8.0), np.diag([1.0, 1.0, 8.0, 1.0]))
    rows = [r for r in stack_sectors(stack, LabelScheme(), SectorGeometry(n_sectors=4, origin_deg=0.0)) if
            r["slice"] == 1]
    assert [r["sector"] for r in rows] == [0, 1, 2, 3]
    myo = (radius >= 10) & (radius < 16)
    angle = np.degrees(np.arctan2(jj - 32, ii - 32)) % 360
    in_sector0 = myo & (angle < 90)
    assert rows[0]["myocardium_px"] == int(in_sector0.sum())
    assert rows[0]["scar_extent_pct"] == pytest.approx(100 * (in_sector0 & scar).sum() / in_sector0.sum())
    # scar fills the inner 3 of 6 mm: chords read 0.5 (the old wedge-area share read (13^2-10^2)/(16^2-10^2) =
    # 0.44); chords at the quadrant's pixel-stepped edges are partly scar-free or cut the jagged border
    assert 0.42 < rows[0]["transmurality_mean"] <= 0.53
    assert 0.48 <= rows[0]["transmurality_max"] <= 0.6
    assert rows[0]["n_chords"] == 25
    assert all(r["scar_px"] == 0 and r["transmurality_max"] == 0 for r in rows[1:])


def test_aha_segments_follow_the_septum():
    label, radius, ii, jj = ring_label(shape=(64, 64, 6))
    angle = np.degrees(np.arctan2(jj - 32, ii - 32))
    septal = (np.abs(angle - 180) < 25) | (np.abs(angle + 180) < 25)
    for k in range(6):
        label[..., k][septal & (label[..., k] == 2)] = 3
    stack = Stack("aha", label, (1.0, 1.0, 8.0), np.diag([1.0, 1.0, 8.0, 1.0]))
    segments = {s["segment"]: s for s in aha_segments(stack, LabelScheme(), septum_deg=180.0)}
    scarred = {n for n, s in segments.items() if s["scar_px"] > 0}
    assert scarred == {2, 3, 8, 9, 14}
    assert segments[14]["scar_extent_pct"] > segments[2]["scar_extent_pct"]  # 90 deg apical vs 60 deg basal
    for number in (2, 3):  # 25 of the segment's 60 degrees, up to pixel discretisation
        assert segments[number]["scar_extent_pct"] == pytest.approx(100 * 25 / 60, abs=6)


def test_folder_report_files(emidec_cases, tmp_path):
    labels, images = tmp_path / "labels", tmp_path / "images"
    labels.mkdir()
    images.mkdir()
    for case in ("Case_N012", "Case_P002"):
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), labels / f"{case}.nii.gz")
        os.symlink(os.path.join(emidec_cases, case, "image.nii.gz"), images / f"{case}_0000.nii.gz")
    out = tmp_path / "report"
    report = quantify_folder(str(labels), str(out), str(images))  # automatic orientation by default
    assert [c["case"] for c in report["cases"]] == ["Case_N012", "Case_P002"]
    for name in ("patients.csv", "slices.csv", "sectors.csv", "aha.csv", "report.json", "Case_P002_overlay.png",
                 "Case_P002_bullseye.png"):
        assert (out / name).stat().st_size > 0, name
    assert report["cases"][0]["patient"]["scar_ml"] == 0.0
    saved = json.load(open(out / "report.json"))["cases"][1]["orientation"]
    assert set(saved) >= {"septum_direction_ras", "apex_first", "source", "confidence", "septum_deg", "direction"}
    assert saved["apex_first"] is True and saved["source"] == "image"
    import csv
    rows = [r for r in csv.DictReader(open(out / "aha.csv")) if r["case"] == "Case_P002"]
    assert [r["segment"] for r in rows] == [str(n) for n in range(1, 18)]
    assert {r["territory"] for r in rows} == {"LAD", "RCA", "LCx"}
    assert {r["transmurality_category"] for r in rows} >= {"0%", "76-100%"}


def test_unknown_label_value_is_refused(tmp_path):
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.full((4, 4, 2), 9, np.uint8), np.eye(4)), path)
    with pytest.raises(ValueError, match="bad.nii.gz: label values \\[9\\]"):
        quantify_case(str(path), LabelScheme(), SectorGeometry())


def test_folder_with_mismatched_image_writes_nothing(emidec_cases, tmp_path):
    labels, images = tmp_path / "labels", tmp_path / "images"
    labels.mkdir()
    images.mkdir()
    os.symlink(os.path.join(emidec_cases, "Case_N012", "label.nii.gz"), labels / "Case_N012.nii.gz")
    os.symlink(os.path.join(emidec_cases, "Case_P001", "label.nii.gz"), labels / "Case_P001.nii.gz")
    os.symlink(os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), images / "Case_N012_0000.nii.gz")
    os.symlink(os.path.join(emidec_cases, "Case_N014", "image.nii.gz"), images / "Case_P001_0000.nii.gz")
    with pytest.raises(ValueError, match="Case_P001.nii.gz: geometry differs from image .*Case_P001_0000.nii.gz"):
        quantify_folder(str(labels), str(tmp_path / "report"), str(images))
    assert not (tmp_path / "report").exists()


def test_mvo_reported_when_labels_carry_it_and_not_assessed_when_merged(emidec_cases, tmp_path):
    manifest = {p["patient_id"]: p for p in json.load(open(os.path.join(EMIDEC_DEV, "manifest.json")))["patients"]}
    path = os.path.join(emidec_cases, "Case_P002", "label.nii.gz")
    result = quantify_case(path, LabelScheme(), SectorGeometry())
    p, volumes = result["patient"], manifest["Case_P002"]["volumes"]
    assert p["mvo_status"] == "assessed" and p["mvo_ml"] > 0
    assert p["mvo_ml"] == pytest.approx(volumes["mvo_ml"], abs=0.1)
    assert p["mvo_pct_lvm"] == pytest.approx(100 * p["mvo_ml"] / p["myocardium_ml"])
    assert p["mvo_pct_infarct"] == pytest.approx(100 * volumes["mvo_ml"] / volumes["infarct_ml"], abs=0.5)
    # the converter's default merges MVO into scar (label 4 -> 3, dataset.json without "mvo")
    merged = np.asarray(nib.load(path).dataobj).copy()
    merged[merged == 4] = 3
    folder = tmp_path / "pred"
    folder.mkdir()
    nib.save(nib.Nifti1Image(merged, nib.load(path).affine), folder / "Case_P002.nii.gz")
    (folder / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3}}))
    report = quantify_folder(str(folder), str(tmp_path / "report"), pictures=False)
    p = report["cases"][0]["patient"]
    assert p["mvo_ml"] is None and p["mvo_status"].startswith("not_assessed") and p["mvo_pct_infarct"] is None
    assert all(row["mvo_ml"] is None for row in report["cases"][0]["slices"])
    assert p["scar_ml"] == pytest.approx(volumes["infarct_ml"], abs=0.1)
    with open(tmp_path / "report" / "patients.csv") as f:
        header, row = f.readline().strip().split(","), f.readline().strip().split(",")
    assert dict(zip(header, row))["mvo_ml"] == ""
    # explicit: labels from a merged model read with the default scheme
    p = quantify_case(str(folder / "Case_P002.nii.gz"), LabelScheme(), SectorGeometry(), mvo_assessed=False)["patient"]
    assert p["mvo_ml"] is None


def test_overlay_is_drawn_as_a_cmr_viewer_shows_the_array(tmp_path, monkeypatch):
    """i as columns, j as rows from the top (origin upper): a bright spot at small j must appear near the top."""
    import matplotlib.axes

    from nnunetv2_scarnet.quantification.figures import overlay_png

    label, radius, ii, jj = ring_label(shape=(64, 64, 2))
    image = np.full(label.shape, 100, np.int16)
    image[30:34, 2:6, :] = 4000  # small j: top of the display
    shown = []
    original = matplotlib.axes.Axes.imshow

    def spy(self, data, *args, **kwargs):
        shown.append((np.asarray(data), kwargs.get("origin")))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", spy)
    affine = np.diag([1.0, 1.0, 8.0, 1.0])
    overlay_png(Stack("img", image, (1.0, 1.0, 8.0), affine), Stack("lab", label, (1.0, 1.0, 8.0), affine),
                LabelScheme(), str(tmp_path / "o.png"), orientation={"septum_deg": 180.0, "apex_first": True})
    data, origin = shown[0]
    assert origin in (None, "upper")
    rows, cols = np.nonzero(data == 4000)
    assert rows.max() < data.shape[0] / 2 and abs(cols.mean() - data.shape[1] / 2) < 4  # top centre


def test_overlay_labels_apex_and_base_only_when_the_slice_order_is_known(tmp_path, axes_titles):
    """Issue 15: a slice order read from the LV size with a weak Spearman (inconclusive, no AHA table) must not be
    shown as apex/base on the overlay; a confident one is."""
    from nnunetv2_scarnet.quantification.figures import overlay_png

    label, radius, ii, jj = ring_label(shape=(64, 64, 3))
    image = np.full(label.shape, 100, np.int16)
    titles = axes_titles
    affine = np.diag([1.0, 1.0, 8.0, 1.0])
    stacks = (Stack("img", image, (1.0, 1.0, 8.0), affine), Stack("lab", label, (1.0, 1.0, 8.0), affine))
    weak = {"septum_deg": 180.0, "apex_first": True, "sources": {"slice_order": "labels"},
            "confidences": {"slice_order": 0.2}}
    overlay_png(*stacks, LabelScheme(), str(tmp_path / "weak.png"), orientation=weak)
    assert titles == ["slice 0", "slice 1", "slice 2"]
    titles.clear()
    confident = {**weak, "confidences": {"slice_order": 0.9}}
    overlay_png(*stacks, LabelScheme(), str(tmp_path / "confident.png"), orientation=confident)
    assert titles == ["slice 0 (apex)", "slice 1", "slice 2 (base)"]


def test_aha_slice_septum_override_moves_only_that_slices_scar():
    """A slice's own septum (bisector of its RV insertion points) sets that slice's segment borders: turning it
    by 60 deg moves that slice's scar into the neighbouring segment and leaves every other slice as it was."""
    from nnunetv2_scarnet.quantification.aha import aha_table, stack_levels

    label, radius, ii, jj = ring_label(shape=(64, 64, 6))
    angle = np.degrees(np.arctan2(jj - 32, ii - 32))
    # septum 180, direction -1 (standard display): 2|3 border at 180, segment 3 (9) spans 180..120 deg
    inferoseptal = np.abs(angle - 150.0) < 15.0
    for k in range(6):
        label[..., k][inferoseptal & (label[..., k] == 2)] = 3
    myo, scar, _, pool = LabelScheme().masks(label)
    levels = stack_levels(myo, pool, apex_first=True)
    basal = sorted(k for k, level in levels.items() if level == "basal")
    assert basal == [4, 5]

    def scar_by_segment(per_slice):
        rows = aha_table(myo, scar, pool, (1.0, 1.0, 8.0), 180.0, -1, True, per_slice)
        return {r["segment"]: r["scar_px"] for r in rows if r["scar_px"]}

    in_slice = {k: int((scar[..., k] & myo[..., k]).sum()) for k in range(6)}
    plain = scar_by_segment(None)
    assert set(plain) == {3, 9, 14}
    assert plain[3] == in_slice[4] + in_slice[5]
    moved = scar_by_segment({5: 120.0})  # slice 5's septum 60 deg inferior: its scar is now anteroseptal (2)
    assert moved == {2: in_slice[5], 3: in_slice[4], 9: plain[9], 14: plain[14]}
    back = scar_by_segment({5: 240.0})  # 60 deg the other way: slice 5's scar is inferior (4)
    assert back == {3: in_slice[4], 4: in_slice[5], 9: plain[9], 14: plain[14]}
    mid = scar_by_segment({2: 120.0})  # a mid slice: only its scar moves, 9 -> 8
    assert mid[8] == in_slice[2] and mid[9] == plain[9] - in_slice[2] and mid[3] == plain[3]

def test_aha_bullseye_geometry(tmp_path, monkeypatch):
    """Drawn AHA bullseye: segment 1 at the top (60-120 deg), septal segments 2-3 / 8-9 on the viewer's left,
    counter-clockwise; apical ring not rotated: 13 at 45-135 (top), 14 at 135-225 (left), 15 bottom, 16 right;
    17 is the central disc; basal ring outermost. Wedges are told apart by their colour (unique scar extent)."""
    from nnunetv2_scarnet.quantification import figures

    segments = [{"segment": n, "scar_extent_pct": 5.0 * n, "transmurality_mean": None, "myocardium_px": 10}
                for n in range(1, 18)]
    path = tmp_path / "b.png"
    wedges, discs = drawn_segments(monkeypatch, lambda: figures.aha_bullseye_png(segments, str(path), "t"),
                                   lambda n: 5.0 * n / 100.0)
    assert path.stat().st_size > 0
    assert sorted(wedges) == list(range(1, 17))
    circles = [disc for _, disc in discs]
    assert [n for n, _ in discs] == [17] and tuple(circles[0].center) == (0, 0)

    def span(n):
        return wedges[n].theta1 % 360.0, (wedges[n].theta2 - wedges[n].theta1)

    expected = {1: 60, 2: 120, 3: 180, 4: 240, 5: 300, 6: 0, 7: 60, 8: 120, 9: 180, 10: 240, 11: 300, 12: 0,
                13: 45, 14: 135, 15: 225, 16: 315}
    for n, start in expected.items():
        width = 60.0 if n <= 12 else 90.0
        assert span(n) == pytest.approx((start, width)), n
    for n in (2, 3, 8, 9, 14):  # septal: centred on the viewer's left half (90..270 deg)
        centre = np.radians(wedges[n].theta1 + (wedges[n].theta2 - wedges[n].theta1) / 2)
        assert np.cos(centre) < 0, n
    # apical ring not rotated: 13/14/15/16 centred exactly on top/left/bottom/right
    for n, centre in ((13, 90.0), (14, 180.0), (15, 270.0), (16, 0.0)):
        assert ((wedges[n].theta1 + wedges[n].theta2) / 2) % 360.0 == pytest.approx(centre), n
    # rings: basal outermost, then mid, apical; the centre disc inside the apical ring
    assert wedges[1].r > wedges[7].r > wedges[13].r > circles[0].radius
    assert wedges[13].r - wedges[13].width == pytest.approx(circles[0].radius)


def test_uncompressed_nifti_cases_are_quantified_not_skipped(emidec_cases, tmp_path):
    """.nii labels and images count like .nii.gz (issue 13 item 10); other formats and duplicates are refused."""
    labels, images = tmp_path / "labels", tmp_path / "images"
    labels.mkdir()
    images.mkdir()
    os.symlink(os.path.join(emidec_cases, "Case_N012", "label.nii.gz"), labels / "Case_N012.nii.gz")
    os.symlink(os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), images / "Case_N012_0000.nii.gz")
    for name, target in (("label", labels / "Case_P002.nii"), ("image", images / "Case_P002_0000.nii")):
        nib.save(nib.load(os.path.join(emidec_cases, "Case_P002", f"{name}.nii.gz")), str(target))
    report = quantify_folder(str(labels), str(tmp_path / "report"), str(images), pictures=False)
    assert [c["case"] for c in report["cases"]] == ["Case_N012", "Case_P002"]
    p002 = report["cases"][1]
    assert p002["image_file"] == str(images / "Case_P002_0000.nii")
    manifest = {p["patient_id"]: p for p in json.load(open(os.path.join(EMIDEC_DEV, "manifest.json")))["patients"]}
    assert p002["patient"]["scar_ml"] == pytest.approx(manifest["Case_P002"]["volumes"]["infarct_ml"], abs=0.1)
    with open(tmp_path / "report" / "patients.csv") as f:
        assert [row.split(",")[0] for row in f.read().splitlines()[1:]] == ["Case_N012", "Case_P002"]
    # one case in two files: refused, naming both
    os.symlink(os.path.join(emidec_cases, "Case_P002", "label.nii.gz"), labels / "Case_P002.nii.gz")
    with pytest.raises(ValueError, match="Case_P002 is in two files, Case_P002.nii and Case_P002.nii.gz"):
        quantify_folder(str(labels), str(tmp_path / "again"), pictures=False)
    os.remove(labels / "Case_P002.nii.gz")
    # label maps in a format scarnet does not read are named, not skipped
    (labels / "Case_P003.mha").write_bytes(b"not read")
    with pytest.raises(ValueError, match="Case_P003.mha: not NIfTI"):
        quantify_folder(str(labels), str(tmp_path / "again"), pictures=False)
    assert not (tmp_path / "again").exists()
