"""The README's example HTML report (docs/images/example_html_report.png): one real EMIDEC patient written as a DICOM
study (LGE, cine and TI-scout series, tests/test_report.py's `lge_study`), run through `scarnet report`'s own
output stage with the expert labels standing in for the prediction (a cheap random-weight model folder is loaded
but not used for the labels), then the top of the page screenshot by headless Chromium.

    python benchmarks/example_report_screenshot.py EMIDEC_CASES_FOLDER docs/images/example_html_report.png [CASE]

The test helpers' DICOM writer puts a deliberately wrong Slice Thickness (99 mm) into every file; it is removed
here, so the page says the thickness is not recorded instead of showing an invented one.
"""
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
import pydicom

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from report_helpers import build_model_folder  # noqa: E402
from test_report import lge_study  # noqa: E402

from nnunetv2_scarnet.report import pipeline  # noqa: E402
from nnunetv2_scarnet.report.predict import Prediction  # noqa: E402


def main(cases: str, out_png: str, case: str = "Case_P004", height: int = 1500) -> None:
    expert = np.asarray(nib.load(os.path.join(cases, case, "label.nii.gz")).dataobj).astype(np.uint8)

    def expert_as_prediction(self, image_path, out_seg_path, on_member=None):
        nib.save(nib.Nifti1Image(expert, nib.load(image_path).affine), out_seg_path)
        for _ in range(self.n_members):
            if on_member:
                on_member()
        return Prediction(expert, {"myocardium": None, "scar": None}, {}, ["fold 0"], int((expert >= 3).sum()))

    pipeline.ReportPredictor.predict = expert_as_prediction
    with tempfile.TemporaryDirectory() as tmp:
        study = os.path.join(tmp, f"Patient_{case.split('_')[-1]}")
        lge_study(cases, study, case)
        for root, _, files in os.walk(study):
            for name in files:
                ds = pydicom.dcmread(os.path.join(root, name))
                del ds.SliceThickness
                ds.save_as(os.path.join(root, name))
        model = build_model_folder(os.path.join(tmp, "model", "nnUNetTrainer__nnUNetPlans__2d"))
        out = os.path.join(tmp, "out")
        assert pipeline.run_report([study], model, out, ["0"], "cpu", mirroring=False) == 0
        name = os.path.basename(study)
        page = os.path.join(out, name, f"{name}_report.html")
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--force-device-scale-factor=1", f"--window-size=1200,{height}",
                        f"--screenshot={os.path.abspath(out_png)}", f"file://{page}"], check=True,
                       capture_output=True, timeout=600)
    print(out_png)


if __name__ == "__main__":
    main(*sys.argv[1:3], *(sys.argv[3:4]))
