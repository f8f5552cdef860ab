"""The 2D images of one DICOM file, read from its headers (no pixels): position, orientation, pixel spacing and
kind, each checked so that a malformed header gives one message naming the file.

- Image Position (Patient) must hold 3 finite numbers, Image Orientation (Patient) 6, whose row and column
  direction cosines are unit vectors at right angles (within 0.01).
- Pixel spacing comes from Pixel Spacing (0028,0030) (classic single-frame files) or the Pixel Measures Sequence
  (0028,9110) of the per-frame or shared functional groups (Enhanced MR); both are physical distances in the
  patient (PS3.3 C.7.6.2.1, C.7.6.16.2.1). Two positive finite values are required. A file without them is
  refused, never read as 1 mm. Imager Pixel Spacing (0018,1164) is not used: it is measured at the detector of a
  projection image (PS3.3 10.7.1.3) and is not part of the MR image modules. `SliceRef.pixel_spacing_source` says
  which attribute gave the spacing.
- Files that are not images (DICOM SEG, RT Structure Set, SR, presentation states ...) have no slices here.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import pydicom

#: SOP classes and modalities of DICOM objects that are not images of the patient (skipped when scanning)
NON_IMAGE_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4": "DICOM SEG", "1.2.840.10008.5.1.4.1.1.66.7": "DICOM SEG",
                         "1.2.840.10008.5.1.4.1.1.66.5": "surface segmentation",
                         "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set"}
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "SR", "PR", "KO", "REG", "RWV"}
CLASSIC_SPACING = "Pixel Spacing (0028,0030)"


class DicomSeriesError(ValueError):
    """The DICOM folder cannot be turned into one consistent stack; the message names the files."""


@dataclass
class SliceRef:
    """One 2D image: a single-frame file, or one frame (0-based) of a multi-frame file."""
    path: str
    frame: Optional[int]
    position: Tuple[float, float, float]
    orientation: Tuple[float, ...]
    pixel_spacing: Tuple[float, float]        # (row spacing, column spacing)
    matrix: Tuple[int, int]                   # (rows, columns)
    image_type: str                           # Image Type / Frame Type values joined by backslashes
    inversion_time: Optional[float]           # ms
    thickness: Optional[float] = None
    spacing_between: Optional[float] = None
    pixel_spacing_source: str = CLASSIC_SPACING
    sop_uid: str = ""

    @property
    def name(self) -> str:
        return self.path if self.frame is None else f"{self.path} frame {self.frame + 1}"


def float_or_none(value) -> Optional[float]:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def first_item(ds, sequence: str):
    value = getattr(ds, sequence, None)
    return value[0] if value else None


def frame_item(shared, per_frame, sequence: str):
    """Item of a functional-group macro sequence, per-frame first, then shared."""
    for group in (per_frame, shared):
        value = getattr(group, sequence, None) if group is not None else None
        if value:
            return value[0]
    return None


def join_values(value) -> str:
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value or "")


def non_image_kind(ds) -> Optional[str]:
    """What a non-image DICOM object is (e.g. "DICOM SEG"), None for an image."""
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in NON_IMAGE_SOP_CLASSES:
        return NON_IMAGE_SOP_CLASSES[sop_class]
    modality = str(ds.get("Modality", "")).upper()
    if modality in NON_IMAGE_MODALITIES or "SegmentSequence" in ds:
        return f"a {modality or 'SEG'} object"
    return None


def numbers(name: str, holder, keyword: str, count: int) -> Tuple[float, ...]:
    """`count` finite numbers of `holder.keyword`, or an error naming the image and the attribute."""
    raw = holder.get(keyword)
    if isinstance(raw, (list, tuple, pydicom.multival.MultiValue)):
        values = list(raw)
    else:
        values = [] if raw is None or raw == "" else [raw]
    try:
        parsed = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        parsed = ()
    if len(parsed) != count or not all(np.isfinite(parsed)):
        shown = "\\".join(str(v) for v in values)
        raise DicomSeriesError(f"{name}: {keyword} must hold {count} finite numbers, found {len(values)} value(s) "
                               f"'{shown}'")
    return parsed


def orientation_of(name: str, holder) -> Tuple[float, ...]:
    iop = numbers(name, holder, "ImageOrientationPatient", 6)
    row, column = np.array(iop[:3]), np.array(iop[3:])
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(column) - 1) > 0.01 or abs(row @ column) > 0.01:
        raise DicomSeriesError(f"{name}: ImageOrientationPatient {iop} is not two unit vectors at right angles")
    return iop


def spacing_of(name: str, holder, source: str) -> Tuple[float, float]:
    spacing = numbers(name, holder, "PixelSpacing", 2)
    if min(spacing) <= 0:
        raise DicomSeriesError(f"{name}: {source} {spacing} must be positive")
    return spacing


def classic_spacing(path: str, ds) -> Tuple[float, float]:
    """Pixel Spacing of a single-frame image; refused when missing (see module doc)."""
    if "PixelSpacing" in ds:
        return spacing_of(path, ds, CLASSIC_SPACING)
    also = ("; it has Imager Pixel Spacing (0018,1164), which is measured at the detector of a projection image, "
            "not in the patient, and is not used") if "ImagerPixelSpacing" in ds else ""
    raise DicomSeriesError(f"{path}: no Pixel Spacing (0028,0030){also}; the pixel size is unknown, so areas and "
                           f"volumes cannot be computed (never assumed 1 mm)")


def _enhanced_slices(path: str, ds) -> List[SliceRef]:
    shared = first_item(ds, "SharedFunctionalGroupsSequence")
    out = []
    for k, per_frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        name = f"{path} frame {k + 1}"
        position = frame_item(shared, per_frame, "PlanePositionSequence")
        orientation = frame_item(shared, per_frame, "PlaneOrientationSequence")
        measures = frame_item(shared, per_frame, "PixelMeasuresSequence")
        if position is None or orientation is None or measures is None or "PixelSpacing" not in measures:
            raise DicomSeriesError(f"{path}: multi-frame image without plane position, plane orientation or "
                                   f"pixel spacing for frame {k + 1}; cannot place its frames")
        per_frame_measures = getattr(per_frame, "PixelMeasuresSequence", None)
        source = f"Pixel Measures Sequence (0028,9110) of the {'per-frame' if per_frame_measures else 'shared'} " \
                 f"functional groups"
        frame_type = frame_item(shared, per_frame, "MRImageFrameTypeSequence")
        modifier = frame_item(shared, per_frame, "MRModifierSequence")
        ti = None
        if modifier is not None and "InversionTimes" in modifier:
            times = modifier.InversionTimes
            ti = float_or_none(times[0] if isinstance(times, (list, pydicom.multival.MultiValue)) else times)
        kind = frame_type.get("FrameType", ds.get("ImageType", "")) if frame_type is not None else \
            ds.get("ImageType", "")
        out.append(SliceRef(path, k, numbers(name, position, "ImagePositionPatient", 3),
                            orientation_of(name, orientation), spacing_of(name, measures, source),
                            (int(ds.Rows), int(ds.Columns)), join_values(kind), ti,
                            float_or_none(measures.get("SliceThickness")),
                            float_or_none(measures.get("SpacingBetweenSlices")), source,
                            str(ds.get("SOPInstanceUID", ""))))
    return out


def slices_of(path: str, ds) -> List[SliceRef]:
    """The 2D images of one dataset read without pixels; [] when it is not an image or has no image geometry."""
    if non_image_kind(ds) is not None:
        return []
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced_slices(path, ds)
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds or "Rows" not in ds:
        return []
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise DicomSeriesError(f"{path}: {ds.NumberOfFrames} frames without per-frame functional groups; cannot "
                               f"place its frames")
    return [SliceRef(path, None, numbers(path, ds, "ImagePositionPatient", 3), orientation_of(path, ds),
                     classic_spacing(path, ds), (int(ds.Rows), int(ds.Columns)), join_values(ds.get("ImageType", "")),
                     float_or_none(ds.get("InversionTime")), float_or_none(ds.get("SliceThickness")),
                     float_or_none(ds.get("SpacingBetweenSlices")), CLASSIC_SPACING, str(ds.get("SOPInstanceUID", "")))]
