"""Automatic orientation: hearts placed in world (RAS) coordinates and sampled on oblique short-axis planes with real
affines, under every flip/transpose of the array; EMIDEC-like phantoms with an axis-aligned affine; the real EMIDEC
patients (Case_P002's inferior infarct, slice order, septum agreement with a reading of the images); user
overrides and the 'needs the user' / 'needs review' outcomes."""
import itertools
import json
import os

import nibabel as nib
import numpy as np
import pytest

from conftest import EMIDEC_DEV, REPO
from world_heart import world_heart
from nnunetv2_scarnet.data.phantom import make_oriented_phantom
from nnunetv2_scarnet.quantification import LabelScheme, SectorGeometry, quantify_case
from nnunetv2_scarnet.quantification.label_scheme import Stack
from nnunetv2_scarnet.quantification.geometry import inplane_world
from nnunetv2_scarnet.quantification.orientation import (find_orientation, has_patient_orientation,
                                                         septum_from_image, slice_order_from_labels, wrap_deg)
from nnunetv2_scarnet.quantification.report import quantify_stack

INFERIOR = {4, 10, 15}
INFERIOR_OR_INFEROLATERAL = {4, 5, 10, 11, 15, 16}


def axis_aligned_affine(septum_deg, direction, apex_first, spacing):
    """EMIDEC-like affine: spacing only (no patient orientation), with the handedness of the anatomy."""
    sign = -direction * (1 if apex_first else -1)
    affine = np.diag([spacing[0], spacing[1], spacing[2] * sign, 1.0])
    t = np.radians(septum_deg)
    septum = affine[:3, :3] @ np.array([np.cos(t) / spacing[0], np.sin(t) / spacing[1], 0.0])
    return affine, septum / np.linalg.norm(septum)


def flipped_and_transposed(arrays, affine):
    """Every combination of flips of the 3 axes and a transpose of the in-plane axes, with the affine that keeps
    each voxel at its world position."""
    for flips in itertools.product((False, True), repeat=3):
        for transpose in (False, True):
            data, a = list(arrays), affine.copy()
            for axis, flip in enumerate(flips):
                if flip:
                    f = np.eye(4)
                    f[axis, axis], f[axis, 3] = -1.0, data[0].shape[axis] - 1
                    data, a = [np.flip(d, axis) for d in data], a @ f
            if transpose:
                data, a = [np.swapaxes(d, 0, 1) for d in data], a @ np.eye(4)[[1, 0, 2, 3]]
            yield flips, transpose, [np.ascontiguousarray(d) for d in data], a


def angle_between(u, v):
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))))


def scar_by_segment(result):
    return {s["segment"]: s["scar_px"] for s in result["aha"]}


WORLD_HEARTS = {"textbook": dict(), "rv_turned_20_base_first": dict(rv_turn_deg=20.0, apex_first=False),
                "tilted_axis_rv_turned_-20": dict(apex_dir=(-1.0, 0.6, -1.3), rv_turn_deg=-20.0, inplane_turn_deg=200.0)}


def world_stack(lab, a):
    zooms = tuple(float(z) for z in np.linalg.norm(a[:3, :3], axis=0))
    return Stack("heart.nii.gz", lab.astype(np.int16), zooms, a)


@pytest.mark.parametrize("name", sorted(WORLD_HEARTS))
def test_world_heart_on_oblique_planes_under_every_flip_and_transpose(name):
    """RV placed right-anterior of the LV in patient space (turned up to 20 deg about the long axis), sampled on
    oblique short-axis planes: the septum points at the RV, geometry and image agree without warnings, the
    inferior scar lands in inferior segments, whatever the array's flips and transposition."""
    image, label, affine, truth = world_heart(**WORLD_HEARTS[name])
    assert has_patient_orientation(affine)
    apex_first = WORLD_HEARTS[name].get("apex_first", True)
    seen = 0
    for flips, transpose, (img, lab), a in flipped_and_transposed([image, label], affine):
        result = quantify_stack(world_stack(lab, a), LabelScheme(), SectorGeometry(), image=img)
        o, where = result["orientation"], f"{name} flips={flips} transpose={transpose}"
        assert o["apex_first"] == (apex_first != flips[2]), where
        assert o["source"] == "geometry+image" and o["sources"]["septum"] == "geometry+image", where
        assert angle_between(o["septum_direction_ras"], truth["septum"]) < 15.0, where
        assert o["warnings"] == [] and result["aha_status"] == "ok", (where, o["warnings"])
        anterior_deg = o["septum_deg"] - 90.0 * o["direction"]  # module convention, checked against the world
        plane_anterior = truth["anterior"] - (truth["anterior"] @ truth["apex"]) * truth["apex"]
        zooms = np.linalg.norm(a[:3, :3], axis=0)
        assert angle_between(inplane_world(a, zooms[:2], anterior_deg), plane_anterior) < 15.0, where
        scar = scar_by_segment(result)
        assert max(scar, key=scar.get) in INFERIOR, (where, scar)
        assert sum(scar[s] for s in INFERIOR_OR_INFEROLATERAL | {3, 9}) == sum(scar.values()), where
        seen += 1
    assert seen == 16


def test_geometry_alone_is_within_30_deg_of_the_world_rv():
    """Without an image the geometric prior (RV right-anterior) is within 30 deg of where the RV was placed (up to
    20 deg off the textbook direction) on every world heart and every flip/transpose."""
    for name, kwargs in WORLD_HEARTS.items():
        _, label, affine, truth = world_heart(**kwargs)
        for flips, transpose, (lab,), a in flipped_and_transposed([label], affine):
            o = quantify_stack(world_stack(lab, a), LabelScheme(), SectorGeometry())["orientation"]
            where = f"{name} flips={flips} transpose={transpose}"
            assert o["sources"]["septum"] == "geometry" and o["sources"]["handedness"] == "geometry", where
            assert angle_between(o["septum_direction_ras"], truth["septum"]) <= 20.5, where


@pytest.mark.parametrize("septum_deg, direction, apex_first", [(150.0, -1, True), (-100.0, -1, False)])
def test_axis_aligned_phantom_recovered_under_every_flip_and_transpose(septum_deg, direction, apex_first):
    """EMIDEC-like affine (no patient orientation): septum from the image, handedness ASSUMED from the affine's
    determinant (stated in `assumptions`, capped confidence); the phantom has no papillary muscles (no second image
    opinion), so the status is 'ok' only for the variants whose array is in the standard display (septum within 30 deg
    of the viewer's left, anterior up), 'needs review' for the others."""
    image, label, spacing = make_oriented_phantom(3, septum_deg, apex_first, direction, "inferior")
    affine, septum_ras = axis_aligned_affine(septum_deg, direction, apex_first, spacing)
    t = np.radians(septum_deg - 90.0 * direction)  # the phantom's anterior wall, through the same affine
    anterior_ras = affine[:3, :3] @ np.array([np.cos(t) / spacing[0], np.sin(t) / spacing[1], 0.0])
    assert not has_patient_orientation(affine)
    seen, statuses = 0, set()
    for flips, transpose, (img, lab), a in flipped_and_transposed([image, label], affine):
        zooms = tuple(float(z) for z in np.linalg.norm(a[:3, :3], axis=0))
        result = quantify_stack(Stack("phantom.nii.gz", lab.astype(np.int16), zooms, a), LabelScheme(),
                                SectorGeometry(), image=img)
        # the variant's true septum angle in its array, from the world septum: standard display or not
        m = a[:3, :3] / np.array(zooms)
        true_deg = np.degrees(np.arctan2(septum_ras @ m[:, 1], septum_ras @ m[:, 0]))
        anterior_deg = np.degrees(np.arctan2(anterior_ras @ m[:, 1], anterior_ras @ m[:, 0]))
        true_direction = 1 if wrap_deg(true_deg - anterior_deg) > 0 else -1  # anterior = septum - 90 * direction
        in_display = abs(wrap_deg(true_deg - 180.0)) <= 20.0 and true_direction == -1
        out_of_display = abs(wrap_deg(true_deg - 180.0)) >= 40.0 or true_direction == 1
        o = result["orientation"]
        where = f"flips={flips} transpose={transpose}"
        assert o["apex_first"] == (apex_first != flips[2]), where
        assert o["source"] == "image" and o["papillary_septum_deg"] is None, where
        assert angle_between(o["septum_direction_ras"], septum_ras) < 15.0, where
        if in_display:
            assert result["aha_status"] == "ok", (where, result["aha_status"])
        if out_of_display:
            assert result["aha_status"].startswith("needs review: septum from the image alone"), where
        statuses.add(result["aha_status"] == "ok")
        assert o["sources"]["handedness"].startswith("assumed") and o["confidences"]["handedness"] <= 0.5, where
        assert [w for w in o["warnings"] if not w.startswith("handedness assumed")] == [], where
        scar = scar_by_segment(result)
        assert max(scar, key=scar.get) in INFERIOR, (where, scar)
        assert sum(scar[s] for s in INFERIOR_OR_INFEROLATERAL | {3, 9}) == sum(scar.values()), where
        assert len(o["insertion_points_deg"]) >= 4, where
        for anterior, inferior in o["insertion_points_deg"].values():  # RV spans +-60 deg around the septum
            assert wrap_deg(anterior - o["septum_deg"]) * o["direction"] == pytest.approx(-60, abs=15), where
            assert wrap_deg(inferior - o["septum_deg"]) * o["direction"] == pytest.approx(60, abs=15), where
        seen += 1
    assert seen == 16 and statuses == {True, False}


def test_mirrored_array_without_mirrored_affine_is_said_to_be_assumed():
    """A mirrored array stored with the unmirrored affine cannot be detected without a patient orientation: the
    inferior scar lands anteriorly, so the output must say the handedness is assumed (`handedness`, `assumptions`)
    and cap its confidence. The assumption is stated, not raised as a warning (every NIfTI without a patient
    orientation carries it; docs/report.md)."""
    image, label, spacing = make_oriented_phantom(3, 180.0, True, -1, "inferior")
    affine, _ = axis_aligned_affine(180.0, -1, True, spacing)
    mirrored = [np.ascontiguousarray(np.flip(x, 1)) for x in (image, label)]
    result = quantify_stack(Stack("m.nii.gz", mirrored[1].astype(np.int16), spacing, affine), LabelScheme(),
                            SectorGeometry(), image=mirrored[0])
    o = result["orientation"]
    assert o["handedness"] == "assumed" and o["sources"]["handedness"].startswith("assumed")
    assert any(a.startswith("handedness assumed from the affine's determinant") for a in o["assumptions"])
    assert not any("handedness" in w for w in o["warnings"])
    assert o["confidences"]["handedness"] <= 0.5 and o["confidence"] <= 0.5


def test_plateau_septum_is_the_same_under_the_8_inplane_flips_and_transposes():
    """An RV narrower than the 120-degree arc gives a flat-topped window: the septum (as a world direction) must
    not depend on how the array is flipped or transposed (within 5 deg), and points at the RV."""
    image, label, affine, truth = world_heart(rv_arc_deg=70.0, seed=4)
    myo_pool = LabelScheme()
    directions = []
    for flips, transpose, (img, lab), a in flipped_and_transposed([image, label], affine):
        if flips[2]:
            continue
        myo, scar, _, pool = myo_pool.masks(lab.astype(np.int16))
        zooms = np.linalg.norm(a[:3, :3], axis=0)
        septum = septum_from_image(img.astype(np.float64), myo, pool, scar, zooms[:2])[0]
        directions.append(inplane_world(a, zooms[:2], septum))
    assert len(directions) == 8
    for d in directions:
        assert angle_between(d, truth["septum"]) < 5.0
        assert all(angle_between(d, e) < 5.0 for e in directions)


def test_geometry_and_image_disagreement_is_a_review_flag_not_a_switch():
    """RV placed 100 deg away from right-anterior (e.g. wrong geometry or unusual anatomy): the geometry is kept,
    the disagreement is a warning and the status says 'needs review'."""
    image, label, affine, textbook = world_heart(rv_turn_deg=100.0)
    rv_textbook = world_heart()[3]["septum"]
    result = quantify_stack(world_stack(label, affine), LabelScheme(), SectorGeometry(), image=image)
    o = result["orientation"]
    assert any("disagree" in w for w in o["warnings"])
    assert o["sources"]["septum"] == "geometry" and o["slice_septum_deg"] == {}
    assert angle_between(o["septum_direction_ras"], rv_textbook) < 5.0
    assert result["aha_status"].startswith("needs review") and "aha" in result


def test_labels_alone_without_geometry_need_the_user(tmp_path):
    image, label, spacing = make_oriented_phantom(5, 180.0, True, -1, "inferior")
    affine, _ = axis_aligned_affine(180.0, -1, True, spacing)
    stack = Stack("p.nii.gz", label.astype(np.int16), spacing, affine)
    result = quantify_stack(stack, LabelScheme(), SectorGeometry())
    assert "aha" not in result and result["orientation"]["septum_direction_ras"] is None
    assert result["aha_status"].startswith("AHA segments need the user's orientation")
    user = quantify_stack(stack, LabelScheme(), SectorGeometry(), septum_deg=180.0)
    assert user["orientation"]["source"] == "user" and user["aha_status"] == "ok"
    assert user["orientation"]["apex_first"] is True and user["orientation"]["direction"] == -1
    scar = scar_by_segment(user)
    assert max(scar, key=scar.get) in INFERIOR
    flipped = quantify_stack(stack, LabelScheme(), SectorGeometry(), septum_deg=180.0, aha_direction=1,
                             base_first=True)  # wrong on purpose: the user's word is kept
    assert flipped["orientation"]["direction"] == 1 and flipped["orientation"]["apex_first"] is False


def test_case_p002_infarct_is_inferior_by_default(emidec_cases):
    case = os.path.join(emidec_cases, "Case_P002")
    result = quantify_case(os.path.join(case, "label.nii.gz"), LabelScheme(), SectorGeometry(),
                           os.path.join(case, "image.nii.gz"))
    o = result["orientation"]
    assert o["source"] == "image" and o["apex_first"] is True
    assert result["aha_status"] == "ok"  # image septum agrees with the standard display (septum left, anterior up)
    assert o["sources"]["handedness"].startswith("assumed") and o["confidence"] <= 0.5
    assert len(o["septum_direction_ras"]) == 3 and np.linalg.norm(o["septum_direction_ras"]) == pytest.approx(1.0)
    scar = scar_by_segment(result)
    assert max(scar, key=scar.get) in INFERIOR_OR_INFEROLATERAL
    assert sum(scar[s] for s in INFERIOR_OR_INFEROLATERAL) >= 0.85 * sum(scar.values())
    assert scar[1] == scar[7] == scar[13] == 0  # nothing anterior
    by_number = {s["segment"]: s for s in result["aha"]}
    assert by_number[10]["territory"] == "RCA" and by_number[11]["territory"] == "LCx"


def test_slice_order_from_the_labels_is_apex_first_on_emidec(emidec_cases):
    manifest = json.load(open(os.path.join(EMIDEC_DEV, "manifest.json")))
    confident = 0
    for patient in manifest["patients"]:
        label = nib.load(os.path.join(emidec_cases, patient["patient_id"], "label.nii.gz"))
        myo, _, _, pool = LabelScheme().masks(np.asarray(label.dataobj))
        apex_first, confidence = slice_order_from_labels(myo, pool)
        if confidence >= 0.5:
            confident += 1
            assert apex_first is True, patient["patient_id"]
    assert confident >= 58


def septum_reference(reading: str = "reread"):
    """{case: septum deg} of tests/data/emidec_septum_reference.json: the second reading ('reread', issue 23; the
    default) or the first ('first')."""
    data = json.load(open(os.path.join(REPO, "tests", "data", "emidec_septum_reference.json")))
    return data["reread"]["septum_deg"] if reading == "reread" else data["septum_deg"]


def septum_agreement(emidec_cases, flagged=None, reading="reread", orientations=None):
    """Share of dev patients whose automatic septum direction lies within 30 deg of the reference read off the
    images (`septum_reference`), and the per-case errors. `flagged` (a dict) receives each case's aha_status,
    `orientations` (a dict) each case's Orientation."""
    reference = septum_reference(reading)
    errors = {}
    for case, ref in sorted(reference.items()):
        label = nib.load(os.path.join(emidec_cases, case, "label.nii.gz"))
        image = np.asarray(nib.load(os.path.join(emidec_cases, case, "image.nii.gz")).dataobj, np.float64)
        myo, scar, _, pool = LabelScheme().masks(np.asarray(label.dataobj))
        o = find_orientation(myo, pool, scar, label.affine, label.header.get_zooms()[:3], image)
        errors[case] = None if o.septum_deg is None else abs(wrap_deg(o.septum_deg - ref))
        if flagged is not None:
            flagged[case] = o.aha_status
        if orientations is not None:
            orientations[case] = o
    within = sum(1 for e in errors.values() if e is not None and e <= 30.0)
    return within / len(errors), errors


def test_septum_direction_agrees_with_the_images_on_dev_patients(emidec_cases):
    """Default options, no patient orientation, against the re-read reference (issue 23): the calibrated rule
    (second opinion from the papillary muscles or the display, docs) gives 'ok' to at least 60% of the patients and
    keeps >= 95% of them within 30 deg of the reference;
    every other table says 'needs review' with its reason; no slice of any case uses a septum more than 30 deg
    from its case's (issue 23 section 2)."""
    status, orientations = {}, {}
    share, errors = septum_agreement(emidec_cases, status, orientations=orientations)
    ok = [c for c, st in status.items() if st == "ok"]
    review = [c for c, st in status.items() if st.startswith("needs review: ")]
    ok_within = sum(1 for c in ok if errors[c] is not None and errors[c] <= 30.0)
    first = septum_reference("first")
    ok_within_first = sum(1 for c in ok if abs(wrap_deg(orientations[c].septum_deg - first[c])) <= 30.0)
    print(f"septum within 30 deg of the re-read reference: {share:.2f} ({len(errors)} patients); needs review "
          f"{len(review)}, ok {len(ok)} ({ok_within} within 30 deg; {ok_within_first} of the first reading)")
    assert len(errors) == 62
    assert share >= 0.9  # measured 2026-12-05: 57 of 62
    assert sum(1 for e in errors.values() if e is not None and e <= 45.0) >= 58  # measured: 59
    assert len(ok) >= 0.6 * 62 and ok_within >= 0.95 * len(ok)  # measured: 39 ok, 38 within 30 deg
    assert all(st == "ok" or st.startswith("needs review: ") or st.startswith("AHA segments need")
               for st in status.values())
    assert len(ok) + len(review) + sum(1 for st in status.values() if st.startswith("AHA segments need")) == 62
    assert {o.state for o in orientations.values()} <= {"ok", "needs review", "not determined"}
    for case, o in orientations.items():
        for k, entry in o.slices.items():
            assert abs(wrap_deg(entry["septum_deg"] - o.septum_deg)) <= 30.0, (case, k, entry)
            assert (k in o.slice_septum_deg) == entry["septum_source"].startswith("slice image"), (case, k)


def test_septum_votes_that_disagree_or_are_weak_are_flagged():
    from nnunetv2_scarnet.quantification.orientation import SEPTUM_SPREAD_WARN_DEG, septum_reliability

    spread, reasons = septum_reliability([170.0, 180.0, 190.0, 175.0], [1, 2, 2, 1], [0.5, 0.6, 0.5, 0.4])
    assert spread < 10.0 and reasons == []
    spread, reasons = septum_reliability([100.0, 180.0, 260.0, 180.0], [1, 1, 1, 1], [0.5] * 4)
    assert spread > SEPTUM_SPREAD_WARN_DEG and len(reasons) == 1 and "disagree" in reasons[0]
    assert "weak RV evidence" in septum_reliability([180.0] * 4, [0.1] * 4, [0.1] * 4)[1][0]
    assert "only 2 slice(s)" in septum_reliability([180.0, 182.0], [1, 1], [0.5, 0.5])[1][0]
    # a phantom whose RV sits in different places on different slices gets the warning and a capped confidence
    image, label, spacing = make_oriented_phantom(3, 180.0, True, -1, "inferior")
    affine, _ = axis_aligned_affine(180.0, -1, True, spacing)
    myo, scar, _, pool = LabelScheme().masks(label.astype(np.int16))
    clean = find_orientation(myo, pool, scar, affine, spacing, image)
    assert not any(w.startswith("septum may be off") for w in clean.warnings)
    assert clean.septum_spread_deg < SEPTUM_SPREAD_WARN_DEG
    scrambled = image.copy()
    present = [k for k in range(image.shape[2]) if myo[..., k].any()]
    for n, k in enumerate(present):  # turn the RV of each slice by -90, 0, +90, ... deg around the slice centre
        scrambled[..., k] = np.rot90(image[..., k], k=(n % 3) - 1)
    flagged = find_orientation(myo, pool, scar, affine, spacing, scrambled)
    assert flagged.septum_spread_deg > SEPTUM_SPREAD_WARN_DEG
    assert any(w.startswith("septum may be off") for w in flagged.warnings)
    assert flagged.confidences["septum"] <= 0.5


def test_cli_per_case_override_and_missing_orientation_message(emidec_cases, tmp_path, capsys):
    from nnunetv2_scarnet.cli import main

    labels = tmp_path / "labels"
    labels.mkdir()
    for case in ("Case_N012", "Case_P002"):
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), labels / f"{case}.nii.gz")
    assert main(["quantify", str(labels), str(tmp_path / "r"), "--no-pictures", "--septum-deg", "Case_P002=180"]) == 0
    out = capsys.readouterr().out
    assert "Case_N012: AHA segments need the user's orientation" in out  # no image, no patient orientation
    cases = {c["case"]: c for c in json.load(open(tmp_path / "r" / "report.json"))["cases"]}
    assert cases["Case_P002"]["orientation"]["source"] == "user" and "aha" in cases["Case_P002"]
    assert cases["Case_P002"]["orientation"]["apex_first"] is True  # slice order still automatic
    assert "aha" not in cases["Case_N012"]
    assert main(["quantify", str(labels), str(tmp_path / "r2"), "--septum-deg", "180", "oops"]) == 2


def test_geometry_alone_without_image_under_every_flip_and_transpose():
    _, label, affine, truth = world_heart(apex_first=False, scar_side="anterior", rv_turn_deg=10.0)
    for flips, transpose, (lab,), a in flipped_and_transposed([label], affine):
        result = quantify_stack(world_stack(lab, a), LabelScheme(), SectorGeometry())
        o, where = result["orientation"], f"flips={flips} transpose={transpose}"
        assert o["source"] == "geometry" and o["apex_first"] == flips[2], where
        assert o["sources"]["slice_order"] == "geometry (labels agree)", where  # the LV size agrees
        assert angle_between(o["septum_direction_ras"], truth["septum"]) < 12.0, where
        assert result["aha_status"] == "ok", where
        scar = scar_by_segment(result)
        assert max(scar, key=scar.get) in {1, 7, 13}, (where, scar)


@pytest.mark.parametrize("apex_first, flips, transpose", [
    (True, (False, False), False), (False, (True, False), True), (True, (False, True), True), (False, (True, True), False)])
def test_dicom_derived_stack_is_oriented_from_its_geometry(tmp_path, apex_first, flips, transpose):
    """World heart written as an oblique DICOM series (rows/columns flipped or swapped, either slice order) and read
    back by the project's DICOM reader: the affine it builds gives the orientation, the RV in the image agrees."""
    from dicom_helpers import write_series
    from nnunetv2_scarnet.ingestion import read_dicom_series

    image, label, affine, truth = world_heart(apex_first=apex_first, rv_turn_deg=-15.0, seed=7)
    variant = next(v for v in flipped_and_transposed([image, label], affine)
                   if v[0] == (flips[0], flips[1], False) and v[1] == transpose)
    _, _, (img, lab), a = variant
    nib.save(nib.Nifti1Image(img, a), tmp_path / "sax.nii.gz")
    stack = read_dicom_series(os.path.dirname(write_series(str(tmp_path / "sax.nii.gz"), str(tmp_path / "dcm"))[0]))
    reversed_k = not np.array_equal(stack.data, img)  # the reader orders slices along row x column
    assert np.array_equal(stack.data, img[..., ::-1] if reversed_k else img)
    lab = lab[..., ::-1] if reversed_k else lab
    assert has_patient_orientation(stack.affine) and np.linalg.det(stack.affine[:3, :3]) > 0
    result = quantify_stack(Stack("sax.nii.gz", lab.astype(np.int16), stack.spacing, stack.affine), LabelScheme(),
                            SectorGeometry(), image=stack.data)
    o = result["orientation"]
    assert o["source"] == "geometry+image" and o["warnings"] == [] and result["aha_status"] == "ok"
    assert o["apex_first"] == (apex_first != reversed_k)
    assert angle_between(o["septum_direction_ras"], truth["septum"]) < 15.0
    scar = scar_by_segment(result)
    assert max(scar, key=scar.get) in INFERIOR

def test_septum_from_profile_centres_the_arc_on_the_rv_without_a_bin_offset():
    """RV blood in the 5-degree bins 50-110 deg (centre 80) and, mirrored, -110 to -50 (centre -80): the septum is
    the centre of the RV (an even-width smoothing window shifts it by half a bin when its own centre is ignored,
    which makes mirrored arrays read 5 degrees apart)."""
    from nnunetv2_scarnet.quantification.septum_image import septum_from_profile
    profile = np.zeros(72)
    profile[10:22] = 1.0
    assert septum_from_profile(profile)[0] == pytest.approx(80.0, abs=0.5)
    assert septum_from_profile(profile[::-1])[0] == pytest.approx(-80.0, abs=0.5)
    single = np.zeros(72)
    single[36] = 1.0  # one bin, 180-185 deg
    assert wrap_deg(septum_from_profile(single)[0] - 182.5) == pytest.approx(0.0, abs=0.5)
