"""DICOM LGE short-axis series -> one NIfTI stack with correct geometry.

Inputs: classic single-frame MR/CT-like files (one slice each) and Enhanced (multi-frame) MR, whose frames are
read from the per-frame and shared functional groups (Plane Position, Plane Orientation, Pixel Measures,
MR Image Frame Type, MR Modifier); each frame counts as one slice.

Slices are ordered by Image Position (Patient) projected on the slice normal n = row x column direction of Image
Orientation (Patient). The slice spacing is the median step of those projections: the distance between slice
planes along the normal, also for sheared stacks (a constant in-plane shift per slice, e.g. gantry tilt), whose
affine keeps the true shifted slice step while the NIfTI voxel size (pixdim) holds the normal distance, so that
voxel volume = pixel area x plane distance. Never from Slice Thickness or Slice Location. A single slice has no
positions to measure: its spacing is Spacing Between Slices (0018,0088), else Slice Thickness (0018,0050), else
1 mm with a warning; `DicomStack.spacing_source` says which. The NIfTI array is (column, row, slice) with a RAS
affine built from the DICOM LPS geometry.

Headers are checked slice by slice (`dicom_slices`: position, orientation, pixel spacing and its source, never
1 mm by default) and pixels are read as modality values with the photometric interpretation applied
(`dicom_pixels`: MONOCHROME1 inverted, VOI LUT and colour data refused). Folders are searched recursively
(`safe_files`: regular files only, symbolic links to folders followed, each real folder and file once) and headers
are read within bounds (`dicom_header`: a deflated file inflating past 256 MiB or a header past 8 MiB is refused
when its series is read, naming the file).

Problems are reported with the files involved: several series without a chosen UID (listed); two files with one
SOPInstanceUID; several kinds of image in one series (`series_kinds`: magnitude and phase-sensitive (PSIR)
reconstructions, several inversion times at the same slice positions, or a TI scout's spread), listed with the
`--image-type` / `--inversion-time` values that choose each (an inversion time drifting a little from slice to
slice is one stack);
mixed orientations; slices offset in-plane from the line through the others (more than `inplane_tolerance` x pixel
spacing); duplicate positions; differing matrix sizes; missing slices (a gap in the positions). Files that are
not DICOM, DICOM without image geometry, DICOM objects that are not images (a DICOM SEG sent back from PACS), and
entries that are not regular files (a FIFO named `*.dcm`) are skipped with a warning naming them and the reason.
"""
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import nibabel as nib
import numpy as np
from nnunetv2_scarnet.ingestion.dicom_header import UnreadableFile, read_header
from nnunetv2_scarnet.ingestion.dicom_pixels import slice_pixels
from nnunetv2_scarnet.ingestion.dicom_slices import DicomSeriesError, SliceRef, non_image_kind, slices_of
from nnunetv2_scarnet.ingestion.safe_files import list_files
from nnunetv2_scarnet.ingestion.series_kinds import check_unique_instances, image_kinds, select_kind
from nnunetv2_scarnet.quantification.label_scheme import PLAUSIBLE_SPACING_MM, check_spacing

ENHANCED_MR_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
                           "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image Storage",
                           "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage"}

__all__ = ["DicomSeriesError", "DicomStack", "SeriesInfo", "SliceRef", "check_stack_spacing", "dicom_to_nifti",
           "image_kinds", "list_series", "read_dicom_series", "scan_folder", "select_kind"]


@dataclass
class SeriesInfo:
    uid: str
    description: str
    files: List[str]
    slices: List[SliceRef] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # files whose headers cannot be used (raised when read)


@dataclass
class DicomStack:
    data: np.ndarray            # (column, row, slice)
    affine: np.ndarray          # RAS (the slice column keeps any shear)
    spacing: Tuple[float, float, float]   # column, row, distance between slice planes along the normal
    files: List[str]            # source files in slice order (a multi-frame file repeats)
    series_uid: str
    frames: List[Optional[int]] = field(default_factory=list)  # frame of each slice (None: single-frame file)
    spacing_source: str = "image positions"
    image_type: str = ""
    inversion_time: Optional[float] = None   # median over the slices (ms)
    pixel_spacing_source: str = "Pixel Spacing (0028,0030)"
    inversion_time_range: Optional[Tuple[float, float]] = None  # (min, max) ms: drifts over slices in some series


def scan_folder(folder: str) -> Tuple[Dict[str, SeriesInfo], List[str]]:
    """Group the image files of `folder` (recursively, `safe_files.list_files`: regular files only, symbolic
    links followed, each real folder and file once) by SeriesInstanceUID; also return the skipped entries, each
    "path (reason)" (not a regular file, not DICOM, no image geometry, a DICOM object that is not an image such
    as a DICOM SEG, a link loop). A file with a broken header (`dicom_slices`) or past the header bounds
    (`dicom_header`) is kept in its series' `problems`, refused when that series is read: a broken localiser does
    not block the LGE series of the same study."""
    if not os.path.isdir(folder):
        raise DicomSeriesError(f"{folder}: not a folder")
    files, left_out = list_files(folder)
    series, skipped = group_series(files)
    return series, [str(s) for s in left_out] + skipped


def group_series(paths: Iterable[str]) -> Tuple[Dict[str, SeriesInfo], List[str]]:
    """`scan_folder`'s grouping of the given files (headers only, `dicom_header.read_header`):
    {SeriesInstanceUID: SeriesInfo}, skipped ("path (reason)")."""
    series: Dict[str, SeriesInfo] = {}
    skipped = []
    for path in paths:
        try:
            header = read_header(path)
        except UnreadableFile as exc:
            skipped.append(f"{path} ({exc})")
            continue
        ds = header.dataset
        kind = non_image_kind(ds)
        try:
            slices, problem = ([] if kind or header.problem else slices_of(path, ds)), None
        except DicomSeriesError as exc:  # reported when this series is read, not when another one is
            slices, problem = [], str(exc)
        if header.problem and not kind:
            problem = f"{path}: {header.problem}; the file is not read"
        if not slices and problem is None:
            skipped.append(f"{path} ({kind or 'no image geometry'})")
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        info = series.setdefault(uid, SeriesInfo(uid, str(ds.get("SeriesDescription", "")), []))
        info.files.append(path)
        info.slices.extend(slices)
        if problem is not None:
            info.problems.append(problem)
    return dict(sorted(series.items())), skipped


def list_series(folder: str) -> List[SeriesInfo]:
    return list(scan_folder(folder)[0].values())


def _describe(series: Dict[str, SeriesInfo]) -> str:
    return "; ".join(f"{s.uid} ({s.description or 'no description'}, {len(s.files)} files)" for s in series.values())


def read_dicom_series(folder: str, series_uid: Optional[str] = None, gap_tolerance: float = 0.2,
                      image_type: Optional[str] = None, inversion_time: Optional[float] = None,
                      inplane_tolerance: float = 0.25) -> DicomStack:
    """Read one series of `folder` into a stack (see module doc). `gap_tolerance`: allowed relative deviation of
    a slice step from the median step before it counts as a missing slice. `inplane_tolerance`: allowed in-plane
    offset of a slice from the line through the others, in pixels."""
    series, skipped = scan_folder(folder)
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} file(s): {', '.join(skipped)}", stacklevel=2)
    if not series:
        raise DicomSeriesError(f"{folder}: no DICOM image files found")
    if series_uid is None:
        if len(series) > 1:
            raise DicomSeriesError(f"{folder}: {len(series)} series found, choose one by UID: {_describe(series)}")
        series_uid = next(iter(series))
    if series_uid not in series:
        raise DicomSeriesError(f"{folder}: no series with UID {series_uid}; found {_describe(series)}")
    problems = series[series_uid].problems
    if problems:
        more = f" (and {len(problems) - 1} more file(s) with problems)" if len(problems) > 1 else ""
        raise DicomSeriesError(problems[0] + more)
    check_unique_instances(series[series_uid].slices, series_uid)
    slices = select_kind(series[series_uid].slices, series_uid, image_type, inversion_time)
    first = slices[0]

    orientation = np.array(first.orientation, float)
    for s in slices:
        if not np.allclose(np.array(s.orientation, float), orientation, atol=1e-4):
            raise DicomSeriesError(f"mixed slice orientations in series {series_uid}: {s.name} differs from "
                                   f"{first.name}")
        if s.matrix != first.matrix:
            raise DicomSeriesError(f"{s.name}: matrix {s.matrix[0]}x{s.matrix[1]} differs from {first.name} "
                                   f"({first.matrix[0]}x{first.matrix[1]})")
        if not np.allclose(s.pixel_spacing, first.pixel_spacing, atol=1e-6):
            raise DicomSeriesError(f"{s.name}: pixel spacing {s.pixel_spacing} differs from {first.name} "
                                   f"({first.pixel_spacing})")
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([s.position for s in slices])
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    slices = [slices[i] for i in order]
    positions, distance = positions[order], distance[order]

    steps = np.diff(distance)
    for i, step in enumerate(steps):
        if abs(step) < 1e-3:
            raise DicomSeriesError(f"duplicate slice position {distance[i]:.3f} mm: {slices[i].name} and "
                                   f"{slices[i + 1].name}")
    row_spacing, column_spacing = first.pixel_spacing
    if len(slices) > 2:
        median = float(np.median(steps))
        for i, step in enumerate(steps):
            if abs(step - median) > gap_tolerance * median:
                raise DicomSeriesError(
                    f"missing slice(s) between {slices[i].name} and {slices[i + 1].name}: step {step:.2f} mm, the "
                    f"series' usual step is {median:.2f} mm")
        _check_inplane_offsets(slices, positions, row_dir, col_dir,
                               inplane_tolerance * min(row_spacing, column_spacing))
    if len(slices) > 1:
        slice_step = (positions[-1] - positions[0]) / (len(slices) - 1)  # keeps the shear of a sheared stack
        plane_distance = float(distance[-1] - distance[0]) / (len(slices) - 1)
        spacing_source = "image positions (distance between planes along the slice normal)"
    else:
        plane_distance, spacing_source = _single_slice_spacing(first)
        slice_step = normal * plane_distance

    cache: Dict[str, tuple] = {}
    data = np.stack([slice_pixels(s, cache) for s in slices], axis=-1)
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
    spacing = (column_spacing, row_spacing, plane_distance)
    times = [s.inversion_time for s in slices if s.inversion_time is not None]
    return DicomStack(data, affine, spacing, [s.path for s in slices], series_uid, [s.frame for s in slices],
                      spacing_source, first.image_type, float(np.median(times)) if times else None,
                      first.pixel_spacing_source, (min(times), max(times)) if times else None)


def _check_inplane_offsets(slices, positions, row_dir, col_dir, tolerance_mm: float) -> None:
    """Each slice's in-plane position must lie on the line through the others (a straight or uniformly sheared
    stack): residual from origin + k * median step, with a median origin, both robust to one offset slice."""
    inplane = np.stack([positions @ row_dir, positions @ col_dir], axis=1)
    step = np.median(np.diff(inplane, axis=0), axis=0)
    k = np.arange(len(slices))[:, None]
    origin = np.median(inplane - k * step, axis=0)
    residual = np.linalg.norm(inplane - origin - k * step, axis=1)
    offset = [i for i in range(len(slices)) if residual[i] > tolerance_mm]
    if offset:
        names = ", ".join(f"{slices[i].name} ({residual[i]:.2f} mm)" for i in offset)
        raise DicomSeriesError(f"slice(s) offset in-plane from the rest of the stack: {names}; a stack needs "
                               f"slices on one line of positions (tolerance {tolerance_mm:.2f} mm)")


def _single_slice_spacing(s: SliceRef) -> Tuple[float, str]:
    if s.spacing_between:
        return abs(s.spacing_between), "Spacing Between Slices (0018,0088) of the single slice"
    if s.thickness:
        return abs(s.thickness), "Slice Thickness (0018,0050) of the single slice"
    warnings.warn(f"{s.name}: a single slice without Spacing Between Slices or Slice Thickness; 1 mm assumed",
                  stacklevel=3)
    return 1.0, "assumed 1 mm (single slice without spacing tags)"


def is_sheared(stack: DicomStack, tolerance_mm: float = 1e-3) -> bool:
    """Whether the slice step has an in-plane component (the slices are shifted along the stack)."""
    column, normal = stack.affine[:3, 2], np.cross(stack.affine[:3, 0], stack.affine[:3, 1])
    normal = normal / np.linalg.norm(normal)
    return bool(np.linalg.norm(column - (column @ normal) * normal) > tolerance_mm)


def check_stack_spacing(folder: str, stack: DicomStack) -> None:
    """Refuse a stack whose spacing the NIfTI readers would refuse (`label_scheme.check_spacing`,
    `PLAUSIBLE_SPACING_MM`), e.g. a single slice whose Slice Thickness says 99 mm, and a single slice without
    spacing tags (the 1 mm of `read_dicom_series` is a guess: volumes would be wrong by the true slice spacing)."""
    where = f"series {stack.series_uid} in {folder}"
    if stack.spacing_source.startswith("assumed"):
        raise DicomSeriesError(f"{where}: a single slice without Spacing Between Slices (0018,0088) or Slice "
                               f"Thickness (0018,0050); its slice spacing is unknown, so volumes cannot be computed")
    try:
        check_spacing(folder, stack.spacing)
    except ValueError:
        for axis, value in zip(("x", "y", "slice"), stack.spacing):
            low, high = PLAUSIBLE_SPACING_MM["slice" if axis == "slice" else "in-plane"]
            if not (np.isfinite(value) and low <= value <= high):
                source = stack.spacing_source if axis == "slice" else stack.pixel_spacing_source
                raise DicomSeriesError(f"{where}: {axis} spacing {value:g} mm (from {source}) "
                                       f"is outside the plausible range for cardiac MRI ({low:g}-{high:g} mm)") from None
        raise


def dicom_to_nifti(folder: str, out_path: str, series_uid: Optional[str] = None, image_type: Optional[str] = None,
                   inversion_time: Optional[float] = None) -> DicomStack:
    """Convert one series to NIfTI (written only after the whole series was read and checked). The NIfTI voxel
    size is the stack's spacing (for a sheared stack, the distance between planes; the sform keeps the shear).
    `out_path` must end with .nii.gz or .nii and must not be a folder: the file written is exactly `out_path`."""
    if os.path.isdir(out_path) or not out_path.endswith((".nii.gz", ".nii")):
        raise DicomSeriesError(f"{out_path}: output must be a .nii.gz or .nii file name, not a folder or another "
                               f"suffix")
    stack = read_dicom_series(folder, series_uid, image_type=image_type, inversion_time=inversion_time)
    check_stack_spacing(folder, stack)
    image = nib.Nifti1Image(stack.data, stack.affine)
    sheared = is_sheared(stack)
    image.set_sform(stack.affine, code=1)
    if sheared:
        image.set_qform(None, code=0)  # a qform cannot hold a shear
    else:
        image.set_qform(stack.affine, code=1)
    image.header.set_zooms(stack.spacing)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    nib.save(image, out_path)
    return stack
