"""Classical scar quantification inside a given myocardium mask: n-SD above remote myocardium, and FWHM.

- Intensity baseline: LGE stacks may sit on an offset (EMIDEC: air ~2000) and carry zero-filled borders. The
  baseline is the median of the darkest 10% of non-zero voxels of the stack (air/noise); zero voxels are ignored.
- n-SD: per slice, the myocardium is split into 6 sectors around the LV centre; the sector with the lowest mean
  intensity is the remote (healthy) myocardium; scar = myocardium > mean_remote + n * SD_remote.
- FWHM: per slice, scar = myocardium >= baseline + 0.5 * (max - baseline), with max the highest myocardial
  intensity after a 3x3 median filter (robust to single noisy pixels).
Slices with fewer than `min_myocardium_px` myocardial pixels get no scar. The output keeps blood pool and
myocardium from the input label map and writes scar (and MVO removed) into it, so it is evaluated like any
prediction.
"""
import os
from typing import Dict, List, Optional, Sequence

import nibabel as nib
import numpy as np
from scipy.ndimage import median_filter
from tqdm import tqdm

from nnunetv2_scarnet.io_safety import prepare_output_dir
from nnunetv2_scarnet.quantification.label_scheme import (LabelScheme, case_id_of, geometry_difference,
                                                          read_label_stack, read_stack, same_geometry)
from nnunetv2_scarnet.quantification.sectors import SectorGeometry, lv_center, pixel_angles, sector_index

N_SD_LEVELS = (2, 3, 5, 6)


def intensity_baseline(image: np.ndarray) -> float:
    values = image[image != 0].astype(float)
    if values.size == 0:
        return 0.0
    cut = np.percentile(values, 10)
    return float(np.median(values[values <= cut]))


def remote_statistics(image2d: np.ndarray, myo: np.ndarray, pool: np.ndarray, spacing_xy) -> tuple:
    """(mean, SD) of the darkest of 6 myocardial sectors."""
    sector, _ = sector_index(pixel_angles(myo.shape, lv_center(myo, pool), spacing_xy), SectorGeometry(6))
    best = None
    for s in range(6):
        values = image2d[myo & (sector == s)].astype(float)
        if values.size >= 5 and (best is None or values.mean() < best[0]):
            best = (float(values.mean()), float(values.std()))
    return best if best is not None else (float(image2d[myo].mean()), float(image2d[myo].std()))


def threshold_scar(image: np.ndarray, myo: np.ndarray, pool: np.ndarray, spacing, method: str,
                   min_myocardium_px: int = 20) -> np.ndarray:
    """Scar mask by `method` ("2SD", "3SD", "5SD", "6SD" or "FWHM") inside `myo`."""
    scar = np.zeros_like(myo)
    baseline = intensity_baseline(image)
    for k in range(image.shape[2]):
        m = myo[..., k]
        if m.sum() < min_myocardium_px:
            continue
        slice_image = image[..., k].astype(float)
        if method.endswith("SD"):
            n = float(method[:-2])
            mean, sd = remote_statistics(slice_image, m, pool[..., k], spacing[:2])
            scar[..., k] = m & (slice_image > mean + n * sd)
        elif method == "FWHM":
            peak = float(median_filter(slice_image, size=3)[m].max())
            scar[..., k] = m & (slice_image >= baseline + 0.5 * (peak - baseline))
        else:
            raise ValueError(f"unknown threshold method {method!r}")
    return scar


def baseline_label_maps(images_dir: str, myocardium_dir: str, out_dir: str,
                        methods: Sequence[str] = tuple(f"{n}SD" for n in N_SD_LEVELS) + ("FWHM",),
                        scheme: Optional[LabelScheme] = None) -> Dict[str, str]:
    """Write one folder of label maps per method (`out_dir/<method>/<case>.nii.gz`); returns method -> folder.

    `myocardium_dir` holds label maps whose myocardium (healthy + scar + MVO) and blood pool are used, e.g. the
    expert labels or a network's prediction.
    """
    scheme = scheme or LabelScheme()
    files = sorted(f for f in os.listdir(myocardium_dir) if f.endswith(".nii.gz"))
    if not files:
        raise ValueError(f"{myocardium_dir}: no .nii.gz label files")
    healthy = min(v for v in scheme.myocardium if v not in scheme.scar)
    scar_value = min(v for v in scheme.scar if v not in scheme.mvo)
    inputs = []  # everything is read and checked before the first file is written
    for name in files:
        label = read_label_stack(os.path.join(myocardium_dir, name), scheme)
        image = read_stack(os.path.join(images_dir, f"{case_id_of(name)}_0000.nii.gz"))
        if not same_geometry(image, label):
            raise ValueError(f"{image.path}: geometry differs from {label.path}: {geometry_difference(image, label)}")
        inputs.append((case_id_of(name), label, image))
    folders = {m: os.path.join(out_dir, m) for m in methods}
    prepare_output_dir(out_dir)  # new, or an earlier scarnet run's folder emptied (docs/reliability.md)
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    for case, label, image in tqdm(inputs, desc="threshold baselines", unit="case"):
        myo, _, _, pool = scheme.masks(label.data)
        for method in methods:
            out = np.where(myo, healthy, label.data).astype(np.uint8)
            out[threshold_scar(image.data, myo, pool, label.spacing, method)] = scar_value
            nib.save(nib.Nifti1Image(out, label.affine), os.path.join(folders[method], f"{case}.nii.gz"))
    return folders
