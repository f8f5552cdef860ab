"""Write a NIfTI stack as a DICOM MR series (one file per slice), as a scanner would, for the ingestion tests."""
import os

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedMRImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid


def dicom_geometry(affine):
    """A NIfTI (RAS) affine as DICOM sees it: the LPS affine, the column and row spacings (mm) and the row and
    column direction cosines."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    col_spacing, row_spacing = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    return lps, col_spacing, row_spacing, lps[:3, 0] / col_spacing, lps[:3, 1] / row_spacing


def set_tags(paths, **tags):
    """Set DICOM attributes (keyword=value) in each file, in place."""
    for path in paths:
        ds = pydicom.dcmread(path)
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(path)


def write_series(nifti_path, folder, series_uid=None, study_uid=None, frame_uid=None, description="LGE SAX",
                 names=None, slices=None, orientation_override=None, image_type=None, inversion_time=None,
                 shift=None, spacing_between=None, scale=1, edit=None):
    """Write slices of `nifti_path` into `folder`; returns the file paths in slice order.

    `image_type` (list) and `inversion_time` (ms) set Image Type and Inversion Time; `shift(k)` adds an in-plane
    offset (LPS mm) to slice k's position; `scale` multiplies the pixel values (a second reconstruction);
    `edit(ds, k)` changes slice k's dataset just before it is saved (a hostile or anonymised export)."""
    image = nib.load(nifti_path)
    data = (np.asarray(image.dataobj) * scale).astype(np.int16)
    lps, col_spacing, row_spacing, row_dir, col_dir = dicom_geometry(image.affine)
    series_uid, study_uid, frame_uid = series_uid or generate_uid(), study_uid or generate_uid(), frame_uid or generate_uid()
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k in (slices if slices is not None else range(data.shape[2])):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^LGE", "LGE001", "19600101", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20250101", "120000", "1", "A1"
        ds.ReferringPhysicianName, ds.Manufacturer = "", "test"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = "MR", 7, int(k) + 1, description
        orientation = orientation_override(k) if orientation_override else (row_dir, col_dir)
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate(orientation)]
        position = lps[:3, 3] + k * lps[:3, 2] + (np.asarray(shift(k), float) if shift else 0.0)
        ds.ImagePositionPatient = [float(v) for v in position]
        if image_type is not None:
            ds.ImageType = list(image_type)
        if inversion_time is not None:
            ds.InversionTime = float(inversion_time)
        if spacing_between is not None:
            ds.SpacingBetweenSlices = float(spacing_between)
        ds.PixelSpacing = [float(row_spacing), float(col_spacing)]
        ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from positions
        ds.SliceLocation = 0.0    # deliberately useless
        pixels = data[..., k].T
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        name = names[k] if names else f"IM{k:04d}{'' if scale == 1 else f'_x{scale}'}.dcm"
        path = os.path.join(folder, name)
        if edit is not None:
            edit(ds, int(k))
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(nifti_path, path, frame_order=None, series_uid=None, drop_position_of=None):
    """Write the whole stack as one Enhanced MR (multi-frame) file with per-frame plane positions, frames in
    `frame_order` (slice indices); `drop_position_of`: a frame left without a plane position (broken file)."""
    image = nib.load(nifti_path)
    data = np.asarray(image.dataobj).astype(np.int16)
    lps, col_spacing, row_spacing, row_dir, col_dir = dicom_geometry(image.affine)
    order = list(frame_order) if frame_order is not None else list(range(data.shape[2]))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedMRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "Test^LGE", "LGE001"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), series_uid or generate_uid(), \
        generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = "MR", 8, 1, "LGE SAX enhanced"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    measures, orientation = Dataset(), Dataset()
    measures.PixelSpacing = [float(row_spacing), float(col_spacing)]
    measures.SliceThickness = 99.0
    orientation.ImageOrientationPatient = [float(v) for v in np.concatenate([row_dir, col_dir])]
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for n, k in enumerate(order):
        item, position, frame_type = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [float(v) for v in lps[:3, 3] + k * lps[:3, 2]]
        frame_type.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        if n != drop_position_of:
            item.PlanePositionSequence = Sequence([position])
        item.MRImageFrameTypeSequence = Sequence([frame_type])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    pixels = np.stack([data[..., k].T for k in order])
    ds.NumberOfFrames = len(order)
    ds.Rows, ds.Columns = pixels.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
