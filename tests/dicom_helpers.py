"""Write a NIfTI stack as a DICOM MR series (one file per slice), as a scanner would, for the ingestion tests."""
import os

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


def write_series(nifti_path, folder, series_uid=None, study_uid=None, frame_uid=None, description="LGE SAX",
                 names=None, slices=None, orientation_override=None):
    """Write slices of `nifti_path` into `folder`; returns the file paths in slice order."""
    image = nib.load(nifti_path)
    data = np.asarray(image.dataobj).astype(np.int16)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    col_spacing, row_spacing = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    row_dir, col_dir = lps[:3, 0] / col_spacing, lps[:3, 1] / row_spacing
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
        ds.ImagePositionPatient = [float(v) for v in lps[:3, 3] + k * lps[:3, 2]]
        ds.PixelSpacing = [float(row_spacing), float(col_spacing)]
        ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from positions
        ds.SliceLocation = 0.0    # deliberately useless
        pixels = data[..., k].T
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        name = names[k] if names else f"IM{k:04d}.dcm"
        path = os.path.join(folder, name)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
