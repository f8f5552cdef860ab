"""Real-world and hostile DICOM exports (issue 13, items 4-6 and 10-14): real DICOM written by the tests from a
real EMIDEC stack, then changed as exporters, anonymisers and PACS change them. Each case either reads exactly
like the clean export or is refused with one message naming the file; a DICOM SEG never overwrites its sources
and never loses the patient."""
import hashlib
import os
import re

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicom_helpers import write_enhanced, write_series
from nnunetv2_scarnet.cli import main as scarnet
from nnunetv2_scarnet.ingestion import DicomSeriesError, list_series, read_dicom_series
from nnunetv2_scarnet.ingestion.dicom_seg import write_dicom_seg
from nnunetv2_scarnet.report.inputs import choose_lge_series, dicom_identifiers

CASE = "Case_P002"


@pytest.fixture()
def case(emidec_cases):
    image, label = (os.path.join(emidec_cases, CASE, f) for f in ("image.nii.gz", "label.nii.gz"))
    return image, label, np.asarray(nib.load(image).dataobj)


def on_slice(k, change):
    """An `edit` that applies `change(ds)` to slice k only."""
    return lambda ds, i: change(ds) if i == k else None


def _set(**tags):
    def change(ds):
        for key, value in tags.items():
            setattr(ds, key, value)
    return change


def _drop(*keys):
    def change(ds):
        for key in keys:
            if key in ds:
                delattr(ds, key)
    return change


def _both(*changes):
    def change(ds):
        for c in changes:
            c(ds)
    return change


def _voi_lut(ds):
    item = Dataset()
    item.LUTDescriptor, item.LUTData = [4096, 0, 16], np.arange(0, 65536, 16, dtype=np.uint16).tobytes()
    ds.VOILUTSequence = Sequence([item])


def _palette(ds):
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.arange(256, dtype=np.uint16).tobytes())


def _float_pixels(ds):
    pixels = np.frombuffer(ds.PixelData, np.int16).astype(np.float32)
    del ds.PixelData
    ds.BitsAllocated = 32
    for key in ("BitsStored", "HighBit", "PixelRepresentation"):
        delattr(ds, key)
    ds.FloatPixelData = pixels.tobytes()


#: (id, edit of the export, what the message must say); every message names the changed file
REFUSED = [
    ("no_pixel_spacing", lambda ds, k: _drop("PixelSpacing")(ds),  # every slice: was read as 1 mm
     r"IM0000\.dcm: no Pixel Spacing \(0028,0030\).*never assumed 1 mm"),
    ("no_pixel_spacing_on_one_slice", on_slice(3, _drop("PixelSpacing")),
     r"IM0003\.dcm: no Pixel Spacing \(0028,0030\)"),
    ("one_valued_pixel_spacing", on_slice(3, _set(PixelSpacing=[1.484375])),
     r"IM0003\.dcm: PixelSpacing must hold 2 finite numbers, found 1 value"),
    ("imager_pixel_spacing_only", lambda ds, k: _both(_drop("PixelSpacing"), _set(ImagerPixelSpacing=[1.5, 1.5]))(ds),
     r"IM0000\.dcm: no Pixel Spacing.*Imager Pixel Spacing \(0018,1164\).*not used"),
    ("ipp_two_values", on_slice(3, _set(ImagePositionPatient=[1.0, 2.0])),
     r"IM0003\.dcm: ImagePositionPatient must hold 3 finite numbers, found 2"),
    ("iop_five_values", on_slice(3, _set(ImageOrientationPatient=[1.0, 0.0, 0.0, 0.0, 1.0])),
     r"IM0003\.dcm: ImageOrientationPatient must hold 6 finite numbers, found 5"),
    ("iop_not_at_right_angles", lambda ds, k: _set(ImageOrientationPatient=[1.0, 0, 0, 1.0, 0, 0])(ds),
     r"IM0000\.dcm: ImageOrientationPatient .* not two unit vectors at right angles"),
    ("voi_lut_sequence", on_slice(3, _voi_lut), r"IM0003\.dcm: has a VOI LUT Sequence \(0028,3010\)"),
    ("palette_color", on_slice(3, _palette), r"IM0003\.dcm: Photometric Interpretation 'PALETTE COLOR'"),
    ("float_pixel_data", on_slice(3, _float_pixels), r"IM0003\.dcm: float pixel data \(FloatPixelData"),
]


@pytest.mark.parametrize("edit,message", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_hostile_export_is_refused_naming_the_file(case, tmp_path, capsys, edit, message):
    image, _, _ = case
    folder = tmp_path / "series"
    write_series(image, str(folder), edit=edit)
    with pytest.raises(DicomSeriesError, match=message):
        read_dicom_series(str(folder))
    out = tmp_path / "out" / "lge.nii.gz"
    assert scarnet(["dicom2nifti", str(folder), str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_broken_series_does_not_block_another_series_of_the_study(case, tmp_path, capsys):
    image, _, reference = case
    study = tmp_path / "study"
    write_series(image, str(study / "localiser"), description="localiser", slices=[0, 1, 2],
                 edit=on_slice(1, _set(ImagePositionPatient=[1.0, 2.0])))
    lge = write_series(image, str(study / "lge"), description="LGE SAX")
    uid = str(pydicom.dcmread(lge[0]).SeriesInstanceUID)
    choice = choose_lge_series(str(study))
    assert choice.uid == uid and np.array_equal(read_dicom_series(str(study), uid).data, reference)
    localiser = next(s.uid for s in list_series(str(study)) if s.uid != uid)
    with pytest.raises(DicomSeriesError, match=r"localiser/IM0001\.dcm: ImagePositionPatient must hold 3"):
        read_dicom_series(str(study), localiser)
    assert scarnet(["dicom2nifti", str(study), "--list"]) == 0
    assert "unusable: " in capsys.readouterr().out


def test_duplicate_sop_instance_uids_are_refused_and_get_no_seg(case, tmp_path, capsys):
    image, label, _ = case
    uid = pydicom.uid.generate_uid()

    def same_uid(ds, k):  # slices 1-7 all carry one instance UID (a badly anonymised export)
        if k >= 1:
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    folder = tmp_path / "series"
    write_series(image, str(folder), edit=same_uid)
    with pytest.raises(DicomSeriesError, match=r"7 files share SOPInstanceUID .*IM0001\.dcm, .*IM0002\.dcm"):
        read_dicom_series(str(folder))
    out = tmp_path / "seg.dcm"
    assert scarnet(["dicomseg", label, str(folder), str(out)]) == 2
    assert "share SOPInstanceUID" in capsys.readouterr().err and not out.exists()


def test_monochrome1_is_inverted_and_windows_are_not_applied(case, tmp_path):
    """MONOCHROME1 shows the minimum as white (PS3.3 C.7.6.3.1.2): a 12-bit unsigned export storing 4095 - v must
    read back as v (correlation +1 with the MONOCHROME2 source, not -1); display windows change nothing."""
    image, _, reference = case
    assert reference.min() >= 0 and reference.max() <= 4095

    def monochrome1(ds, k):
        pixels = np.frombuffer(ds.PixelData, np.int16).astype(np.int32)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.PixelData = (4095 - pixels).astype(np.uint16).tobytes()
        ds.WindowCenter, ds.WindowWidth = 900, 300
    write_series(image, str(tmp_path / "m1"), edit=monochrome1)
    data = read_dicom_series(str(tmp_path / "m1")).data
    assert np.corrcoef(data.ravel(), reference.ravel())[0, 1] == pytest.approx(1.0, abs=1e-9)
    assert np.array_equal(data, reference)


def test_modality_lut_sequence_is_applied(case, tmp_path):
    """A Modality LUT Sequence (PS3.3 C.11.1) maps stored values to modality values: here v -> 2 v."""
    image, _, reference = case

    def modality_lut(ds, k):
        item = Dataset()
        item.LUTDescriptor, item.ModalityLUTType = [4096, 0, 16], "US"
        item.LUTData = (2 * np.arange(4096)).astype(np.uint16).tobytes()
        ds.ModalityLUTSequence = Sequence([item])
    write_series(image, str(tmp_path / "lut"), edit=modality_lut)
    assert np.array_equal(read_dicom_series(str(tmp_path / "lut")).data, 2 * reference)


def test_pixel_spacing_source_is_recorded(case, tmp_path, capsys):
    image, _, reference = case
    classic = write_series(image, str(tmp_path / "classic"))
    enhanced = write_enhanced(image, str(tmp_path / "enhanced" / "lge.dcm"))
    stack = read_dicom_series(str(tmp_path / "enhanced"))
    assert stack.pixel_spacing_source == "Pixel Measures Sequence (0028,9110) of the shared functional groups"
    assert np.allclose(stack.spacing, nib.load(image).header.get_zooms()[:3], atol=1e-4)
    assert read_dicom_series(str(tmp_path / "classic")).pixel_spacing_source == "Pixel Spacing (0028,0030)"
    assert dicom_identifiers([enhanced])["PixelSpacingSource"].startswith("Pixel Measures Sequence")
    assert dicom_identifiers(classic)["PixelSpacingSource"] == "Pixel Spacing (0028,0030)"
    assert scarnet(["dicom2nifti", str(tmp_path / "enhanced"), str(tmp_path / "e.nii.gz")]) == 0
    assert "pixel spacing from Pixel Measures Sequence" in capsys.readouterr().out


def test_series_reached_through_a_symlinked_folder(case, tmp_path):
    image, _, reference = case
    write_series(image, str(tmp_path / "elsewhere" / "lge"))
    study = tmp_path / "study"
    study.mkdir()
    os.symlink(tmp_path / "elsewhere" / "lge", study / "lge")
    os.symlink(study, study / "loop")  # a link back up must neither hang nor count the files twice
    assert np.array_equal(read_dicom_series(str(study)).data, reference)
    assert choose_lge_series(str(study)).n_files == reference.shape[2]


def file_hashes(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize("where", ["a_source_image", "inside_the_series", "the_label", "series_via_symlink"])
def test_dicomseg_never_writes_over_an_input(case, tmp_path, capsys, where):
    image, label, _ = case
    folder = tmp_path / "SERIES"
    write_series(image, str(folder))
    (tmp_path / "pred").mkdir()
    prediction = tmp_path / "pred" / "seg.nii.gz"
    prediction.write_bytes(open(label, "rb").read())
    os.symlink(folder, tmp_path / "link")
    out = {"a_source_image": folder / "IM0000.dcm", "inside_the_series": folder / "new" / "seg.dcm",
           "the_label": prediction, "series_via_symlink": tmp_path / "link" / "seg.dcm"}[where]
    before, label_before = file_hashes(folder), file_hashes(tmp_path / "pred")
    assert scarnet(["dicomseg", str(prediction), str(folder), str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and ("is an input" in err or "inside the source DICOM folder" in err)
    assert file_hashes(folder) == before and file_hashes(tmp_path / "pred") == label_before


#: attributes anonymisers delete (type 2 and optional): the SEG must still be written and read back
ANONYMISED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
              "AccessionNumber", "ReferringPhysicianName", "Modality", "SliceThickness", "SliceLocation",
              "SeriesNumber", "InstanceNumber", "SeriesDescription", "Manufacturer")


def test_anonymised_export_gets_a_dicom_seg(case, tmp_path):
    image, label, _ = case
    folder = tmp_path / "anonymised"
    paths = write_series(image, str(folder), edit=lambda ds, k: _drop(*ANONYMISED)(ds))
    assert not any(k in pydicom.dcmread(paths[0]) for k in ANONYMISED)
    before = file_hashes(folder)
    nifti = tmp_path / "lge.nii.gz"
    assert scarnet(["dicom2nifti", str(folder), str(nifti)]) == 0
    labels = np.asarray(nib.load(label).dataobj).astype(np.uint8)
    prediction = tmp_path / "prediction.nii.gz"
    nib.save(nib.Nifti1Image(labels, nib.load(nifti).affine), prediction)
    out = tmp_path / "seg.dcm"
    assert scarnet(["dicomseg", str(prediction), str(folder), str(out)]) == 0
    seg = hd.seg.segread(str(out))
    source = pydicom.dcmread(paths[0])
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.Modality == "SEG"
    assert seg.PatientID == "" and str(seg.PatientName) == "" and seg.PatientBirthDate == ""  # stays anonymous
    sop_uids = [str(pydicom.dcmread(p).SOPInstanceUID) for p in paths]
    myocardium = seg.get_pixels_by_source_instance(source_sop_instance_uids=sop_uids, segment_numbers=[2],
                                                   combine_segments=False)[..., 0]
    assert np.array_equal(np.transpose(myocardium, (2, 1, 0)).astype(bool), labels >= 2)
    assert file_hashes(folder) == before  # the sources are never changed
    assert "PatientID" not in dicom_identifiers(paths)


def test_enhanced_mr_seg_keeps_the_patient(case, tmp_path):
    image, label, _ = case
    order = [3, 0, 5, 1, 7, 2, 6, 4]
    path = write_enhanced(image, str(tmp_path / "enh" / "lge.dcm"), frame_order=order)
    seg = hd.seg.segread(write_dicom_seg(label, str(tmp_path / "enh"), str(tmp_path / "seg.dcm")))
    source = pydicom.dcmread(path)
    assert (seg.PatientID, str(seg.PatientName)) == ("LGE001", "Test^LGE")
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    labels = np.asarray(nib.load(label).dataobj)
    scar = seg.get_pixels_by_source_frame(source_sop_instance_uid=source.SOPInstanceUID,
                                          source_frame_numbers=list(range(1, len(order) + 1)), segment_numbers=[3],
                                          combine_segments=False)[..., 0]
    expected = np.stack([(labels[..., k] >= 3).T for k in order])  # frame f holds slice order[f]
    assert expected.any() and np.array_equal(scar.astype(bool), expected)


def test_study_with_a_returned_seg_and_an_enhanced_mr_is_scored(case, tmp_path):
    image, label, _ = case
    study = tmp_path / "study"
    classic = write_series(image, str(study / "lge"), edit=lambda ds, k: _set(InversionTime=300.0)(ds))
    write_enhanced(image, str(study / "enhanced" / "lge.dcm"), series_uid="1.2.3.4.77")
    seg_folder = tmp_path / "source"
    write_series(image, str(seg_folder))
    write_dicom_seg(label, str(seg_folder), str(study / "returned_seg.dcm"))  # a scarnet SEG sent back from PACS
    assert len(list_series(str(study))) == 2  # the SEG is not an image series
    choice = choose_lge_series(str(study))
    assert choice.uid == str(pydicom.dcmread(classic[0]).SeriesInstanceUID)
    enhanced = choose_lge_series(str(study), ["1.2.3.4.77"])
    assert enhanced.uid == "1.2.3.4.77"
    stack = read_dicom_series(str(study), "1.2.3.4.77")
    assert stack.data.shape == nib.load(image).shape


def test_inversion_time_drifting_over_slices_is_one_stack(case, tmp_path):
    image, _, reference = case
    drift = lambda ds, k: _set(InversionTime=280.0 + 60.0 * k / 7)(ds)  # 280-340 ms over the stack
    write_series(image, str(tmp_path / "drift"), description="LGE PSIR", edit=drift)
    stack = read_dicom_series(str(tmp_path / "drift"))
    assert np.array_equal(stack.data, reference) and stack.inversion_time_range == (280.0, 340.0)
    write_series(image, str(tmp_path / "drift" / "cine"), description="cine SAX")  # two series: scored
    choice = choose_lge_series(str(tmp_path / "drift"))
    assert any("280-340 ms (drifting" in r for r in choice.reasons) and "TI scout" not in " ".join(choice.reasons)
    assert dicom_identifiers(stack.files)["InversionTime"] == "280-340 ms over the slices"
    # --inversion-time (e.g. one given for a whole report run) must not cut a drifting stack down to one slice
    with pytest.raises(DicomSeriesError, match=r"--inversion-time 280 keeps 1 of its 8 slice positions.*without"):
        read_dicom_series(str(tmp_path / "drift"), choice.uid, inversion_time=280)
    # a spread wider than 25 % of the median over the positions is a TI scout, not a drift
    scout = lambda ds, k: _set(InversionTime=150.0 + 50.0 * k)(ds)  # 150-500 ms
    write_series(image, str(tmp_path / "scout"), edit=scout)
    with pytest.raises(DicomSeriesError, match=r"150-500 ms .*a TI scout, not one LGE stack.*--series-uid"):
        read_dicom_series(str(tmp_path / "scout"))


def _named_options(message, option):
    return re.findall(rf"{option} (\S+)", message)


def test_mixed_series_names_options_that_dicom2nifti_offers(case, tmp_path, capsys):
    """The refusal names each choice as an option; running dicom2nifti with exactly that option reads the kind."""
    image, _, reference = case
    uid = "1.2.3.4.9"
    mixed = tmp_path / "mixed"
    write_series(image, str(mixed / "mag"), series_uid=uid, image_type=["ORIGINAL", "PRIMARY", "M", "IR"],
                 inversion_time=300)
    write_series(image, str(mixed / "psir"), series_uid=uid, image_type=["ORIGINAL", "PRIMARY", "PSIR"],
                 inversion_time=300, scale=2)
    tis = tmp_path / "tis"
    for ti in (300, 350):
        write_series(image, str(tis / f"ti{ti}"), series_uid=uid, inversion_time=ti, scale=1 + (ti == 350))
    for folder, option, expected in ((mixed, "--image-type", {"M": 1, "PSIR": 2}),
                                     (tis, "--inversion-time", {"300": 1, "350": 2})):
        with pytest.raises(DicomSeriesError) as refusal:
            read_dicom_series(str(folder))
        named = _named_options(str(refusal.value), option)
        assert sorted(named) == sorted(expected), str(refusal.value)
        for value in named:
            out = tmp_path / f"{folder.name}_{value}.nii.gz"
            assert scarnet(["dicom2nifti", str(folder), str(out), option, value]) == 0, capsys.readouterr().err
            assert np.array_equal(np.asarray(nib.load(out).dataobj), expected[value] * reference)
