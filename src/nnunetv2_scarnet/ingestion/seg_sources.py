"""The source images of a DICOM SEG as highdicom needs them, also for anonymised exports.

Anonymisers delete attributes that highdicom copies into the SEG. The source files are never changed; in-memory
copies get:
- the type-2 attributes of the Patient and General Study modules (PS3.3 C.7.1.1, C.7.2.1: Patient's Name,
  Patient ID, Patient's Birth Date, Patient's Sex, Study Date, Study Time, Referring Physician's Name, Study ID,
  Accession Number; and Slice Thickness of the MR Image module, C.8.3.1) as empty values when absent (zero
  length: unknown, PS3.5 7.4.3); nothing is invented, so the SEG stays as anonymous as its source;
- Modality (type 1) from the SOP Class when it is absent: every MR image storage class implies "MR";
- the type-1 UIDs that tie the SEG to its source (Study, Series, SOP Instance, Frame of Reference) cannot be
  generated: a source without them is refused, naming the file.
"""
import copy
from typing import List, Sequence

import pydicom

from nnunetv2_scarnet.ingestion.dicom_slices import DicomSeriesError

TYPE_2_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")
#: type 2 in the MR Image module (PS3.3 C.8.3.1) of single-frame images
TYPE_2_EMPTY_SINGLE_FRAME = ("SliceThickness",)
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
MR_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.3",
                  "1.2.840.10008.5.1.4.1.1.4.4"}


def seg_sources(paths: Sequence[str]) -> List[pydicom.Dataset]:
    """The distinct files of `paths`, read with pixels, completed for highdicom as the module doc says."""
    out = []
    for path in dict.fromkeys(paths):
        ds = pydicom.dcmread(path)
        missing = [k for k in REQUIRED_UIDS if not str(ds.get(k, "")).strip()]
        if missing:
            raise DicomSeriesError(f"{path}: no {', '.join(missing)}; a DICOM SEG must reference its source by "
                                   f"these UIDs, which cannot be made up")
        ds = copy.deepcopy(ds)
        multi_frame = "PerFrameFunctionalGroupsSequence" in ds
        for keyword in TYPE_2_EMPTY + (() if multi_frame else TYPE_2_EMPTY_SINGLE_FRAME):
            if keyword not in ds:
                setattr(ds, keyword, "")
        if not str(ds.get("Modality", "")).strip():
            if str(ds.get("SOPClassUID", "")) not in MR_SOP_CLASSES:
                raise DicomSeriesError(f"{path}: no Modality and SOP Class {ds.get('SOPClassUID', '(none)')} is "
                                       f"not an MR image storage class; cannot tell the modality")
            ds.Modality = "MR"
        out.append(ds)
    return out
