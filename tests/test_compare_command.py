"""`scarnet compare`: two models on the same real cases, paired statistics, refusal of mismatched case sets."""
import json
import os

import nibabel as nib
import numpy as np
import pytest

from nnunetv2_scarnet.cli import main

CASES = ("Case_N012", "Case_P001", "Case_P004")


@pytest.fixture()
def folders(emidec_cases, tmp_path):
    """Expert labels (cropped to the heart, so that the test is quick), a perfect model (the labels) and a model that
    misses the scar of the lower half of the slices."""
    ref, perfect, partial = (tmp_path / n for n in ("ref", "perfect", "partial"))
    for folder in (ref, perfect, partial):
        folder.mkdir()
    scar_dice = {}
    for case in CASES:
        full = nib.load(os.path.join(emidec_cases, case, "label.nii.gz"))
        heart = np.argwhere(np.asarray(full.dataobj) >= 2)  # myocardium, scar, MVO
        (x0, y0, _), (x1, y1, _) = heart.min(0), heart.max(0)
        image = full.slicer[max(x0 - 4, 0):x1 + 5, max(y0 - 4, 0):y1 + 5, :]
        label = np.asarray(image.dataobj).astype(np.uint8)
        nib.save(nib.Nifti1Image(label, image.affine, image.header), str(ref / f"{case}.nii.gz"))
        os.symlink(ref / f"{case}.nii.gz", perfect / f"{case}.nii.gz")
        missed = label.copy()
        half = label.shape[2] // 2
        missed[:, :, :half][missed[:, :, :half] >= 3] = 2  # scar and MVO called myocardium there
        nib.save(nib.Nifti1Image(missed, image.affine, image.header), str(partial / f"{case}.nii.gz"))
        r, p = label >= 3, missed >= 3  # scar of the EMIDEC scheme includes MVO
        if r.sum() + p.sum():
            scar_dice[case] = 2 * (r & p).sum() / (r.sum() + p.sum())
    return ref, perfect, partial, scar_dice


def test_compare_two_models_on_the_same_cases(folders, tmp_path):
    ref, perfect, partial, scar_dice = folders
    out = tmp_path / "out"
    assert main(["compare", str(ref), str(out), "--model", f"partial={partial}", "--model", f"perfect={perfect}",
                 "--bootstrap", "200"]) == 0
    comparison = json.loads((out / "paired_comparison.json").read_text())
    assert comparison["reference_model"] == "partial" and comparison["cases"] == list(CASES)
    views = comparison["comparisons"][0]["dice_scar"]["views"]
    # Case_N012 has no scar and neither model draws any: out of the primary view (no reference scar) and of the
    # both-defined view (Dice undefined for both); in the all-patients view both score 1 (empty vs empty)
    for view in ("reference_present", "both_defined"):
        assert views[view]["excluded_cases"] == ["Case_N012"] and views[view]["n_pairs"] == 2
    assert views["empty_as_agreement"]["n_pairs"] == 3
    assert views["empty_as_agreement"]["differences"]["Case_N012"] == 0.0
    # two differences d1, d2: Walsh averages d1, (d1 + d2) / 2, d2, whose median is (d1 + d2) / 2
    d1, d2 = (1.0 - v for v in scar_dice.values())
    assert views["reference_present"]["hodges_lehmann"]["estimate"] == pytest.approx((d1 + d2) / 2)
    assert all(0 < v < 1 for v in scar_dice.values())
    rows = (out / "paired_comparison.csv").read_text().splitlines()
    # scar and myocardium Dice in three views each, false-positive scar, scar %LVM CCC
    assert len(rows) == 9 and rows[1].startswith("perfect,partial,scar Dice,reference_present,True,2,1")
    fp = comparison["comparisons"][0]["false_positive_scar"]
    assert fp["model"]["n_normal"] == 1 and fp["model"]["n_false_positive"] == 0
    assert (out / "perfect" / "evaluation.json").exists() and (out / ".scarnet-output").exists()


def test_compare_refuses_models_on_other_cases(folders, tmp_path, capsys):
    ref, perfect, partial, _ = folders
    os.remove(partial / "Case_P004.nii.gz")
    out = tmp_path / "out"
    assert main(["compare", str(ref), str(out), "--model", f"perfect={perfect}", "--model",
                 f"partial={partial}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "partial" in err and "lacks cases ['Case_P004']" in err
    assert not out.exists()
    assert main(["compare", str(ref), str(out), "--model", f"perfect={perfect}"]) == 2
    assert "at least two" in capsys.readouterr().err and not out.exists()


def test_compare_output_rules_as_every_writer(folders, tmp_path, capsys):
    ref, perfect, partial, _ = folders
    out = tmp_path / "taken"
    out.write_text("someone's file")
    assert main(["compare", str(ref), str(out), "--model", f"a={perfect}", "--model", f"b={partial}"]) == 2
    assert "output folder is a file" in capsys.readouterr().err and out.read_text() == "someone's file"
    assert main(["compare", str(ref), str(tmp_path), "--model", f"a={perfect}", "--model", f"b={partial}"]) == 2
    assert "output folder is not empty and was not written by scarnet" in capsys.readouterr().err
    assert main(["compare", str(ref), str(tmp_path / "o"), "--model", f"a={perfect}", "--model", f"a={partial}"]) == 2
    assert "unique" in capsys.readouterr().err and not (tmp_path / "o").exists()
