"""Getting LGE into the pipeline and results back out: DICOM series -> NIfTI, predictions -> DICOM SEG."""
from nnunetv2_scarnet.ingestion.dicom_series import DicomSeriesError, dicom_to_nifti, list_series, read_dicom_series

__all__ = ["DicomSeriesError", "dicom_to_nifti", "list_series", "read_dicom_series"]
