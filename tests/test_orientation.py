"""Automatic orientation: phantoms with an RV under every flip/transpose of the array (with a DICOM-like oblique
affine and with an EMIDEC-like axis-aligned one), the real EMIDEC patients (Case_P002's inferior infarct, slice
order, septum agreement with a reading of the images), user overrides and the 'needs the user' outcome."""
import itertools
import json
import os

import nibabel as nib
import numpy as np
import pytest

from conftest import EMIDEC_DEV, REPO
from nnunetv2_scarnet.data.phantom import make_oriented_phantom
from nnunetv2_scarnet.quantification import LabelScheme, SectorGeometry, quantify_case
from nnunetv2_scarnet.quantification.label_scheme import Stack
from nnunetv2_scarnet.quantification.orientation import (find_orientation, has_patient_orientation,
                                                         slice_order_from_labels, wrap_deg)
from nnunetv2_scarnet.quantification.report import quantify_stack

APEX_RAS = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)
INFERIOR = {4, 10, 15}
INFERIOR_OR_INFEROLATERAL = {4, 5, 10, 11, 15, 16}


def oblique_affine(septum_deg, direction, apex_first, spacing):
    """DICOM-like RAS affine under which the phantom's anatomy is right: long axis to the left, anterior and
    inferior, in-plane anterior = projection of RAS anterior, septum = anterior x base (patient's right)."""
    base = -APEX_RAS
    anterior = np.array([0.0, 1.0, 0.0]) - base[1] * base
    anterior /= np.linalg.norm(anterior)
    septum = np.cross(anterior, base)
    ts, ta = np.radians(septum_deg), np.radians(septum_deg - 90.0 * direction)
    array_frame = np.column_stack([(np.cos(ts), np.sin(ts), 0), (np.cos(ta), np.sin(ta), 0),
                                   (0, 0, 1 if apex_first else -1)])
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([septum, anterior, base]) @ array_frame.T @ np.diag(spacing)
    affine[:3, 3] = (12.0, -40.0, 25.0)
    return affine, septum


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


@pytest.mark.parametrize("kind, septum_deg, direction, apex_first", [
    ("oblique", 150.0, -1, True), ("oblique", 20.0, 1, False), ("axis_aligned", -100.0, -1, False)])
def test_phantom_orientation_recovered_under_every_flip_and_transpose(kind, septum_deg, direction, apex_first):
    image, label, spacing = make_oriented_phantom(3, septum_deg, apex_first, direction, "inferior")
    make = oblique_affine if kind == "oblique" else axis_aligned_affine
    affine, septum_ras = make(septum_deg, direction, apex_first, spacing)
    assert has_patient_orientation(affine) == (kind == "oblique")
    seen = 0
    for flips, transpose, (img, lab), a in flipped_and_transposed([image, label], affine):
        zooms = tuple(float(z) for z in np.linalg.norm(a[:3, :3], axis=0))
        result = quantify_stack(Stack("phantom.nii.gz", lab.astype(np.int16), zooms, a), LabelScheme(),
                                SectorGeometry(), image=img)
        o = result["orientation"]
        where = f"{kind} flips={flips} transpose={transpose}"
        assert o["apex_first"] == (apex_first != flips[2]), where
        assert o["source"] == ("geometry+image" if kind == "oblique" else "image"), where
        assert angle_between(o["septum_direction_ras"], septum_ras) < 15.0, where
        assert result["aha_status"] == "ok", where
        scar = scar_by_segment(result)
        assert max(scar, key=scar.get) in INFERIOR, (where, scar)
        assert sum(scar[s] for s in INFERIOR_OR_INFEROLATERAL | {3, 9}) == sum(scar.values()), where
        assert o["warnings"] == [], where
        assert len(o["insertion_points_deg"]) >= 4, where
        for anterior, inferior in o["insertion_points_deg"].values():  # RV spans +-60 deg around the septum
            assert wrap_deg(anterior - o["septum_deg"]) * o["direction"] == pytest.approx(-60, abs=15), where
            assert wrap_deg(inferior - o["septum_deg"]) * o["direction"] == pytest.approx(60, abs=15), where
        seen += 1
    assert seen == 16


def test_geometry_and_image_disagreement_is_reported():
    image, label, spacing = make_oriented_phantom(4, 170.0, True, -1, "inferior")
    affine, _ = oblique_affine(170.0 + 100.0, -1, True, spacing)  # the geometry puts the septum 100 deg away
    result = quantify_stack(Stack("p.nii.gz", label.astype(np.int16), spacing, affine), LabelScheme(),
                            SectorGeometry(), image=image)
    assert any("disagree" in w for w in result["orientation"]["warnings"])


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
    assert o["source"] == "image" and o["apex_first"] is True and result["aha_status"] == "ok"
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


def septum_agreement(emidec_cases, flagged=None):
    """Share of dev patients whose automatic septum direction lies within 30 deg of the reference read off the
    images (tests/data/emidec_septum_reference.json), and the per-case errors. `flagged` (a set) receives the cases
    whose septum carries the 'septum may be off' warning."""
    reference = json.load(open(os.path.join(REPO, "tests", "data", "emidec_septum_reference.json")))["septum_deg"]
    errors = {}
    for case, ref in sorted(reference.items()):
        label = nib.load(os.path.join(emidec_cases, case, "label.nii.gz"))
        image = np.asarray(nib.load(os.path.join(emidec_cases, case, "image.nii.gz")).dataobj, np.float64)
        myo, scar, _, pool = LabelScheme().masks(np.asarray(label.dataobj))
        o = find_orientation(myo, pool, scar, label.affine, label.header.get_zooms()[:3], image)
        errors[case] = None if o.septum_deg is None else abs(wrap_deg(o.septum_deg - ref))
        if flagged is not None and any(w.startswith("septum may be off") for w in o.warnings):
            flagged.add(case)
    within = sum(1 for e in errors.values() if e is not None and e <= 30.0)
    return within / len(errors), errors


def test_septum_direction_agrees_with_the_images_on_dev_patients(emidec_cases):
    flagged = set()
    share, errors = septum_agreement(emidec_cases, flagged)
    print(f"septum within 30 deg of the image reading: {share:.2f} ({len(errors)} patients)")
    assert len(errors) == 62
    assert share >= 0.6
    assert sum(1 for e in errors.values() if e is not None and e <= 60.0) >= 56
    # 'septum may be off' warning (docs: measured 1 of the 18 cases off by > 30 deg, 5 of the 42 within 30 deg):
    # the slices' disagreement does not find the consistently-off cases; fail if it flags many more good cases
    # or none of the off ones
    off = {c for c, e in errors.items() if e is not None and e > 30.0}
    good = {c for c, e in errors.items() if e is not None and e <= 30.0}
    print(f"flagged: {len(flagged & off)} of {len(off)} off by > 30 deg, {len(flagged & good)} of {len(good)} within")
    assert len(flagged & off) >= 1
    assert len(flagged & good) <= 8


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
    assert clean.warnings == [] and clean.septum_spread_deg < SEPTUM_SPREAD_WARN_DEG
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
    image, label, spacing = make_oriented_phantom(6, -60.0, False, 1, "anterior")
    affine, septum_ras = oblique_affine(-60.0, 1, False, spacing)
    for flips, transpose, (lab,), a in flipped_and_transposed([label], affine):
        zooms = tuple(float(z) for z in np.linalg.norm(a[:3, :3], axis=0))
        result = quantify_stack(Stack("p.nii.gz", lab.astype(np.int16), zooms, a), LabelScheme(), SectorGeometry())
        o, where = result["orientation"], f"flips={flips} transpose={transpose}"
        assert o["source"] == "geometry" and o["apex_first"] == flips[2], where
        assert o["sources"]["slice_order"] == "geometry (labels agree)", where  # the LV size agrees
        assert angle_between(o["septum_direction_ras"], septum_ras) < 1.0, where
        scar = scar_by_segment(result)
        assert max(scar, key=scar.get) in {1, 7, 13}, (where, scar)


@pytest.mark.parametrize("apex_first, flips, transpose", [
    (True, (False, False), False), (False, (True, False), True), (True, (False, True), True), (False, (True, True), False)])
def test_dicom_derived_stack_is_oriented_from_its_geometry(tmp_path, apex_first, flips, transpose):
    """Phantom written as an oblique DICOM series (rows/columns flipped or swapped, either slice order) and read back
    by the project's DICOM reader: the affine it builds gives the orientation, the RV in the image agrees."""
    from dicom_helpers import write_series
    from nnunetv2_scarnet.ingestion import read_dicom_series

    image, label, spacing = make_oriented_phantom(7, 160.0, apex_first, -1, "inferior")
    affine, septum_ras = oblique_affine(160.0, -1, apex_first, spacing)
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
    assert o["source"] == "geometry+image" and o["warnings"] == []
    assert o["apex_first"] == (apex_first != reversed_k)
    assert angle_between(o["septum_direction_ras"], septum_ras) < 15.0
    scar = scar_by_segment(result)
    assert max(scar, key=scar.get) in INFERIOR
