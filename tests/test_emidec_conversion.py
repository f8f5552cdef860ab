"""EMIDEC-style folders -> nnU-Net raw dataset, on real patients; bad input fails cleanly."""
import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from nnunetv2_scarnet.data.emidec import DatasetConversionError, convert_emidec

CASES = ["Case_N012", "Case_N014", "Case_N016", "Case_P001", "Case_P002", "Case_P004", "Case_P007", "Case_P009"]


def test_real_cases_convert_with_patient_level_stratified_splits(emidec_cases, tmp_path):
    target = convert_emidec(emidec_cases, str(tmp_path), 501, "Emidec", cases=CASES, num_folds=4)
    assert os.path.basename(target) == "Dataset501_Emidec"
    meta = json.load(open(os.path.join(target, "dataset.json")))
    assert meta["channel_names"] == {"0": "LGE"}
    assert meta["labels"] == {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3}
    assert meta["numTraining"] == len(CASES) and meta["file_ending"] == ".nii.gz"
    assert sorted(os.listdir(os.path.join(target, "imagesTr"))) == sorted(f"{c}_0000.nii.gz" for c in CASES)
    splits = json.load(open(os.path.join(target, "splits_final.json")))
    assert len(splits) == 4
    vals = [c for s in splits for c in s["val"]]
    assert sorted(vals) == sorted(CASES)  # every patient validated exactly once, whole
    for s in splits:
        assert not set(s["train"]) & set(s["val"]) and sorted(s["train"] + s["val"]) == sorted(CASES)
        normals = [c for c in s["val"] if c.startswith("Case_N")]
        assert len(normals) <= 1 and len(s["val"]) == 2  # 3 normals, 5 infarcts dealt over 4 folds

    # label mapping: MVO (4) merged into scar (3), geometry and image bytes unchanged
    src_label = nib.load(os.path.join(emidec_cases, "Case_P007", "label.nii.gz"))
    out_label = nib.load(os.path.join(target, "labelsTr", "Case_P007.nii.gz"))
    src, out = np.asarray(src_label.dataobj), np.asarray(out_label.dataobj)
    assert np.array_equal(out, np.where(src == 4, 3, src)) and out.max() <= 3
    assert np.allclose(out_label.affine, src_label.affine)
    with open(os.path.join(emidec_cases, "Case_P007", "image.nii.gz"), "rb") as a, \
            open(os.path.join(target, "imagesTr", "Case_P007_0000.nii.gz"), "rb") as b:
        assert a.read() == b.read()


def test_keep_mvo_and_reader_option(emidec_cases, tmp_path):
    target = convert_emidec(emidec_cases, str(tmp_path), 502, "Mvo", cases=CASES[:5], merge_mvo=False,
                            num_folds=5, reader="NibabelIO")
    meta = json.load(open(os.path.join(target, "dataset.json")))
    assert meta["labels"]["mvo"] == 4 and meta["overwrite_image_reader_writer"] == "NibabelIO"


def copy_cases(emidec_cases, folder, cases):
    for c in cases:
        shutil.copytree(os.path.join(emidec_cases, c), os.path.join(folder, c))


def save_like(reference_path, data, path, affine=None):
    ref = nib.load(reference_path)
    nib.save(nib.Nifti1Image(data, ref.affine if affine is None else affine), path)


@pytest.mark.parametrize("problem,message", [
    ("not3d", "expected a 3D stack"),
    ("geometry", "geometry"),
    ("shape", "differs from image shape"),
    ("labels", "unknown label values \\[7\\]"),
    ("nolabel", "missing label file"),
])
def test_bad_input_names_the_file_and_leaves_nothing(emidec_cases, tmp_path, problem, message):
    source = tmp_path / "src"
    copy_cases(emidec_cases, str(source), CASES[:5])
    bad = source / "Case_P002"
    image_path, label_path = str(bad / "image.nii.gz"), str(bad / "label.nii.gz")
    image = np.asarray(nib.load(image_path).dataobj)
    label = np.asarray(nib.load(label_path).dataobj)
    if problem == "not3d":
        save_like(image_path, image[..., None], image_path)
    elif problem == "geometry":
        affine = nib.load(label_path).affine.copy()
        affine[0, 3] += 5.0
        save_like(label_path, label, label_path, affine)
    elif problem == "shape":
        save_like(label_path, label[:-1], label_path)
    elif problem == "labels":
        label = label.copy()
        label[0, 0, 0] = 7
        save_like(label_path, label, label_path)
    else:
        os.remove(label_path)
    raw = tmp_path / "raw"
    with pytest.raises(DatasetConversionError, match=message) as info:
        convert_emidec(str(source), str(raw), 503, "Bad", num_folds=5)
    assert "Case_P002" in str(info.value)
    assert not raw.exists() or os.listdir(raw) == []


def test_existing_dataset_is_not_overwritten_silently(emidec_cases, tmp_path):
    convert_emidec(emidec_cases, str(tmp_path), 504, "Twice", cases=CASES[:5])
    with pytest.raises(DatasetConversionError, match="already exists"):
        convert_emidec(emidec_cases, str(tmp_path), 504, "Twice", cases=CASES[:5])
    convert_emidec(emidec_cases, str(tmp_path), 504, "Twice", cases=CASES[:5], overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["Dataset504_Twice"]


def test_generic_nifti_pairs_convert_and_missing_labels_are_named(emidec_cases, tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for i, case in enumerate(CASES[:5]):
        image_name = f"{case}_0000.nii.gz" if i % 2 else f"{case}.nii.gz"  # both naming styles
        os.symlink(os.path.join(emidec_cases, case, "image.nii.gz"), images / image_name)
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), labels / f"{case}.nii.gz")
    from nnunetv2_scarnet.data.emidec import convert_nifti_pairs, main

    target = convert_nifti_pairs(str(images), str(labels), str(tmp_path / "raw"), 505, "Pairs", num_folds=5)
    assert sorted(os.listdir(os.path.join(target, "labelsTr"))) == sorted(f"{c}.nii.gz" for c in CASES[:5])
    os.remove(labels / f"{CASES[2]}.nii.gz")
    assert main(["--images", str(images), "--labels", str(labels), "-o", str(tmp_path / "raw2"), "-d", "506"]) == 2
    assert not (tmp_path / "raw2").exists() or os.listdir(tmp_path / "raw2") == []
    with pytest.raises(DatasetConversionError, match=f"{CASES[2]}.nii.gz: missing label file"):
        convert_nifti_pairs(str(images), str(labels), str(tmp_path / "raw3"), 507, "Pairs")
