"""DICOM LGE short-axis series -> one NIfTI stack with correct geometry.

Slices are ordered by Image Position (Patient) projected on the slice normal (row x column direction of Image
Orientation (Patient)); the slice spacing comes from those positions, never from Slice Thickness or Slice
Location. The NIfTI array is (column, row, slice) with a RAS affine built from the DICOM LPS geometry.

Problems are reported with the files involved: several series without a chosen UID (listed), mixed
orientations, duplicate positions, differing matrix sizes, missing slices (a gap in the positions). Files that are
not DICOM, or DICOM without pixel data, are skipped with a warning naming them.
"""
import os
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import nibabel as nib
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError


class DicomSeriesError(ValueError):
    """The DICOM folder cannot be turned into one consistent stack; the message names the files."""


@dataclass
class SeriesInfo:
    uid: str
    description: str
    files: List[str]


@dataclass
class DicomStack:
    data: np.ndarray            # (column, row, slice)
    affine: np.ndarray          # RAS
    spacing: Tuple[float, float, float]
    files: List[str]            # source files in slice order
    series_uid: str


def scan_folder(folder: str) -> Tuple[Dict[str, SeriesInfo], List[str]]:
    """Group the image files of `folder` (recursively) by SeriesInstanceUID; also return the skipped files."""
    if not os.path.isdir(folder):
        raise DicomSeriesError(f"{folder}: not a folder")
    series: Dict[str, SeriesInfo] = {}
    skipped = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError, ValueError, EOFError):
                skipped.append(path)
                continue
            if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds or "Rows" not in ds:
                skipped.append(path)
                continue
            uid = str(ds.get("SeriesInstanceUID", ""))
            info = series.setdefault(uid, SeriesInfo(uid, str(ds.get("SeriesDescription", "")), []))
            info.files.append(path)
    return dict(sorted(series.items())), skipped


def list_series(folder: str) -> List[SeriesInfo]:
    return list(scan_folder(folder)[0].values())


def _describe(series: Dict[str, SeriesInfo]) -> str:
    return "; ".join(f"{s.uid} ({s.description or 'no description'}, {len(s.files)} files)" for s in series.values())


def read_dicom_series(folder: str, series_uid: Optional[str] = None, gap_tolerance: float = 0.2) -> DicomStack:
    """Read one series of `folder` into a stack (see module doc). `gap_tolerance`: allowed relative deviation of
    a slice step from the median step before it counts as a missing slice."""
    series, skipped = scan_folder(folder)
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} non-image file(s): {', '.join(skipped)}", stacklevel=2)
    if not series:
        raise DicomSeriesError(f"{folder}: no DICOM image files found")
    if series_uid is None:
        if len(series) > 1:
            raise DicomSeriesError(f"{folder}: {len(series)} series found, choose one by UID: {_describe(series)}")
        series_uid = next(iter(series))
    if series_uid not in series:
        raise DicomSeriesError(f"{folder}: no series with UID {series_uid}; found {_describe(series)}")
    files = series[series_uid].files
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]

    orientation = np.array(headers[0].ImageOrientationPatient, float)
    for f, ds in zip(files, headers):
        if not np.allclose(np.array(ds.ImageOrientationPatient, float), orientation, atol=1e-4):
            raise DicomSeriesError(f"mixed slice orientations in series {series_uid}: {f} differs from {files[0]}")
        if (ds.Rows, ds.Columns) != (headers[0].Rows, headers[0].Columns):
            raise DicomSeriesError(f"{f}: matrix {ds.Rows}x{ds.Columns} differs from {files[0]} "
                                   f"({headers[0].Rows}x{headers[0].Columns})")
        if [float(v) for v in ds.PixelSpacing] != [float(v) for v in headers[0].PixelSpacing]:
            raise DicomSeriesError(f"{f}: pixel spacing differs from {files[0]}")
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in headers])
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    files = [files[i] for i in order]
    headers = [headers[i] for i in order]
    positions, distance = positions[order], distance[order]

    steps = np.diff(distance)
    for i, step in enumerate(steps):
        if abs(step) < 1e-3:
            raise DicomSeriesError(f"duplicate slice position {distance[i]:.3f} mm: {files[i]} and {files[i + 1]}")
    if len(files) > 2:
        median = float(np.median(steps))
        for i, step in enumerate(steps):
            if abs(step - median) > gap_tolerance * median:
                raise DicomSeriesError(
                    f"missing slice(s) between {files[i]} and {files[i + 1]}: step {step:.2f} mm, the series' "
                    f"usual step is {median:.2f} mm")
    slice_step = (positions[-1] - positions[0]) / (len(files) - 1) if len(files) > 1 else normal * float(
        headers[0].get("SliceThickness", 1.0))

    row_spacing, column_spacing = (float(v) for v in headers[0].PixelSpacing)
    slices = []
    for f in files:
        ds = pydicom.dcmread(f)
        if "PixelData" not in ds:
            raise DicomSeriesError(f"{f}: has image geometry but no PixelData")
        try:
            array = ds.pixel_array
        except Exception as exc:
            raise DicomSeriesError(f"{f}: cannot decode the pixel data ({exc})") from None
        pixels = array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + \
            float(ds.get("RescaleIntercept", 0))
        slices.append(pixels.T)  # (rows, columns) -> (column index i, row index j)
    data = np.stack(slices, axis=-1)
    if not np.all(np.isfinite(data)):
        raise DicomSeriesError(f"series {series_uid} in {folder}: NaN or infinite pixel values after rescaling")
    if np.allclose(data, np.round(data)) and data.min() >= -32768 and data.max() <= 32767:
        data = data.astype(np.int16)
    else:
        data = data.astype(np.float32)

    lps = np.eye(4)
    lps[:3, 0] = row_dir * column_spacing   # i runs along a row (increasing column)
    lps[:3, 1] = col_dir * row_spacing      # j runs down the rows
    lps[:3, 2] = slice_step
    lps[:3, 3] = positions[0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS -> RAS
    spacing = (column_spacing, row_spacing, float(np.linalg.norm(slice_step)))
    return DicomStack(data, affine, spacing, files, series_uid)


def dicom_to_nifti(folder: str, out_path: str, series_uid: Optional[str] = None) -> DicomStack:
    """Convert one series to NIfTI (written only after the whole series was read and checked). `out_path` must end
    with .nii.gz or .nii and must not be a folder: the file written is exactly `out_path`."""
    if os.path.isdir(out_path) or not out_path.endswith((".nii.gz", ".nii")):
        raise DicomSeriesError(f"{out_path}: output must be a .nii.gz or .nii file name, not a folder or another "
                               f"suffix")
    stack = read_dicom_series(folder, series_uid)
    image = nib.Nifti1Image(stack.data, stack.affine)
    image.set_qform(stack.affine, code=1)
    image.set_sform(stack.affine, code=1)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    nib.save(image, out_path)
    return stack
