"""DICOM series -> NIfTI round trip on a real LGE stack; broken series give the promised errors; DICOM SEG out."""
import json
import os
import random
import subprocess
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicom_helpers import write_enhanced, write_series
from nnunetv2_scarnet.ingestion import DicomSeriesError, dicom_to_nifti, list_series, read_dicom_series
from nnunetv2_scarnet.ingestion.dicom_seg import write_dicom_seg
from nnunetv2_scarnet.quantification.label_scheme import read_stack

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


def _codes(segment, sequence):
    item = getattr(segment, sequence)[0]
    return item.CodeValue, item.CodingSchemeDesignator


def test_dicom_seg_codes_numbers_and_dataset_json(stack_paths, tmp_path):
    image_path, label_path = stack_paths
    folder = tmp_path / "dicom"
    write_series(image_path, str(folder), series_uid="1.2.3.4.7", names=shuffled_names(8, seed=3))
    nifti = tmp_path / "lge.nii.gz"
    dicom_to_nifti(str(folder), str(nifti))
    affine = nib.load(nifti).affine
    label = np.asarray(nib.load(label_path).dataobj).astype(np.uint8)
    assert (label == 4).any() and (label == 3).any()
    prediction = tmp_path / "prediction.nii.gz"
    nib.save(nib.Nifti1Image(label, affine), prediction)
    seg = hd.seg.segread(write_dicom_seg(str(prediction), str(folder), str(tmp_path / "seg.dcm")))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == "1.2.3.4.7"
    segments = {s.SegmentNumber: s for s in seg.SegmentSequence}
    assert [segments[n].SegmentLabel for n in (1, 2, 3, 4)] == ["LV blood pool", "LV myocardium", "Infarct",
                                                                 "Microvascular obstruction"]
    # SNOMED CT codes read back: infarct is the morphologic abnormality 55641003, not the disorder 22298006
    expected = {1: (("85756007", "SCT"), ("87612001", "SCT")), 2: (("91723000", "SCT"), ("49848007", "SCT")),
                3: (("49755003", "SCT"), ("55641003", "SCT")), 4: (("49755003", "SCT"), ("26036001", "SCT"))}
    for number, (category, kind) in expected.items():
        assert _codes(segments[number], "SegmentedPropertyCategoryCodeSequence") == category
        assert _codes(segments[number], "SegmentedPropertyTypeCodeSequence") == kind
    assert _codes(segments[1], "AnatomicRegionSequence") == ("87878005", "SCT")
    assert _codes(segments[3], "AnatomicRegionSequence") == ("49848007", "SCT")
    stack = read_dicom_series(str(folder))
    sop_uids = [str(pydicom.dcmread(f).SOPInstanceUID) for f in stack.files]

    def segment(seg, number):
        volume = seg.get_pixels_by_source_instance(source_sop_instance_uids=sop_uids, segment_numbers=[number],
                                                   combine_segments=False)
        return np.transpose(volume[..., 0], (2, 1, 0)).astype(bool)  # (slice, row, col) -> (col, row, slice)

    for number, mask in ((1, label == 1), (2, label >= 2), (3, label >= 3), (4, label == 4)):
        assert np.array_equal(segment(seg, number), mask)  # overlapping segments: myocardium includes the scar
    # a case without scar or MVO keeps the same segment numbers (empty segments)
    normal = np.where(label >= 2, 2, label).astype(np.uint8)
    nib.save(nib.Nifti1Image(normal, affine), tmp_path / "normal.nii.gz")
    seg_normal = hd.seg.segread(write_dicom_seg(str(tmp_path / "normal.nii.gz"), str(folder),
                                               str(tmp_path / "seg_normal.dcm")))
    assert [(s.SegmentNumber, s.SegmentLabel) for s in seg_normal.SegmentSequence] == \
        [(n, segments[n].SegmentLabel) for n in (1, 2, 3, 4)]
    assert not segment(seg_normal, 3).any() and np.array_equal(segment(seg_normal, 2), label >= 2)
    # --dataset-json with other label values (no MVO): the CLI honours it
    other = np.select([label == 1, label >= 3, label == 2], [2, 3, 1], 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(other, affine), tmp_path / "other.nii.gz")
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "myocardium": 1, "blood_pool": 2, "scar": 3}}))
    out = tmp_path / "seg_other.dcm"
    result = subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", "dicomseg", str(tmp_path / "other.nii.gz"),
                             str(folder), str(out), "--dataset-json", str(dataset_json)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    seg_other = hd.seg.segread(str(out))
    assert [s.SegmentLabel for s in seg_other.SegmentSequence] == ["LV blood pool", "LV myocardium", "Infarct"]
    for number, mask in ((1, label == 1), (2, label >= 2), (3, label >= 3)):
        assert np.array_equal(segment(seg_other, number), mask)

    wrong = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(label[:, :, :5], affine), wrong)
    with pytest.raises(DicomSeriesError, match="does not match DICOM series"):
        write_dicom_seg(str(wrong), str(folder), str(tmp_path / "seg2.dcm"))
    assert not (tmp_path / "seg2.dcm").exists()


def test_enhanced_multiframe_mr_is_read(stack_paths, tmp_path):
    image_path, label_path = stack_paths
    reference = nib.load(image_path)
    n = reference.shape[2]
    path = write_enhanced(image_path, str(tmp_path / "enh" / "lge.dcm"), frame_order=[3, 0, 5, 1, 7, 2, 6, 4][:n])
    stack = read_dicom_series(str(tmp_path / "enh"))
    assert np.array_equal(stack.data, np.asarray(reference.dataobj))
    assert np.allclose(stack.affine, reference.affine, atol=1e-3)
    assert stack.files == [path] * n and sorted(stack.frames) == list(range(n))
    write_enhanced(image_path, str(tmp_path / "broken" / "lge.dcm"), drop_position_of=2)
    with pytest.raises(DicomSeriesError, match="lge.dcm: multi-frame image without plane position.*frame 3"):
        read_dicom_series(str(tmp_path / "broken"))
    # a DICOM SEG of an Enhanced MR source (issue 13 item 12; checked in detail in test_dicom_hostile.py)
    seg = hd.seg.segread(write_dicom_seg(label_path, str(tmp_path / "enh"), str(tmp_path / "seg.dcm")))
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == \
        pydicom.dcmread(path).SOPInstanceUID


def test_magnitude_psir_and_inversion_times_are_told_apart(stack_paths, tmp_path):
    image_path, _ = stack_paths
    reference = np.asarray(nib.load(image_path).dataobj)
    folder = tmp_path / "mixed"
    uid = "1.2.3.4.9"
    write_series(image_path, str(folder / "mag"), series_uid=uid, image_type=["ORIGINAL", "PRIMARY", "M", "IR"],
                 inversion_time=300)
    write_series(image_path, str(folder / "psir"), series_uid=uid, image_type=["ORIGINAL", "PRIMARY", "PSIR"],
                 inversion_time=300, scale=2)
    with pytest.raises(DicomSeriesError, match="mixes 2 kinds of image.*M\\\\IR.*PSIR.*--image-type"):
        read_dicom_series(str(folder))
    psir = read_dicom_series(str(folder), image_type="PSIR")
    assert np.array_equal(psir.data, 2 * reference) and psir.image_type == "ORIGINAL\\PRIMARY\\PSIR"
    assert np.array_equal(read_dicom_series(str(folder), image_type="m").data, reference)
    with pytest.raises(DicomSeriesError, match="no image matches"):
        read_dicom_series(str(folder), image_type="PHASE")
    listing = subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", "dicom2nifti", str(folder), "--list"],
                             capture_output=True, text=True)
    assert listing.returncode == 0 and "PSIR" in listing.stdout and "TI 300 ms" in listing.stdout
    out = tmp_path / "psir.nii.gz"
    result = subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", "dicom2nifti", str(folder), str(out),
                             "--image-type", "PSIR"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.asarray(nib.load(out).dataobj), 2 * reference)
    failed = subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", "dicom2nifti", str(folder),
                             str(tmp_path / "x.nii.gz")], capture_output=True, text=True)
    assert failed.returncode == 2 and failed.stderr.startswith("scarnet dicom2nifti: series 1.2.3.4.9 mixes")
    assert not (tmp_path / "x.nii.gz").exists()

    tis = tmp_path / "tis"
    for ti in (300, 350):
        write_series(image_path, str(tis / f"ti{ti}"), series_uid=uid, inversion_time=ti, scale=1 + (ti == 350))
    with pytest.raises(DicomSeriesError, match="TI 300 ms.*TI 350 ms"):
        read_dicom_series(str(tis))
    assert np.array_equal(read_dicom_series(str(tis), inversion_time=350).data, 2 * reference)


def test_inplane_offset_sheared_stack_and_single_slice(stack_paths, tmp_path):
    image_path, _ = stack_paths
    reference = nib.load(image_path)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ reference.affine
    row = lps[:3, 0] / np.linalg.norm(lps[:3, 0])
    write_series(image_path, str(tmp_path / "offset"), shift=lambda k: 3.0 * row if k == 4 else 0 * row)
    with pytest.raises(DicomSeriesError, match="offset in-plane.*IM0004.dcm \\(3.00 mm\\)"):
        read_dicom_series(str(tmp_path / "offset"))
    # sheared: every slice shifted 3 mm more along the row (10 mm slices: the step is 10.44 mm long)
    write_series(image_path, str(tmp_path / "sheared"), shift=lambda k: 3.0 * k * row)
    stack = read_dicom_series(str(tmp_path / "sheared"))
    assert stack.spacing[2] == pytest.approx(reference.header.get_zooms()[2], abs=1e-4)  # not 10.44
    out = tmp_path / "sheared.nii.gz"
    dicom_to_nifti(str(tmp_path / "sheared"), str(out))
    written = read_stack(str(out))
    assert written.voxel_ml == pytest.approx(float(np.prod(reference.header.get_zooms()[:3])) / 1000, rel=1e-5)
    first_slice_3 = written.affine @ np.array([0, 0, 3, 1])
    expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.append(lps[:3, 3] + 3 * lps[:3, 2] + 9.0 * row, 1)
    assert np.allclose(first_slice_3, expected, atol=1e-3)  # the affine keeps the true (shifted) positions
    # one slice: the spacing comes from Spacing Between Slices, else Slice Thickness, and says so
    write_series(image_path, str(tmp_path / "one"), slices=[3])
    single = read_dicom_series(str(tmp_path / "one"))
    assert single.spacing[2] == 99.0 and "Slice Thickness" in single.spacing_source
    write_series(image_path, str(tmp_path / "one_sbs"), slices=[3], spacing_between=10.0)
    single = read_dicom_series(str(tmp_path / "one_sbs"))
    assert single.spacing[2] == 10.0 and "Spacing Between Slices" in single.spacing_source
