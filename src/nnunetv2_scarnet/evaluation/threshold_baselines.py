"""Classical scar quantification inside a given myocardium mask: n-SD above remote myocardium, and FWHM.

All steps work per short-axis slice, on intensities relative to the stack's intensity baseline:

- Intensity baseline b: LGE stacks may sit on an offset (EMIDEC: air ~2000) and carry zero-filled borders. b is
  the median of the darkest 10% of non-zero voxels of the stack (air/noise); zero voxels are ignored.
- Remote myocardium: the myocardium eroded by one pixel in-plane (3x3), so that the partial-volume border with
  the bright blood pool and the dark epicardial fat/lung never enters the remote statistics, is cut into 6
  sectors of 60 degrees around the LV centre (blood-pool centroid, else the myocardium's). The remote region is
  the sector with the lowest *median* intensity (the median is not pulled up by a few enhanced pixels, unlike
  the mean); sectors with fewer than 10 eroded pixels are skipped (the whole eroded myocardium, or the
  myocardium if erosion empties it, is the fallback). Remote mean and SD are those of that sector.
- Candidates: n-SD: myocardium > mean_remote + n SD_remote. FWHM (Amado et al. 2004): the hyper-enhanced region
  is the gated (see below) regions of myocardium > mean_remote + 2 SD_remote; its maximum is the highest
  3x3-median-filtered signal inside that region (never over the whole myocardium, whose border touches the
  blood pool and epicardial fat); scar = the connected regions of myocardium >= mean_remote + 0.5 (max -
  mean_remote) that overlap the hyper-enhanced region. Half the maximum is taken above the remote myocardium,
  which is what nulled myocardium is meant to be (Amado's zero): on a well-nulled image the two coincide, while
  EMIDEC's normal myocardium keeps about half the blood-pool signal, so half of the maximum above air would
  label half of it.
- Enhancement gate: seeds are the 8-connected regions of at least `min_area_mm2` (20 mm^2) of the eroded
  myocardium whose 3x3-median-filtered signal is at least `gate` (0.9) times the median blood-pool signal of the
  slice (of the stack's when the slice has none): infarcted myocardium on LGE is about as bright as the blood
  pool, nulled normal myocardium about half as bright. A candidate region (8-connected, at least
  `min_area_mm2`) is kept only when it contains a seed. Seeds do not depend on n, so a lower n never gives less
  scar. Without any blood pool the gate cannot be applied and only the size rule remains.
- MVO filling: myocardium enclosed by scar (together with the blood pool, since no-reflow cores often touch the
  cavity) is added, as MVO when the label scheme has an MVO value, as readers include dark cores in the infarct.
Slices with fewer than `min_myocardium_px` myocardial pixels get no scar. The output keeps blood pool and
myocardium from the input label map and writes scar (and MVO) into it, so it is evaluated like any prediction.

Names: with the gate these are not the textbook n-SD / FWHM methods but n-SD (or FWHM) plus a blood-pool gate,
and they are named so everywhere (folders, tables, CSV, JSON): "3SD+gate", "FWHM+gate"; the textbook thresholds
alone (`gate=None`, `scarnet baselines --naive`) keep the plain names "3SD", "FWHM" (`method_name`).
"""
import os
from typing import Dict, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from nnunetv2_scarnet.io_safety import prepare_output_dir
from nnunetv2_scarnet.quantification.label_scheme import (LabelScheme, geometry_difference, image_file, label_files,
                                                          read_label_stack, read_stack, same_geometry)

N_SD_LEVELS = (2, 3, 5, 6)
#: default enhancement gate: candidate median signal / blood-pool median signal (both above the baseline)
ENHANCEMENT_GATE = 0.9
#: default smallest scar region kept by the gate (mm^2); also the scar-presence size in evaluation
MIN_SCAR_AREA_MM2 = 20.0
_EIGHT = np.ones((3, 3), bool)
#: the threshold methods, by their textbook names
METHODS = tuple(f"{n}SD" for n in N_SD_LEVELS) + ("FWHM",)


def method_name(method: str, gate: Optional[float]) -> str:
    """Name of a baseline as run: "3SD+gate" with the blood-pool enhancement gate, "3SD" without it."""
    return f"{method}+gate" if gate is not None else method


def all_method_names() -> frozenset:
    """Every baseline name `scarnet baselines` may give an output folder (gated and naive)."""
    return frozenset(method_name(m, g) for m in METHODS for g in (None, ENHANCEMENT_GATE))


def intensity_baseline(image: np.ndarray) -> float:
    values = image[image != 0].astype(float)
    if values.size == 0:
        return 0.0
    cut = np.percentile(values, 10)
    return float(np.median(values[values <= cut]))


def _sectors(myo: np.ndarray, pool: np.ndarray, spacing_xy, n: int = 6) -> np.ndarray:
    centre = np.argwhere(pool if pool.any() else myo).mean(axis=0)
    ii, jj = np.meshgrid(np.arange(myo.shape[0]), np.arange(myo.shape[1]), indexing="ij")
    angles = np.mod(np.arctan2((jj - centre[1]) * spacing_xy[1], (ii - centre[0]) * spacing_xy[0]), 2 * np.pi)
    return np.minimum((angles / (2 * np.pi / n)).astype(int), n - 1)


def remote_statistics(image2d: np.ndarray, myo: np.ndarray, pool: np.ndarray, spacing_xy,
                      min_pixels: int = 10) -> Tuple[float, float]:
    """(mean, SD) of the remote myocardium: the eroded sector of lowest median intensity (see module doc)."""
    eroded = ndimage.binary_erosion(myo, _EIGHT)
    region = eroded if eroded.sum() >= min_pixels else myo
    sector = _sectors(myo, pool, spacing_xy)
    best = None
    for s in range(6):
        values = image2d[region & (sector == s)].astype(float)
        if values.size >= min_pixels and (best is None or np.median(values) < best[0]):
            best = (float(np.median(values)), values)
    values = best[1] if best is not None else image2d[region].astype(float)
    return float(values.mean()), float(values.std())


def enhanced_seeds(signal: np.ndarray, myo: np.ndarray, pool_signal: Optional[float], min_px: float,
                   gate: float) -> Optional[np.ndarray]:
    """Truly enhanced myocardium of a slice: connected regions (>= min_px) of the eroded myocardium whose
    3x3-median-filtered signal is at least `gate` x the blood-pool signal. None when there is no blood pool."""
    if pool_signal is None:
        return None
    core = ndimage.binary_erosion(myo, _EIGHT)
    bright = core & (ndimage.median_filter(signal, size=3) >= gate * pool_signal)
    return _large(bright, min_px)


def _large(mask: np.ndarray, min_px: float) -> np.ndarray:
    """The 8-connected regions of `mask` with at least `min_px` pixels."""
    components, _ = ndimage.label(mask, _EIGHT)
    sizes = np.bincount(components.ravel())
    return mask & (sizes[components] >= min_px)


def _gate(candidates: np.ndarray, seeds: Optional[np.ndarray], min_px: float) -> np.ndarray:
    """Connected candidate regions (>= min_px) that contain an enhanced seed (all of them without seeds)."""
    candidates = _large(candidates, min_px)
    if seeds is None:
        return candidates
    components, _ = ndimage.label(candidates, _EIGHT)
    return np.isin(components, np.unique(components[seeds & (components > 0)])) & candidates


def fill_enclosed(scar: np.ndarray, myo: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Myocardium enclosed by scar, or by scar and blood pool together (dark MVO cores), per 2D slice."""
    enclosed = ndimage.binary_fill_holes(scar | pool) & ~ndimage.binary_fill_holes(pool)
    return enclosed & myo & ~scar


def threshold_scar(image: np.ndarray, myo: np.ndarray, pool: np.ndarray, spacing, method: str,
                   min_myocardium_px: int = 20, gate: Optional[float] = ENHANCEMENT_GATE,
                   min_area_mm2: float = MIN_SCAR_AREA_MM2, fill_mvo: bool = True,
                   return_filled: bool = False):
    """Scar mask by `method` ("2SD", "3SD", "5SD", "6SD" or "FWHM") inside `myo` (see module doc).

    `gate=None` switches the enhancement gate off (and the minimum area), `fill_mvo=False` the MVO filling: both
    reproduce the naive baselines. With `return_filled` also returns the mask of filled MVO cores."""
    if not (method == "FWHM" or (method.endswith("SD") and method[:-2].replace(".", "", 1).isdigit())):
        raise ValueError(f"unknown threshold method {method!r}")
    scar, filled = np.zeros_like(myo, bool), np.zeros_like(myo, bool)
    baseline = intensity_baseline(image)
    signal = image.astype(float) - baseline
    pool_all = float(np.median(signal[pool])) if pool.any() else None
    min_px = min_area_mm2 / (float(spacing[0]) * float(spacing[1])) if gate is not None else 0
    for k in range(image.shape[2]):
        m, p, s = myo[..., k].astype(bool), pool[..., k].astype(bool), signal[..., k]
        if m.sum() < min_myocardium_px:
            continue
        pool_signal = float(np.median(s[p])) if p.any() else pool_all
        mean, sd = remote_statistics(s, m, p, spacing[:2])
        seeds = enhanced_seeds(s, m, pool_signal, min_px, gate) if gate is not None else None
        if method == "FWHM":
            if gate is None:  # naive: maximum over the whole myocardium
                peak = float(ndimage.median_filter(s, size=3)[m].max())
                slice_scar = m & (s >= 0.5 * peak)
            else:
                enhanced = _gate(m & (s > mean + 2 * sd), seeds, min_px)
                if not enhanced.any():
                    continue
                peak = float(ndimage.median_filter(s, size=3)[enhanced].max())
                above, _ = ndimage.label(m & (s >= mean + 0.5 * (peak - mean)), _EIGHT)
                slice_scar = np.isin(above, np.unique(above[enhanced & (above > 0)]))
        else:
            slice_scar = m & (s > mean + float(method[:-2]) * sd)
            if gate is not None:
                slice_scar = _gate(slice_scar, seeds, min_px)
        if fill_mvo and slice_scar.any():
            filled[..., k] = fill_enclosed(slice_scar, m, p)
            slice_scar = slice_scar | filled[..., k]
        scar[..., k] = slice_scar
    return (scar, filled) if return_filled else scar


def baseline_label_maps(images_dir: str, myocardium_dir: str, out_dir: str,
                        methods: Sequence[str] = METHODS,
                        scheme: Optional[LabelScheme] = None, gate: Optional[float] = ENHANCEMENT_GATE,
                        fill_mvo: bool = True) -> Dict[str, str]:
    """Write one folder of label maps per method (`out_dir/<name>/<case>.nii.gz`, name from `method_name`:
    "3SD+gate", or "3SD" without the gate); returns name -> folder.

    `myocardium_dir` holds label maps whose myocardium (healthy + scar + MVO) and blood pool are used, e.g. the
    expert labels or a network's prediction. Filled MVO cores get the scheme's MVO value (scar value without one).
    """
    scheme = scheme or LabelScheme()
    files = label_files(myocardium_dir)  # .nii.gz and .nii; other image formats are refused by name
    if not files:
        raise ValueError(f"{myocardium_dir}: no label files (<case>.nii.gz or <case>.nii)")
    healthy = min(v for v in scheme.myocardium if v not in scheme.scar)
    scar_value = min(v for v in scheme.scar if v not in scheme.mvo)
    mvo_value = min(scheme.mvo) if scheme.mvo else scar_value
    inputs = []  # everything is read and checked before the first file is written
    for case, name in sorted(files.items()):
        label = read_label_stack(os.path.join(myocardium_dir, name), scheme)
        image = read_stack(image_file(images_dir, case) or os.path.join(images_dir, f"{case}_0000.nii.gz"))
        if not same_geometry(image, label):
            raise ValueError(f"{image.path}: geometry differs from {label.path}: {geometry_difference(image, label)}")
        inputs.append((case, label, image))
    names = {m: method_name(m, gate) for m in methods}
    folders = {names[m]: os.path.join(out_dir, names[m]) for m in methods}
    prepare_output_dir(out_dir)  # new, or an earlier scarnet run's folder emptied (docs/reliability.md)
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    for case, label, image in tqdm(inputs, desc="threshold baselines", unit="case"):
        myo, _, _, pool = scheme.masks(label.data)
        for method in methods:
            out = np.where(myo, healthy, label.data).astype(np.uint8)
            scar, filled = threshold_scar(image.data, myo, pool, label.spacing, method, gate=gate,
                                          fill_mvo=fill_mvo, return_filled=True)
            out[scar] = scar_value
            out[filled] = mvo_value
            nib.save(nib.Nifti1Image(out, label.affine), os.path.join(folders[names[method]], f"{case}.nii.gz"))
    return folders
