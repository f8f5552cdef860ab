"""LGE-like short-axis phantom stacks: the embedded default data of the demo (no patient data needed).

Each stack holds a body ellipse, a left-ventricular blood pool and myocardial ring that shrink from base to apex,
and (in infarct cases) a bright scar sector that grows from subendocardial to transmural, optionally with a dark
microvascular-obstruction core. Magnitude images carry Rician noise; in-plane spacing is 1.4-1.9 mm and slice
spacing 8-10 mm. Labels follow EMIDEC (0 background, 1 blood pool, 2 myocardium, 3 scar, 4 MVO), so the
phantoms go through the same converter as real data. A model trained on them is a demonstration only.
"""
import os
from dataclasses import dataclass
from typing import List, Tuple

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass
class PhantomIntensities:
    """Mean signal of each tissue before noise (arbitrary units, LGE contrast: nulled myocardium is dark)."""
    air: float = 0.0
    body: float = 90.0
    myocardium: float = 35.0
    blood: float = 210.0
    scar: float = 260.0
    mvo: float = 40.0
    noise_sigma: float = 12.0


def _polar(shape: Tuple[int, int], center: Tuple[float, float], spacing: float):
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    dy, dx = (yy - center[0]) * spacing, (xx - center[1]) * spacing
    return np.hypot(dy, dx), np.arctan2(dy, dx)


def phantom_slice(shape, center, spacing, cavity_mm, wall_mm, scar: dict, intens: PhantomIntensities, rng):
    """One slice: (signal without noise, EMIDEC label)."""
    radius, angle = _polar(shape, center, spacing)
    label = np.zeros(shape, np.uint8)
    signal = np.full(shape, intens.air, np.float64)
    ry, rx = shape[0] * 0.42 * spacing, shape[1] * 0.46 * spacing
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    body = (((yy - shape[0] / 2) * spacing / ry) ** 2 + ((xx - shape[1] / 2) * spacing / rx) ** 2) <= 1
    signal[body] = intens.body * (1 + 0.25 * gaussian_filter(rng.standard_normal(shape), 4)[body])
    pool = radius <= cavity_mm
    ring = (radius > cavity_mm) & (radius <= cavity_mm + wall_mm)
    label[pool], signal[pool] = 1, intens.blood
    label[ring], signal[ring] = 2, intens.myocardium
    if scar:
        delta = np.angle(np.exp(1j * (angle - scar["center"])))
        depth = (radius - cavity_mm) / wall_mm
        in_scar = ring & (np.abs(delta) <= scar["half_width"]) & (depth <= scar["transmurality"])
        label[in_scar], signal[in_scar] = 3, intens.scar
        if scar.get("mvo"):
            core = in_scar & (np.abs(delta) <= scar["half_width"] * 0.35) & (depth <= scar["transmurality"] * 0.5)
            label[core], signal[core] = 4, intens.mvo
    return gaussian_filter(signal, 0.7), label


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of standard deviation `sigma` per channel."""
    return np.hypot(signal + rng.normal(0, sigma, signal.shape), rng.normal(0, sigma, signal.shape))


def make_phantom(seed: int, infarct: bool, shape: Tuple[int, int] = (128, 128)) -> Tuple[np.ndarray, np.ndarray,
                                                                                         Tuple[float, float, float]]:
    """Image (x, y, slice; int16), EMIDEC label (uint8) and spacing (mm) of one phantom patient."""
    rng = np.random.default_rng(seed)
    intens = PhantomIntensities()
    spacing = float(rng.uniform(1.4, 1.9))
    slice_spacing = float(rng.uniform(8.0, 10.0))
    n_slices = int(rng.integers(7, 11))
    center = (shape[0] / 2 + rng.uniform(-8, 8), shape[1] / 2 + rng.uniform(-8, 8))
    wall = float(rng.uniform(7.0, 10.0))
    scar_slices = set()
    if infarct:
        first = int(rng.integers(0, max(1, n_slices - 3)))
        scar_slices = set(range(first, min(n_slices, first + int(rng.integers(3, 7)))))
        scar_center = float(rng.uniform(-np.pi, np.pi))
        half_width = float(np.deg2rad(rng.uniform(30, 70)))
        base_transmurality = float(rng.uniform(0.4, 1.0))
        with_mvo = bool(rng.random() < 0.4)
    images, labels = [], []
    for k in range(n_slices):
        fraction = k / max(n_slices - 1, 1)  # 0 = base, 1 = apex
        cavity = 24.0 * (1 - 0.65 * fraction)
        scar = {}
        if k in scar_slices:
            scar = dict(center=scar_center, half_width=half_width,
                        transmurality=min(1.0, base_transmurality + rng.uniform(-0.1, 0.1)), mvo=with_mvo)
        signal, label = phantom_slice(shape, center, spacing, cavity, wall * (1 - 0.2 * fraction), scar, intens, rng)
        images.append(rician(signal, intens.noise_sigma, rng))
        labels.append(label)
    image = np.clip(np.round(np.stack(images, -1)), 0, 32767).astype(np.int16)
    return image, np.stack(labels, -1).astype(np.uint8), (spacing, spacing, slice_spacing)


def write_phantom_cases(folder: str, n_cases: int, seed: int = 0, infarct_fraction: float = 0.7) -> List[str]:
    """Write `n_cases` phantoms as `<folder>/<case>/image.nii.gz` + `label.nii.gz`; returns the case ids."""
    os.makedirs(folder, exist_ok=True)
    case_ids = []
    n_infarct = int(round(n_cases * infarct_fraction))
    for i in range(n_cases):
        infarct = i < n_infarct
        case_id = f"Phantom_{'P' if infarct else 'N'}{i:03d}"
        image, label, spacing = make_phantom(seed * 1000 + i, infarct)
        affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
        os.makedirs(os.path.join(folder, case_id), exist_ok=True)
        for name, data in (("image", image), ("label", label)):
            nifti = nib.Nifti1Image(data, affine)
            nifti.set_qform(affine, code=1)
            nifti.set_sform(affine, code=1)
            nib.save(nifti, os.path.join(folder, case_id, f"{name}.nii.gz"))
        case_ids.append(case_id)
    return case_ids


def make_oriented_phantom(seed: int = 0, septum_deg: float = 180.0, apex_first: bool = True,
                          direction: int = -1, scar_at: str = "inferior", shape: Tuple[int, int] = (112, 112),
                          n_slices: int = 9, spacing: Tuple[float, float, float] = (1.6, 1.6, 10.0)):
    """Phantom with a right ventricle, for orientation tests: (image int16, EMIDEC label uint8, spacing).

    Angles follow `nnunetv2_scarnet.quantification.orientation`: theta = atan2((j - cj) * dy, (i - ci) * dx).
    The RV blood pool (bright, unlabelled like in EMIDEC) is a 120-degree crescent centred on `septum_deg` that
    touches the epicardium and ends before the apex; anterior lies at septum_deg - 90 * direction, inferior at
    septum_deg + 90 * direction (direction -1 with septum 180: the standard short-axis display, i as columns and j
    as rows top-down: septum left, anterior up). A subendocardial-to-transmural scar sits on the `scar_at` side ('inferior',
    'anterior', 'lateral' or 'septal') of the mid and basal slices. The LV shrinks toward the apex, which is slice 0
    when `apex_first`."""
    rng = np.random.default_rng(seed)
    intens = PhantomIntensities()
    offset = {"inferior": 90.0 * direction, "anterior": -90.0 * direction, "lateral": 180.0, "septal": 0.0}[scar_at]
    scar_deg = septum_deg + offset
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    c = (shape[0] / 2 + 0.3, shape[1] / 2 - 0.4)
    di, dj = (ii - c[0]) * spacing[0], (jj - c[1]) * spacing[1]
    radius, theta = np.hypot(di, dj), np.degrees(np.arctan2(dj, di))
    body = (di / (shape[0] * 0.45 * spacing[0])) ** 2 + (dj / (shape[1] * 0.45 * spacing[1])) ** 2 <= 1

    def delta(angle):
        return np.abs((theta - angle + 180.0) % 360.0 - 180.0)

    images, labels = [], []
    for level in range(n_slices):
        fraction = level / max(n_slices - 1, 1)  # 0 = base, 1 = apex
        cavity, wall = 22.0 * (1 - 0.6 * fraction), 9.0 * (1 - 0.2 * fraction)
        signal = np.where(body, intens.body, intens.air).astype(np.float64)
        label = np.zeros(shape, np.uint8)
        epi = cavity + wall
        if fraction < 0.85:
            rv_depth = 16.0 * (1 - fraction)
            rv = (radius > epi) & (radius <= epi + rv_depth) & (delta(septum_deg) <= 60.0)
            rv_wall = (radius > epi) & (radius <= epi + rv_depth + 2.5) & (delta(septum_deg) <= 64.0) & ~rv
            signal[rv], signal[rv_wall] = intens.blood, intens.myocardium
        pool, ring = radius <= cavity, (radius > cavity) & (radius <= epi)
        label[pool], signal[pool] = 1, intens.blood
        label[ring], signal[ring] = 2, intens.myocardium
        if fraction <= 0.6:
            depth = (radius - cavity) / wall
            scar = ring & (delta(scar_deg) <= 35.0) & (depth <= 0.5 + 0.5 * (1 - fraction))
            label[scar], signal[scar] = 3, intens.scar
        signal = gaussian_filter(signal, 0.7)
        images.append(rician(signal, intens.noise_sigma, rng))
        labels.append(label)
    order = list(reversed(range(n_slices))) if apex_first else list(range(n_slices))
    image = np.clip(np.round(np.stack([images[k] for k in order], -1)), 0, 32767).astype(np.int16)
    return image, np.stack([labels[k] for k in order], -1), spacing
