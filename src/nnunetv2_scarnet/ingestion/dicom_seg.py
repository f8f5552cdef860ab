"""DICOM SEG (highdicom) of a predicted label map, referencing the source DICOM series it was predicted from.

Segments follow the quantities of the label scheme (`--dataset-json`), not raw label values, and may overlap:
LV blood pool, LV myocardium (healthy + scar + MVO), infarct (scar + MVO) and MVO. Their segment numbers are
fixed by that order among the structures the scheme defines (default scheme: 1 blood pool, 2 myocardium,
3 infarct, 4 MVO), whatever a case contains: a structure absent from a case is an empty segment, so numbers
mean the same in every case of a dataset. Codes (SNOMED CT, scheme SCT; see docs/quantification_and_evaluation.md):

- LV blood pool: category Tissue (85756007), type Blood (87612001), anatomic region Left ventricle (87878005).
  No SNOMED CT concept for the LV cavity itself could be confirmed, so the cavity is coded as blood in the LV.
- LV myocardium: category Anatomical Structure (91723000), type Left ventricle myocardium (49848007).
- Infarct: category Morphologically Abnormal Structure (49755003), type Infarct (55641003, the morphologic
  abnormality, not the disorder Myocardial infarction 22298006), anatomic region LV myocardium.
- MVO: category Morphologically Abnormal Structure, type Obstruction (26036001, morphologic abnormality),
  anatomic region LV myocardium; no concept specific to microvascular obstruction / no-reflow could be confirmed,
  so the segment label and description carry that meaning.

Sources: a series of single-frame images, or one Enhanced (multi-frame) MR file whose frames are the slices (the
SEG frames then follow the source's frame order). Anonymised sources are completed in memory (`seg_sources`).
The output must not be an input: a path inside the source DICOM folder, one of the series' files or the label
map (compared by identity, so a hard link to a source image is refused too) is refused before anything is read
(writing there replaced a source image, or added a series to the folder). The SEG is written to a temporary file
renamed over the output, so an existing output file is replaced, never written through (its other hard links keep
their content).
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from nnunetv2_scarnet import __version__
from nnunetv2_scarnet.ingestion.dicom_series import DicomSeriesError, DicomStack, read_dicom_series
from nnunetv2_scarnet.ingestion.seg_sources import seg_sources
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, read_label_stack

SCT = "SCT"
TISSUE = Code("85756007", SCT, "Tissue")
ANATOMICAL_STRUCTURE = Code("91723000", SCT, "Anatomical Structure")
MORPHOLOGICALLY_ABNORMAL = Code("49755003", SCT, "Morphologically Abnormal Structure")
LEFT_VENTRICLE = Code("87878005", SCT, "Left ventricle")
LV_MYOCARDIUM = Code("49848007", SCT, "Left ventricle myocardium")
BLOOD = Code("87612001", SCT, "Blood")
INFARCT = Code("55641003", SCT, "Infarct")
OBSTRUCTION = Code("26036001", SCT, "Obstruction")

#: structure -> (segment label, description, category, type, anatomic region), in segment-number order
STRUCTURES: Dict[str, Tuple[str, str, Code, Code, Optional[Code]]] = {
    "blood_pool": ("LV blood pool", "left ventricular cavity (blood pool)", TISSUE, BLOOD, LEFT_VENTRICLE),
    "myocardium": ("LV myocardium", "left ventricular myocardium, healthy and infarcted", ANATOMICAL_STRUCTURE,
                   LV_MYOCARDIUM, None),
    "scar": ("Infarct", "myocardial infarct (scar), microvascular obstruction included", MORPHOLOGICALLY_ABNORMAL,
             INFARCT, LV_MYOCARDIUM),
    "mvo": ("Microvascular obstruction", "microvascular obstruction (no-reflow) inside the infarct",
            MORPHOLOGICALLY_ABNORMAL, OBSTRUCTION, LV_MYOCARDIUM),
}


def segment_numbers(scheme: LabelScheme) -> Dict[str, int]:
    """Structure -> segment number for a label scheme (the same for every case of the dataset)."""
    defined = [name for name in STRUCTURES if getattr(scheme, name)]
    return {name: i + 1 for i, name in enumerate(defined)}


def _masks(label: np.ndarray, scheme: LabelScheme) -> Dict[str, np.ndarray]:
    myo, scar, mvo, pool = scheme.masks(label)
    return {"blood_pool": pool, "myocardium": myo, "scar": scar, "mvo": mvo}


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same path after links, or one inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: not the same file
        return False


def check_seg_output(out_path: str, label_path: str, dicom_folder: str, source_files: Sequence[str] = ()) -> None:
    """Refuse a SEG output that is a folder, the label map, a source file (also through a hard link) or inside the
    source DICOM folder."""
    if os.path.isdir(out_path):
        raise DicomSeriesError(f"{out_path}: is a folder; give the DICOM SEG output file name")
    for source in (label_path, *source_files):
        if _same_file(out_path, source):
            raise DicomSeriesError(f"{out_path}: the DICOM SEG output is an input ({source}); it would be "
                                   f"overwritten")
    if _inside(out_path, dicom_folder):
        raise DicomSeriesError(f"{out_path}: the DICOM SEG output lies inside the source DICOM folder "
                               f"{dicom_folder}; it could replace a source image or join the series: write it "
                               f"elsewhere")


def _frames_and_sources(stack: DicomStack, slices: np.ndarray):
    """(source datasets, SEG frames in source order) for single-frame files or one multi-frame file."""
    if all(f is None for f in stack.frames):
        return seg_sources(stack.files), slices
    files = sorted(set(stack.files))
    if len(files) > 1 or any(f is None for f in stack.frames):
        raise DicomSeriesError(f"series {stack.series_uid}: its slices come from {len(files)} files, some "
                               f"multi-frame ({', '.join(files)}); a DICOM SEG can reference one multi-frame "
                               f"source only")
    sources = seg_sources(files)
    n_frames = int(sources[0].get("NumberOfFrames", 1))
    if sorted(stack.frames) != list(range(n_frames)):
        raise DicomSeriesError(f"{files[0]}: the stack uses frames {sorted(f + 1 for f in stack.frames)} of "
                               f"{n_frames}; a DICOM SEG of a multi-frame source needs every frame")
    frames = np.zeros((n_frames,) + slices.shape[1:], slices.dtype)
    frames[np.array(stack.frames)] = slices
    return sources, frames


def write_dicom_seg(label_path: str, dicom_folder: str, out_path: str, series_uid: Optional[str] = None,
                    algorithm_name: str = "ScarNet", scheme: Optional[LabelScheme] = None) -> str:
    """Write `label_path` (a prediction on the grid of the DICOM series) as a DICOM SEG file (see module doc)."""
    check_seg_output(out_path, label_path, dicom_folder)
    scheme = scheme or LabelScheme()
    label = read_label_stack(label_path, scheme)  # integers only: 3.4 is refused, never an empty segment
    stack = read_dicom_series(dicom_folder, series_uid)
    check_seg_output(out_path, label_path, dicom_folder, stack.files)
    if label.data.shape != stack.data.shape or not np.allclose(label.affine, stack.affine, atol=1e-3):
        raise DicomSeriesError(f"{label_path}: grid (shape {label.data.shape}) does not match DICOM series "
                               f"{stack.series_uid} in {dicom_folder} (shape {stack.data.shape})")
    if not label.data.any():
        raise DicomSeriesError(f"{label_path}: the label map is empty; a DICOM SEG needs at least one segment")
    numbers = segment_numbers(scheme)
    masks = _masks(label.data, scheme)
    slices = np.zeros((len(stack.files),) + label.data.shape[1::-1] + (len(numbers),), np.uint8)
    for name, number in numbers.items():  # (slice, row, column, segment): segments may overlap
        slices[..., number - 1] = np.transpose(masks[name], (2, 1, 0))
    sources, frames = _frames_and_sources(stack, slices)
    algorithm = hd.AlgorithmIdentificationSequence(name=algorithm_name, version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    descriptions: List[hd.seg.SegmentDescription] = []
    for name, number in numbers.items():
        text, description, category, kind, region = STRUCTURES[name]
        segment = hd.seg.SegmentDescription(
            segment_number=number, segment_label=text, segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm, anatomic_regions=[region] if region is not None else None)
        segment.SegmentDescription = description
        descriptions.append(segment)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=900, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="nnunetv2-scarnet", manufacturer_model_name=algorithm_name, software_versions=__version__,
        device_serial_number="0", omit_empty_frames=False)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(out_path)), f".{os.path.basename(out_path)}.{os.getpid()}.tmp")
    try:
        seg.save_as(tmp)
        os.replace(tmp, out_path)  # a new file: never written through an existing one (or its other links)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out_path
