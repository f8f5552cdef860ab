"""Hand-worked handedness check on a typical short-axis DICOM geometry (LPS Image Orientation written by hand).

Standard short-axis display (SCMR): viewed from the apex, the anterior wall at the top of the image and the septum
(RV side, patient right-anterior) on the viewer's left. So, in DICOM's LPS+ frame (+x patient left, +y posterior,
+z head), with the LV long axis running base -> apex to the patient's left, anterior and inferior:
- row direction (along a row, increasing column = viewer's left -> right = septum -> lateral wall: towards the
  patient's left and posterior): LPS (1, 1, 0)/sqrt2;
- column direction (down the rows = anterior wall -> inferior wall: right, posterior and inferior):
  LPS (-1, 1, -2)/sqrt6 (orthogonal to the row: 1*-1 + 1*1 + 0*-2 = 0);
- row x column = LPS (-1, 1, 1)/sqrt3, i.e. towards the patient's right, posterior and head: the base. Slices
  stacked along it therefore run apex -> base (slice 0 apical).
The expected answers below come from this display convention and the pixel placement, not from the code.
"""
import os

import nibabel as nib
import numpy as np
import pydicom

from dicom_helpers import write_series
from nnunetv2_scarnet.data.phantom import make_oriented_phantom
from nnunetv2_scarnet.ingestion import read_dicom_series
from nnunetv2_scarnet.quantification import LabelScheme, SectorGeometry
from nnunetv2_scarnet.quantification.label_scheme import Stack
from nnunetv2_scarnet.quantification.report import quantify_stack

ROW_LPS = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
COLUMN_LPS = np.array([-1.0, 1.0, -2.0]) / np.sqrt(6.0)
BASE_LPS = np.array([-1.0, 1.0, 1.0]) / np.sqrt(3.0)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def test_standard_display_on_a_typical_oblique_sax_geometry(tmp_path):
    # phantom in the standard display: array (column i, row j, slice), septum at the viewer's left (small i),
    # anterior up (small j), scar on the inferior wall (large j), slice 0 apical
    image, label, spacing = make_oriented_phantom(2, 180.0, True, -1, "inferior")
    lv_rows, lv_cols = np.nonzero(label[..., 4].T == 1)
    scar_rows, _ = np.nonzero(label[..., 4].T == 3)
    assert scar_rows.mean() > lv_rows.mean() + 10  # the scar is in the lower half of the displayed image
    affine = np.eye(4)
    affine[:3, 0] = LPS_TO_RAS @ ROW_LPS * spacing[0]
    affine[:3, 1] = LPS_TO_RAS @ COLUMN_LPS * spacing[1]
    affine[:3, 2] = LPS_TO_RAS @ BASE_LPS * spacing[2]
    affine[:3, 3] = [12.0, -30.0, 25.0]
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "sax.nii.gz")
    paths = write_series(str(tmp_path / "sax.nii.gz"), str(tmp_path / "dcm"))
    first = pydicom.dcmread(paths[0])
    assert np.allclose(first.ImageOrientationPatient, np.concatenate([ROW_LPS, COLUMN_LPS]), atol=1e-6)
    stack = read_dicom_series(os.path.dirname(paths[0]))
    assert np.array_equal(stack.data, image)
    result = quantify_stack(Stack("sax.nii.gz", label.astype(np.int16), stack.spacing, stack.affine), LabelScheme(),
                            SectorGeometry(), image=stack.data)
    o = result["orientation"]
    assert o["source"] == "geometry+image" and o["warnings"] == [] and result["aha_status"] == "ok", o["warnings"]
    assert o["apex_first"] is True
    assert abs((o["septum_deg"] - 180.0 + 180.0) % 360.0 - 180.0) < 15.0  # viewer's left
    assert o["direction"] == -1  # anterior (septum - 90 * direction = 270 deg) is up
    septum_ras = np.asarray(o["septum_direction_ras"])
    expected = LPS_TO_RAS @ -ROW_LPS  # viewer's left = against the row direction: patient right-anterior
    assert np.degrees(np.arccos(np.clip(septum_ras @ expected, -1, 1))) < 15.0
    scar = {s["segment"]: s["scar_px"] for s in result["aha"]}
    assert max(scar, key=scar.get) in {4, 10, 15}
    assert scar[1] == scar[7] == scar[13] == 0
