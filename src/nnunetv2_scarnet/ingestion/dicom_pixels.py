"""Pixel values of one DICOM image as MR signal (modality values), with the photometric interpretation applied.

- Modality LUT: Rescale Slope/Intercept (classic files; Pixel Value Transformation Sequence per frame of an
  Enhanced MR) or a Modality LUT Sequence (0028,3000), applied with pydicom's `apply_modality_lut`.
- MONOCHROME1 (minimum value shown white, PS3.3 C.7.6.3.1.2) is inverted to the MONOCHROME2 convention over the
  range of the stored values (BitsStored, PixelRepresentation) mapped through the modality LUT:
  v' = m(lo) + m(hi) - v, so that bright means high signal as in the training data.
- Window Center/Width are display settings and are not applied (the network normalises intensities itself, and
  the training stacks are unwindowed). A VOI LUT Sequence (0028,3010), a display lookup table that may be
  non-linear, is refused rather than guessed at.
- Colour data (PALETTE COLOR, RGB, YBR, Samples per Pixel > 1) and float pixel data (Float / Double Float Pixel
  Data, used by parametric maps, not by MR images) are refused, naming the file.
"""
from typing import Callable, Dict

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

from nnunetv2_scarnet.ingestion.dicom_slices import DicomSeriesError, SliceRef, first_item, frame_item


def _check_image(path: str, ds) -> None:
    for keyword, tag in (("FloatPixelData", "7FE0,0008"), ("DoubleFloatPixelData", "7FE0,0009")):
        if keyword in ds:
            raise DicomSeriesError(f"{path}: float pixel data ({keyword} ({tag})), as in parametric maps; an MR "
                                   f"image stores integers in Pixel Data (7FE0,0010), which scarnet reads")
    if "PixelData" not in ds:
        raise DicomSeriesError(f"{path}: has image geometry but no PixelData")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or samples != 1:
        raise DicomSeriesError(f"{path}: Photometric Interpretation '{photometric or 'missing'}' with {samples} "
                               f"sample(s) per pixel; colour or palette data hold display colours, not MR signal "
                               f"(MONOCHROME1/MONOCHROME2 greyscale is required)")
    if "VOILUTSequence" in ds:
        raise DicomSeriesError(f"{path}: has a VOI LUT Sequence (0028,3010), a display lookup table that may be "
                               f"non-linear; scarnet reads the modality values and does not guess which LUT the "
                               f"export applied: re-export the series without VOI LUT")


def _modality_transform(ds, frame) -> Callable[[np.ndarray], np.ndarray]:
    """Stored values -> modality values for one frame (None: a single-frame file)."""
    if frame is not None:
        shared = first_item(ds, "SharedFunctionalGroupsSequence")
        transform = frame_item(shared, ds.PerFrameFunctionalGroupsSequence[frame], "PixelValueTransformationSequence")
        holder = transform if transform is not None else ds
        slope, intercept = float(holder.get("RescaleSlope", 1)), float(holder.get("RescaleIntercept", 0))
        return lambda a: a.astype(np.float64) * slope + intercept
    if "ModalityLUTSequence" in ds:
        return lambda a: np.asarray(apply_modality_lut(a, ds), np.float64)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    return lambda a: a.astype(np.float64) * slope + intercept


def _stored_range(ds) -> np.ndarray:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1])
    return np.array([0, 2 ** bits - 1])


def slice_pixels(s: SliceRef, cache: Dict[str, tuple]) -> np.ndarray:
    """Modality values of one slice as (column index i, row index j); a multi-frame file is decoded once."""
    if s.path not in cache:
        ds = pydicom.dcmread(s.path)
        _check_image(s.path, ds)
        try:
            cache[s.path] = (ds, ds.pixel_array)
        except Exception as exc:
            raise DicomSeriesError(f"{s.path}: cannot decode the pixel data ({exc})") from None
    ds, array = cache[s.path]
    if s.frame is not None:
        array = (array[None] if array.ndim == 2 else array)[s.frame]
    if array.ndim != 2:
        raise DicomSeriesError(f"{s.name}: pixel data of shape {array.shape}, expected one 2D greyscale image")
    modality = _modality_transform(ds, s.frame)
    values = modality(array)
    if str(ds.PhotometricInterpretation).strip().upper() == "MONOCHROME1":
        ends = modality(_stored_range(ds))
        values = ends.min() + ends.max() - values
    return values.T  # (rows, columns) -> (i, j)
