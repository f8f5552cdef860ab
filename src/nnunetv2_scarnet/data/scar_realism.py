"""How hard is a stack's scar? The same measurements on real LGE (EMIDEC) and on the demo's phantoms.

    python -m nnunetv2_scarnet.data.scar_realism /path/to/emidec/cases [--phantoms 20]

Per infarct case (slices that carry scar), with EMIDEC labels (1 blood pool, 2 healthy myocardium, 3 scar, 4 MVO):
- `scar_nsd`: (median scar - median healthy myocardium) / SD of healthy myocardium (the n-SD of Flett et al. 2011,
  JACC Cardiovasc Imaging 4:150, and of the threshold baselines): the contrast-to-noise of scar against myocardium.
- `slice_scar_nsd`: the same contrast within each slice (its own median and SD of healthy myocardium), median over
  the slices: what a 2D network sees; `slice_level_sd`: SD of the slices' healthy-myocardium medians / pooled SD
  (slice-to-slice intensity changes: coil, inversion-time drift).
- `blood_nsd`: the same for the blood pool; `scar_minus_blood_nsd`: scar against blood pool, in the same units
  (near 0: subendocardial scar and the cavity look alike).
- `outside_nsd`: the band 2 pixels outside the epicardium (fat, lung, right ventricle, liver) against myocardium.
- `scar_below_2sd`: share of scar pixels below median healthy + 2 SD (scar that a 2-SD threshold misses:
  heterogeneity and partial volume).
- `border_scar_nsd`: n-SD of scar pixels that touch healthy myocardium (4-neighbours): partial volume at borders.
- `scar_fraction`: scar (3 + 4) pixels / myocardium (2 + 3 + 4) pixels on the slices with scar.
- `scar_slices`: share of the slices with myocardium that carry scar.
- `transmurality`, `scar_thickness_mm`, `circumferential_extent`: in 6-degree sectors about the blood pool's centre,
  scar area / myocardial area of each sector with scar (mean), scar area / (sector angle x mean scar radius) (mean),
  and the share of sectors with scar; `wall_mm`: the same thickness for the myocardium over all sectors.
- `healthy_core_sd`: SD of healthy myocardium eroded by one pixel / SD of all of it (how much of the spread is
  partial volume at its borders).
- `pixel_noise`: SD of the difference of horizontally adjacent pixels in the blood pool eroded by 2 pixels,
  divided by sqrt(2) and by the SD of healthy myocardium: the white (pixel-to-pixel) noise.
- `myo_lag1_corr`: correlation of horizontally adjacent healthy-myocardium pixels (after removing each slice's
  median): how smooth the myocardial texture and noise are.
- `spacing_mm`: in-plane pixel size.
"""
import argparse
import glob
import os
import sys
from typing import Dict, List, Optional

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion

SECTORS = 60
METRICS = ("spacing_mm", "scar_nsd", "slice_scar_nsd", "slice_level_sd", "blood_nsd", "scar_minus_blood_nsd", "outside_nsd", "scar_below_2sd",
           "border_scar_nsd", "scar_fraction", "scar_slices", "transmurality", "scar_thickness_mm",
           "circumferential_extent", "wall_mm", "healthy_core_sd", "pixel_noise", "myo_lag1_corr")
CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


def _sector_geometry(label2d: np.ndarray, spacing: float) -> Optional[Dict[str, List[float]]]:
    """Per 6-degree sector of one slice: myocardial and scar thickness (mm) and transmurality."""
    pool = label2d == 1
    myo = label2d >= 2
    if not pool.any() or not myo.any():
        return None
    cy, cx = np.argwhere(pool).mean(0)
    yy, xx = np.nonzero(myo)
    radius = np.hypot(yy - cy, xx - cx) * spacing
    sector = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * SECTORS).astype(int) % SECTORS
    scar = label2d[yy, xx] >= 3
    width = 2 * np.pi / SECTORS
    out = {"wall": [], "transmurality": [], "scar_thickness": [], "n_sectors": SECTORS, "scar_sectors": 0}
    for s in range(SECTORS):
        here = sector == s
        if not here.any():
            continue
        area = here.sum() * spacing ** 2
        out["wall"].append(area / (width * radius[here].mean()))
        in_scar = here & scar
        if in_scar.any():
            out["scar_sectors"] += 1
            out["transmurality"].append(in_scar.sum() / here.sum())
            out["scar_thickness"].append(in_scar.sum() * spacing ** 2 / (width * radius[in_scar].mean()))
    return out


def case_statistics(image: np.ndarray, label: np.ndarray, spacing: float) -> Optional[Dict[str, float]]:
    """The measurements above for one stack (x, y, slice); None when it has no scar (label 3) or no healthy
    myocardium."""
    image = image.astype(np.float64)
    with_scar = [k for k in range(label.shape[2]) if (label[..., k] == 3).any()]
    with_myo = [k for k in range(label.shape[2]) if (label[..., k] >= 2).any()]
    if not with_scar:
        return None
    img, lab = image[..., with_scar], label[..., with_scar]
    healthy, scar = img[lab == 2], img[lab == 3]
    if healthy.size < 20:
        return None
    med, sd = np.median(healthy), healthy.std()
    blood = img[lab == 1]
    outside, border, lag_a, lag_b, sectors, core, pool_diff = [], [], [], [], [], [], []
    slice_nsd, slice_level = [], []
    for k in range(lab.shape[2]):
        sl, im = lab[..., k], img[..., k]
        heart = sl >= 1
        band = binary_dilation(heart, iterations=2) & ~heart
        outside.append(im[band])
        touches_healthy = binary_dilation(sl == 2, CROSS)
        border.append(im[(sl == 3) & touches_healthy])
        centred = im - np.median(im[sl == 2]) if (sl == 2).any() else im
        both = (sl[:-1, :] == 2) & (sl[1:, :] == 2)
        lag_a.append(centred[:-1, :][both])
        lag_b.append(centred[1:, :][both])
        core.append(im[binary_erosion(sl == 2)])
        if (sl == 2).sum() >= 20:
            slice_level.append(np.median(im[sl == 2]))
            if (sl == 3).sum() >= 10:
                slice_nsd.append((np.median(im[sl == 3]) - slice_level[-1]) / im[sl == 2].std())
        pool = binary_erosion(sl == 1, iterations=2)
        pool_diff.append((im[1:, :] - im[:-1, :])[pool[1:, :] & pool[:-1, :]])
        geometry = _sector_geometry(sl, spacing)
        if geometry is not None:
            sectors.append(geometry)
    outside, border = np.concatenate(outside), np.concatenate(border)
    lag_a, lag_b = np.concatenate(lag_a), np.concatenate(lag_b)
    core, pool_diff = np.concatenate(core), np.concatenate(pool_diff)
    scar_nsd = (np.median(scar) - med) / sd
    blood_nsd = (np.median(blood) - med) / sd if blood.size else np.nan
    return {
        "spacing_mm": float(spacing),
        "scar_nsd": float(scar_nsd),
        "slice_scar_nsd": float(np.median(slice_nsd)) if slice_nsd else np.nan,
        "slice_level_sd": float(np.std(slice_level) / sd) if len(slice_level) > 1 else np.nan,
        "blood_nsd": float(blood_nsd),
        "scar_minus_blood_nsd": float(scar_nsd - blood_nsd),
        "outside_nsd": float((np.median(outside) - med) / sd),
        "scar_below_2sd": float(np.mean(scar < med + 2 * sd)),
        "border_scar_nsd": float((np.median(border) - med) / sd) if border.size else np.nan,
        "scar_fraction": float((lab >= 3).sum() / (lab >= 2).sum()),
        "scar_slices": len(with_scar) / max(len(with_myo), 1),
        "transmurality": float(np.mean([t for g in sectors for t in g["transmurality"]])),
        "scar_thickness_mm": float(np.mean([t for g in sectors for t in g["scar_thickness"]])),
        "circumferential_extent": float(np.mean([g["scar_sectors"] / g["n_sectors"] for g in sectors])),
        "wall_mm": float(np.mean([t for g in sectors for t in g["wall"]])),
        "healthy_core_sd": float(core.std() / sd) if core.size >= 20 else np.nan,
        "pixel_noise": float(pool_diff.std() / np.sqrt(2) / sd) if pool_diff.size >= 20 else np.nan,
        "myo_lag1_corr": float(np.corrcoef(lag_a, lag_b)[0, 1]),
    }


def summarise(rows: List[Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """Median and interquartile range of each measurement over cases."""
    out = {}
    for metric in METRICS:
        values = np.array([r[metric] for r in rows], float)
        values = values[np.isfinite(values)]
        q1, q2, q3 = np.percentile(values, [25, 50, 75])
        out[metric] = {"median": float(q2), "q1": float(q1), "q3": float(q3), "n": int(values.size)}
    return out


def emidec_statistics(cases_folder: str) -> List[Dict[str, float]]:
    """`case_statistics` of every infarct case (`Case_P*/image.nii.gz` + `label.nii.gz`) in an EMIDEC folder."""
    import nibabel as nib

    rows = []
    for folder in sorted(glob.glob(os.path.join(cases_folder, "*"))):
        if not os.path.isfile(os.path.join(folder, "label.nii.gz")):
            continue
        label = np.asarray(nib.load(os.path.join(folder, "label.nii.gz")).dataobj)
        image_nifti = nib.load(os.path.join(folder, "image.nii.gz"))
        stats = case_statistics(np.asarray(image_nifti.dataobj), label, float(image_nifti.header.get_zooms()[0]))
        if stats is not None:
            rows.append(stats)
    return rows


def phantom_statistics(n_cases: int = 20, seed: int = 0) -> List[Dict[str, float]]:
    """`case_statistics` of `n_cases` infarct phantoms."""
    from nnunetv2_scarnet.data.phantom import make_phantom

    rows = []
    for i in range(n_cases):
        image, label, spacing = make_phantom(seed * 1000 + i, infarct=True)
        stats = case_statistics(image, label, spacing[0])
        if stats is not None:
            rows.append(stats)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", help="EMIDEC cases folder (<case>/image.nii.gz + label.nii.gz)")
    parser.add_argument("--phantoms", type=int, default=20)
    args = parser.parse_args(argv)
    real, phantom = summarise(emidec_statistics(args.cases)), summarise(phantom_statistics(args.phantoms))
    print(f"{'measurement':<24} {'real median [IQR]':>26} {'phantom median [IQR]':>26}")
    for metric in METRICS:
        r, p = real[metric], phantom[metric]
        print(f"{metric:<24} {r['median']:8.2f} [{r['q1']:6.2f}, {r['q3']:6.2f}]   "
              f"{p['median']:8.2f} [{p['q1']:6.2f}, {p['q3']:6.2f}]")
    print(f"(cases: real {real['scar_nsd']['n']}, phantom {phantom['scar_nsd']['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
