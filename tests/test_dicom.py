"""DICOM series -> NIfTI round trip on a real LGE stack; broken series give the promised errors; DICOM SEG out."""
import os
import random
import subprocess
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pytest

from dicom_helpers import write_series
from nnunetv2_scarnet.ingestion import DicomSeriesError, dicom_to_nifti, list_series, read_dicom_series
from nnunetv2_scarnet.ingestion.dicom_seg import write_dicom_seg

CASE = "Case_P002"


@pytest.fixture()
def stack_paths(emidec_cases):
    return os.path.join(emidec_cases, CASE, "image.nii.gz"), os.path.join(emidec_cases, CASE, "label.nii.gz")


def shuffled_names(n, seed=0):
    names = [f"x{random.Random(seed + i).randrange(10 ** 8):08d}" for i in range(n)]  # no extension, no order
    random.Random(seed).shuffle(names)
    return names


def test_shuffled_renamed_series_round_trips(stack_paths, tmp_path):
    image_path, _ = stack_paths
    reference = nib.load(image_path)
    n = reference.shape[2]
    folder = tmp_path / "dicom"
    write_series(image_path, str(folder), names=shuffled_names(n))
    (folder / "README.txt").write_text("not a DICOM file")
    with pytest.warns(UserWarning, match="README.txt"):
        stack = read_dicom_series(str(folder))
    assert np.array_equal(stack.data, np.asarray(reference.dataobj))
    assert np.allclose(stack.spacing, reference.header.get_zooms()[:3], atol=1e-4)
    assert np.allclose(stack.affine, reference.affine, atol=1e-3)

    out = tmp_path / "lge.nii.gz"
    result = subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", "dicom2nifti", str(folder), str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = nib.load(out)
    assert np.array_equal(np.asarray(written.dataobj), np.asarray(reference.dataobj))
    assert np.allclose(written.affine, reference.affine, atol=1e-3)


def test_gap_duplicate_and_orientation_errors(stack_paths, tmp_path):
    image_path, _ = stack_paths
    n = nib.load(image_path).shape[2]
    gap = tmp_path / "gap"
    write_series(image_path, str(gap), slices=[k for k in range(n) if k != n // 2])
    with pytest.raises(DicomSeriesError, match="missing slice.*IM0003.dcm and .*IM0005.dcm"):
        read_dicom_series(str(gap))

    dup = tmp_path / "dup"
    paths = write_series(image_path, str(dup))
    extra = write_series(image_path, str(tmp_path / "tmp"), slices=[2], names={2: "copy.dcm"},
                         series_uid=str(__import__("pydicom").dcmread(paths[0]).SeriesInstanceUID))
    os.rename(extra[0], dup / "copy.dcm")
    with pytest.raises(DicomSeriesError, match="duplicate slice position.*(IM0002.dcm|copy.dcm)"):
        read_dicom_series(str(dup))

    tilted = tmp_path / "tilted"
    base = nib.load(image_path).affine
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ base
    row, col = lps[:3, 0] / np.linalg.norm(lps[:3, 0]), lps[:3, 1] / np.linalg.norm(lps[:3, 1])
    turned = (col, -row)
    write_series(image_path, str(tilted), orientation_override=lambda k: turned if k == 3 else (row, col))
    with pytest.raises(DicomSeriesError, match="mixed slice orientations.*IM0003.dcm"):
        read_dicom_series(str(tilted))
    with pytest.raises(DicomSeriesError, match="no DICOM image files"):
        os.makedirs(tmp_path / "empty")
        (tmp_path / "empty" / "notes.txt").write_text("x")
        read_dicom_series(str(tmp_path / "empty"))


def test_two_series_are_listed_and_chosen_by_uid(stack_paths, tmp_path):
    image_path, _ = stack_paths
    folder = tmp_path / "two"
    write_series(image_path, str(folder / "a"), series_uid="1.2.3.4.5", description="LGE short axis")
    write_series(image_path, str(folder / "b"), series_uid="1.2.3.4.6", description="LGE long axis",
                 slices=[0, 1, 2])
    with pytest.raises(DicomSeriesError, match="2 series found.*1.2.3.4.5 \\(LGE short axis, 8 files\\).*1.2.3.4.6"):
        read_dicom_series(str(folder))
    assert sorted(s.uid for s in list_series(str(folder))) == ["1.2.3.4.5", "1.2.3.4.6"]
    stack = read_dicom_series(str(folder), series_uid="1.2.3.4.6")
    assert stack.data.shape[2] == 3
    out = tmp_path / "none.nii.gz"
    with pytest.raises(DicomSeriesError):
        dicom_to_nifti(str(folder), str(out))
    assert not out.exists()  # nothing written on error


def test_dicom_seg_references_the_source_series(stack_paths, tmp_path):
    image_path, label_path = stack_paths
    folder = tmp_path / "dicom"
    write_series(image_path, str(folder), series_uid="1.2.3.4.7", names=shuffled_names(8, seed=3))
    nifti = tmp_path / "lge.nii.gz"
    dicom_to_nifti(str(folder), str(nifti))
    label = nib.load(label_path)
    merged = np.asarray(label.dataobj).copy()
    merged[merged == 4] = 3
    prediction = tmp_path / "prediction.nii.gz"
    nib.save(nib.Nifti1Image(merged.astype(np.uint8), nib.load(nifti).affine), prediction)
    out = write_dicom_seg(str(prediction), str(folder), str(tmp_path / "seg.dcm"))
    seg = hd.seg.segread(out)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == "1.2.3.4.7"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["LV blood pool", "Healthy LV myocardium",
                                                             "Myocardial scar"]
    stack = read_dicom_series(str(folder))
    sop_uids = [str(__import__("pydicom").dcmread(f).SOPInstanceUID) for f in stack.files]
    volume = seg.get_pixels_by_source_instance(source_sop_instance_uids=sop_uids, segment_numbers=[3],
                                               combine_segments=False)
    scar = np.transpose(volume[..., 0], (2, 1, 0)).astype(bool)  # (slice, row, col) -> (col, row, slice)
    assert np.array_equal(scar, merged == 3)

    wrong = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(merged[:, :, :5].astype(np.uint8), nib.load(nifti).affine), wrong)
    with pytest.raises(DicomSeriesError, match="does not match DICOM series"):
        write_dicom_seg(str(wrong), str(folder), str(tmp_path / "seg2.dcm"))
    assert not (tmp_path / "seg2.dcm").exists()
