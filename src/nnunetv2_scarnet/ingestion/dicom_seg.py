"""DICOM SEG (highdicom) of a predicted label map, referencing the source DICOM series it was predicted from."""
import os
from typing import Optional

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from nnunetv2_scarnet import __version__
from nnunetv2_scarnet.ingestion.dicom_series import DicomSeriesError, read_dicom_series
from nnunetv2_scarnet.quantification.label_scheme import read_label_stack

#: label value -> (segment label, property category, property type)
SEGMENTS = {
    1: ("LV blood pool", codes.SCT.AnatomicalStructure, codes.SCT.LeftVentricle),
    2: ("Healthy LV myocardium", codes.SCT.AnatomicalStructure, codes.SCT.LeftVentricleMyocardium),
    3: ("Myocardial scar", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.MyocardialInfarction),
    4: ("Microvascular obstruction", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Obstruction),
}


def write_dicom_seg(label_path: str, dicom_folder: str, out_path: str, series_uid: Optional[str] = None,
                    algorithm_name: str = "ScarNet") -> str:
    """Write `label_path` (a prediction on the grid of the DICOM series) as a DICOM SEG file."""
    if os.path.isdir(out_path):
        raise DicomSeriesError(f"{out_path}: is a folder; give the DICOM SEG output file name")
    label = read_label_stack(label_path)  # integers 0-4 only: 3.4 is refused, never truncated to an empty segment
    stack = read_dicom_series(dicom_folder, series_uid)
    if label.data.shape != stack.data.shape or not np.allclose(label.affine, stack.affine, atol=1e-3):
        raise DicomSeriesError(f"{label_path}: grid (shape {label.data.shape}) does not match DICOM series "
                               f"{stack.series_uid} in {dicom_folder} (shape {stack.data.shape})")
    values = sorted(int(v) for v in np.unique(label.data) if v != 0)
    unknown = [v for v in values if v not in SEGMENTS]
    if unknown:
        raise DicomSeriesError(f"{label_path}: label values {unknown} have no DICOM SEG segment definition")
    if not values:
        raise DicomSeriesError(f"{label_path}: the label map is empty; a DICOM SEG needs at least one segment")
    numbers = {value: i + 1 for i, value in enumerate(values)}
    frames = np.zeros((len(stack.files),) + label.data.shape[1::-1], np.uint8)  # (slice, row, column)
    for value, number in numbers.items():
        frames[np.transpose(label.data == value, (2, 1, 0))] = number
    algorithm = hd.AlgorithmIdentificationSequence(name=algorithm_name, version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    descriptions = [
        hd.seg.SegmentDescription(segment_number=numbers[v], segment_label=SEGMENTS[v][0],
                                  segmented_property_category=SEGMENTS[v][1],
                                  segmented_property_type=SEGMENTS[v][2],
                                  algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                  algorithm_identification=algorithm)
        for v in values]
    sources = [pydicom.dcmread(f) for f in stack.files]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=900, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="nnunetv2-scarnet", manufacturer_model_name=algorithm_name, software_versions=__version__,
        device_serial_number="0", omit_empty_frames=False)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    seg.save_as(out_path)
    return out_path
