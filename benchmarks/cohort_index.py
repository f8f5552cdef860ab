"""Study index time vs number of files: synthetic export trees of small DICOM files (headers as a scanner writes
them, 16x16 pixels), 40 files per study in 4 series (a 10-slice LGE stack with one inversion time, a single-position
cine, a TI scout, a T1 map), one README per study folder, three folder levels. Times `build_index` per tree size
and worker count and prints a Markdown table (docs/benchmarks.md, "Cohort index").

    PYTHONPATH=src python benchmarks/cohort_index.py WORK_DIR [1000 5000 20000]
"""
import os
import sys
import time

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from nnunetv2_scarnet.report.cohort_index import build_index, studies_of

SERIES = (("LGE PSIR SAX", 10, lambda k: 300.0, True), ("CINE SAX", 10, lambda k: None, False),
          ("TI scout", 10, lambda k: 150.0 + 25 * k, False), ("T1 MAP MOLLI", 10, lambda k: None, True))


def write_tree(root: str, n_files: int) -> None:
    pixels = np.zeros((16, 16), np.int16).tobytes()
    for s in range(n_files // 40):
        study_uid = generate_uid()
        folder = os.path.join(root, f"site{s % 3}", f"patient{s:05d}", "study")
        for number, (description, n, ti, stack) in enumerate(SERIES):
            series_uid, series_folder = generate_uid(), os.path.join(folder, f"series{number}")
            os.makedirs(series_folder, exist_ok=True)
            for k in range(n):
                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
                meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds = Dataset()
                ds.file_meta = meta
                ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
                ds.PatientID, ds.PatientName, ds.StudyDate = f"P{s:05d}", f"Patient^{s}", "20200101"
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study_uid, series_uid, "MR"
                ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = description, number + 1, k + 1
                ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
                ds.ImagePositionPatient = [0.0, 0.0, 8.0 * k if stack else 0.0]
                if ti(k) is not None:
                    ds.InversionTime = ti(k)
                ds.PixelSpacing, ds.Rows, ds.Columns = [1.5, 1.5], 16, 16
                ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
                ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
                ds.PixelData = pixels
                ds.save_as(os.path.join(series_folder, f"IM{k:04d}.dcm"), enforce_file_format=True)
        with open(os.path.join(folder, "README.txt"), "w") as f:
            f.write("not DICOM\n")


def main(work: str, sizes) -> None:
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs")
    print("| DICOM files | studies | workers | index s | files/s |\n|---|---|---|---|---|")
    for n in sizes:
        root = os.path.join(work, f"tree_{n}")
        if not os.path.isdir(root):
            write_tree(root, n)
        for workers in (1, 2):
            start = time.perf_counter()
            rows = build_index(root, workers)
            seconds = time.perf_counter() - start
            studies = studies_of(rows)
            assert len(studies) == n // 40 and all(s.chosen["series_description"] == "LGE PSIR SAX" for s in studies)
            print(f"| {n} | {len(studies)} | {workers} | {seconds:.1f} | {n / seconds:.0f} |", flush=True)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main(sys.argv[1], [int(a) for a in sys.argv[2:]] or [1000, 5000, 20000])
