"""Per-segment agreement of transmurality categories (weighted kappa) in `evaluate`, on real EMIDEC cases."""
import csv
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from nnunetv2_scarnet.evaluation import EvaluationInputError, evaluate_folders
from nnunetv2_scarnet.evaluation.transmurality_agreement import CATEGORY_NAMES, compare_case, reference_geometry
from nnunetv2_scarnet.quantification.aha import aha_table
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, read_label_stack, read_stack
from nnunetv2_scarnet.quantification.sectors import (SectorGeometry, lv_center, pixel_angles, sector_index,
                                                     stack_sectors)
from nnunetv2_scarnet.quantification.transmurality import transmurality_category

CASES = ["Case_N012", "Case_P002", "Case_P004"]
SCHEME = LabelScheme()


@pytest.fixture()
def folders(emidec_cases, tmp_path):
    ref, images = tmp_path / "ref", tmp_path / "images"
    ref.mkdir()
    images.mkdir()
    for case in CASES:
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), ref / f"{case}.nii.gz")
        os.symlink(os.path.join(emidec_cases, case, "image.nii.gz"), images / f"{case}_0000.nii.gz")
    return ref, images


def change_scar(label, dilate):
    """Scar (3, 4) dilated into the myocardium or eroded by one pixel in-plane; myocardium and pool unchanged."""
    scar, myo = label >= 3, label >= 2
    out = label.copy()
    for k in range(label.shape[2]):
        if dilate:
            grown = ndimage.binary_dilation(scar[..., k]) & myo[..., k] & ~scar[..., k]
            out[..., k][grown] = 3
        else:
            lost = scar[..., k] & ~ndimage.binary_erosion(scar[..., k])
            out[..., k][lost] = 2
    return out


def write_predictions(ref, folder, change):
    folder.mkdir()
    for case in CASES:
        image = nib.load(ref / f"{case}.nii.gz")
        data = change(case, np.asarray(image.dataobj))
        nib.save(nib.Nifti1Image(data, image.affine, image.header), folder / f"{case}.nii.gz")
    return folder


def edited(case, label):
    return change_scar(label, dilate=True) if case == "Case_P004" else change_scar(label, dilate=False) \
        if case == "Case_P002" else label


def test_labels_against_themselves_kappa_one(folders, tmp_path):
    ref, images = folders
    for images_dir, kind in ((None, "sectors"), (str(images), "aha")):
        result = evaluate_folders(str(ref), str(ref), str(tmp_path / f"out_{kind}"), name="self",
                                  images_dir=images_dir)
        t = result["summary"]["transmurality"]
        assert {c["transmurality_geometry"] for c in result["cases"]} == {kind}
        assert t["kappa_linear"] == 1.0 and t["kappa_quadratic"] == 1.0 and t["exact_agreement"] == 1.0
        assert t["n_segments_compared"] == sum(c["n_segments_compared"] for c in result["cases"]) > 0
        matrix = np.array(t["confusion_matrix"]["matrix"])
        assert matrix.sum() == t["n_segments_compared"] and (matrix == np.diag(np.diag(matrix))).all()
        assert matrix[0, 0] < matrix.sum()  # the infarct cases have scarred segments: not a trivial 0% table
        assert t["transmural_ge_50_count_per_case"]["bland_altman"]["bias"] == 0.0
        rows = list(csv.DictReader(open(tmp_path / f"out_{kind}" / "segments.csv")))
        assert len(rows) == sum(len(c["segments"]) for c in result["cases"])
        assert all(r["category_reference"] == r["category_prediction"] for r in rows if r["status"] == "ok")
        saved = json.load(open(tmp_path / f"out_{kind}" / "evaluation.json"))
        assert "Cohen (1968)" in saved["transmurality_kappa"] and saved["images_dir"] == images_dir
    assert {r["segment"] for r in rows} == {str(s) for s in range(1, 17)}  # AHA 1-16, never 17


def test_eroded_and_dilated_scar_against_independent_computation(folders, tmp_path):
    from sklearn.metrics import cohen_kappa_score

    ref, images = folders
    pred = write_predictions(ref, tmp_path / "pred", edited)
    for images_dir in (None, str(images)):
        result = evaluate_folders(str(pred), str(ref), None, name="edited", images_dir=images_dir)
        a, b = [], []
        for case in CASES:  # categories straight from quantification, each label map on its own
            r_stack, p_stack = read_label_stack(ref / f"{case}.nii.gz"), read_label_stack(pred / f"{case}.nii.gz")
            if images_dir is None:  # myocardium and pool unchanged: same centres, so stack_sectors must agree
                ra = [transmurality_category(r["transmurality_mean"]) for r in stack_sectors(r_stack, SCHEME,
                                                                                             SectorGeometry())]
                pa = [transmurality_category(r["transmurality_mean"]) for r in stack_sectors(p_stack, SCHEME,
                                                                                             SectorGeometry())]
            else:
                o = reference_geometry(r_stack, SCHEME, read_stack(images / f"{case}_0000.nii.gz").data)[
                    "orientation"]
                tables = []
                for stack in (r_stack, p_stack):
                    myo, scar, _, pool = SCHEME.masks(stack.data)
                    tables.append([r["transmurality_category"] for r in aha_table(
                        myo, scar, pool, stack.spacing, o.septum_deg, o.direction, o.apex_first,
                        o.slice_septum_deg)[:16]])
                ra, pa = tables
            (case_result,) = [c for c in result["cases"] if c["case"] == case]
            rows = [r for r in case_result["segments"] if r["status"] == "ok"]
            assert len(rows) == len(ra) == case_result["n_segments_compared"]
            assert [r["category_reference"] for r in rows] == ra
            assert [r["category_prediction"] for r in rows] == pa
            a += ra
            b += pa
        t = result["summary"]["transmurality"]
        codes = [CATEGORY_NAMES.index(x) for x in a], [CATEGORY_NAMES.index(x) for x in b]
        assert 0 < t["kappa_linear"] < 1 and t["exact_agreement"] < 1
        assert t["kappa_linear"] == pytest.approx(cohen_kappa_score(*codes, weights="linear", labels=range(5)))
        assert t["kappa_quadratic"] == pytest.approx(cohen_kappa_score(*codes, weights="quadratic",
                                                                       labels=range(5)))
        assert t["exact_agreement"] == pytest.approx(np.mean(np.array(codes[0]) == np.array(codes[1])))
        # dilation raises and erosion lowers transmurality: off-diagonal cells on both sides
        matrix = np.array(t["confusion_matrix"]["matrix"])
        assert np.triu(matrix, 1).sum() > 0 and np.tril(matrix, -1).sum() > 0
        counts = {c["case"]: (c["n_segments_ge_50_reference"], c["n_segments_ge_50_prediction"])
                  for c in result["cases"]}
        assert counts["Case_P004"][1] >= counts["Case_P004"][0] and counts["Case_P002"][1] <= counts["Case_P002"][0]


def test_geometry_comes_from_the_reference(folders, tmp_path):
    """A prediction whose whole heart is shifted 4 pixels is cut by the reference's segments, not its own."""
    ref, images = folders
    case = "Case_P004"
    r_stack = read_label_stack(ref / f"{case}.nii.gz")
    shifted = read_label_stack(ref / f"{case}.nii.gz")
    shifted.data = np.roll(r_stack.data, 4, axis=0)
    image = read_stack(images / f"{case}_0000.nii.gz").data
    for img in (None, image):
        same = compare_case(r_stack, r_stack, SCHEME, img)
        moved = compare_case(shifted, r_stack, SCHEME, img)
        assert moved["transmurality_geometry"] == same["transmurality_geometry"]
        assert moved["transmurality_geometry_reason"] == same["transmurality_geometry_reason"]
        for key in ("segment", "myocardium_px_reference", "transmurality_reference", "category_reference"):
            assert [r[key] for r in moved["segments"]] == [r[key] for r in same["segments"]]
        if img is None:  # prediction myocardium per sector around the REFERENCE centre, computed by hand
            myo_r, _, _, pool_r = SCHEME.masks(r_stack.data)
            myo_p = SCHEME.masks(shifted.data)[0]
            by_hand, own = [], []
            for k in range(myo_r.shape[2]):
                if not myo_r[..., k].any():
                    continue
                angles = pixel_angles(myo_r.shape[:2], lv_center(myo_r[..., k], pool_r[..., k]), r_stack.spacing[:2])
                sector = sector_index(angles, SectorGeometry())[0]
                by_hand += [int((myo_p[..., k] & (sector == s)).sum()) for s in range(6)]
            assert [r["myocardium_px_prediction"] for r in moved["segments"]] == by_hand
            own = [r["myocardium_px"] for r in stack_sectors(shifted, SCHEME, SectorGeometry())]
            assert own != by_hand  # its own centre would have given other segments


def test_cli_images_option_and_errors(folders, tmp_path):
    ref, images = folders
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.path.join(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))), "src"), os.environ.get("PYTHONPATH", "")] if p))

    def scarnet(*args):
        return subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", *args], capture_output=True,
                              text=True, timeout=300, env=env)

    done = scarnet("evaluate", str(ref), str(ref), str(tmp_path / "eval"), "--images", str(images))
    assert done.returncode == 0, done.stderr
    assert "weighted kappa (linear) 1.0" in done.stdout
    saved = json.load(open(tmp_path / "eval" / "evaluation.json"))
    assert {c["transmurality_geometry"] for c in saved["cases"]} == {"aha"}
    assert (tmp_path / "eval" / "segments.csv").stat().st_size > 0
    os.remove(images / "Case_P002_0000.nii.gz")
    done = scarnet("evaluate", str(ref), str(ref), str(tmp_path / "eval2"), "--images", str(images))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "Case_P002_0000.nii.gz" in done.stderr and not (tmp_path / "eval2").exists()
    with pytest.raises(EvaluationInputError, match="Case_P002_0000.nii.gz"):
        evaluate_folders(str(ref), str(ref), None, images_dir=str(images))


def test_image_on_another_grid_is_one_clear_error(folders, tmp_path):
    ref, images = folders
    image = nib.load(images / "Case_P004_0000.nii.gz")
    cropped = np.asarray(image.dataobj)[:-2]
    os.remove(images / "Case_P004_0000.nii.gz")
    nib.save(nib.Nifti1Image(cropped, image.affine, image.header), images / "Case_P004_0000.nii.gz")
    with pytest.raises(EvaluationInputError, match=r"Case_P004_0000.nii.gz: geometry differs from reference"):
        evaluate_folders(str(ref), str(ref), None, images_dir=str(images))
    assert evaluate_folders(str(ref), str(ref), None, images_dir=None, pictures=False)["summary"][
        "transmurality"]["kappa_linear"] == 1.0
