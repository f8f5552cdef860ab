"""LGE-like short-axis phantom stacks: the embedded default data of the demo (no patient data needed).

Each stack holds a body ellipse with lung, epicardial fat and a right ventricle, a left-ventricular blood pool and
myocardial ring that shrink from base to apex, and (in infarct cases) an enhanced scar sector of varying
transmurality, optionally with a dark microvascular-obstruction core. The signal model (LGESignalModel: tissue
levels, partial volume, smooth texture, coil shading, slice-to-slice drift, Rician noise, labels drawn with a
contour error) is matched to EMIDEC's infarct cases by measurement (`python -m nnunetv2_scarnet.data.scar_realism`,
docs/demo.md), so that the phantom's scar is as hard to find as real scar. In-plane spacing 1.37-1.56 mm, slice
spacing 8-10 mm. Labels follow EMIDEC (0 background, 1 blood pool, 2 myocardium, 3 scar, 4 MVO), so the phantoms
go through the same converter as real data. A model trained on them is a demonstration only.
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


@dataclass
class LGESignalModel:
    """Signal model of the demo's phantoms. Tissue levels are in units of `unit` above (or below) the nulled healthy
    myocardium; with the texture and noise below, healthy myocardium's SD is about one unit, so the levels read
    roughly as n-SD. The numbers are matched to EMIDEC's infarct cases (docs/demo.md: real vs phantom, measured
    with `python -m nnunetv2_scarnet.data.scar_realism`)."""
    unit: float = 100.0
    myocardium: float = 4.0  # nulled myocardium, in units above air (zero signal)
    scar: Tuple[float, float] = (1.3, 2.0)  # per case, uniform
    blood_minus_scar: Tuple[float, float] = (-0.75, 0.25)  # per case, uniform
    mvo: float = 0.2  # no-reflow core: dark, near nulled myocardium
    fat: float = 2.0  # epicardial fat patches
    body: float = 0.5  # chest wall, liver, other tissue around the heart
    lung: float = -2.5
    partial_volume_px: float = 1.0  # Gaussian point-spread sigma (pixels) of the tissue map
    texture: float = 0.3  # smooth tissue / coil variation (SD, units) ...
    texture_px: float = 1.3  # ... and its correlation length (Gaussian sigma, pixels)
    noise: float = 0.1  # white noise per channel of the complex signal (SD, units); the magnitude is stored
    slice_offset: float = 0.2  # slice-to-slice signal change (SD, units): coil and inversion-time drift
    contour_error_mm: float = 1.2  # the labels' contours miss the true boundaries by up to ~this much per Fourier term


def _smooth_field(shape, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field of unit SD and correlation length `sigma_px`."""
    field = gaussian_filter(rng.standard_normal(shape), sigma_px)
    return field / field.std()


def _wobble(rng: np.random.Generator, amplitude: float, orders=(2, 3, 4)):
    """A smooth periodic function of angle: a few Fourier terms of random amplitude (up to `amplitude`) and phase."""
    terms = [(k, rng.uniform(-amplitude, amplitude), rng.uniform(0, 2 * np.pi)) for k in orders]
    return lambda theta: sum(a * np.cos(k * theta + p) for k, a, p in terms)


def _delta(theta, center):
    """Signed angle from `center` to `theta`, in (-pi, pi]."""
    return np.angle(np.exp(1j * (theta - center)))


def _heart(rng: np.random.Generator, shape, contrast: LGESignalModel) -> dict:
    """One phantom patient's anatomy (mm, radians) and tissue levels."""
    scar = float(rng.uniform(*contrast.scar))
    return dict(center=(shape[0] / 2 + rng.uniform(-6, 6), shape[1] / 2 + rng.uniform(-6, 6)),
                cavity=float(rng.uniform(21.0, 28.0)), wall=float(rng.uniform(8.5, 11.0)),
                ellipticity=float(rng.uniform(0.0, 0.08)), ellipse_angle=float(rng.uniform(0, np.pi)),
                septum=float(rng.uniform(-np.pi, np.pi)), rv_depth=float(rng.uniform(10.0, 18.0)),
                fat_gap=float(rng.uniform(2.0, 4.5)), endo=_wobble(rng, 0.04), epi=_wobble(rng, 0.06),
                fat=_wobble(rng, 1.0, (1, 2, 3, 5)), scar_level=scar,
                blood_level=scar + float(rng.uniform(*contrast.blood_minus_scar)))


def _regions(radius, theta, heart: dict, fraction: float, scar: dict, endo_shift=0.0, epi_shift=0.0):
    """Blood pool, myocardial ring, scar and MVO masks and the epicardial radius of one slice (`*_shift`: mm added
    to the endocardial and epicardial radius, a delineation that misses the true boundary)."""
    oval = 1 + heart["ellipticity"] * np.cos(2 * (theta - heart["ellipse_angle"]))
    true_cavity = heart["cavity"] * (1 - 0.45 * fraction) * oval * (1 + heart["endo"](theta))
    true_epi = true_cavity + heart["wall"] * (1 - 0.15 * fraction) * (1 + heart["epi"](theta))
    cavity, epi = true_cavity + endo_shift, true_epi + epi_shift
    pool, ring = radius <= cavity, (radius > cavity) & (radius <= epi)
    in_scar = mvo = np.zeros_like(ring)
    if scar:
        off_centre = np.abs(_delta(theta, scar["center"])) / scar["half_width"]
        depth = (radius - true_cavity) / (true_epi - true_cavity)
        reach = scar["transmurality"] * (1 - 0.3 * off_centre ** 2) * (1 + scar["wobble"](theta))
        in_scar = ring & (off_centre <= 1) & (depth <= np.maximum(reach, 0.15))
        if scar["mvo"]:
            mvo = in_scar & (off_centre <= 0.4) & (depth <= 0.45 * scar["transmurality"])
    return pool, ring, in_scar, mvo, true_epi


def tissue_slice(shape, spacing: float, heart: dict, fraction: float, scar: dict, contrast: "LGESignalModel",
                 rng: np.random.Generator):
    """One slice at `fraction` from base (0) to apex (1): (tissue level map relative to healthy myocardium, in
    units; EMIDEC label, delineated with the model's contour error)."""
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    dy, dx = (yy - heart["center"][0]) * spacing, (xx - heart["center"][1]) * spacing
    radius, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    pool, ring, in_scar, mvo, epi = _regions(radius, theta, heart, fraction, scar)
    ry, rx = shape[0] * 0.48 * spacing, shape[1] * 0.49 * spacing
    body = ((yy - shape[0] / 2) * spacing / ry) ** 2 + ((xx - shape[1] / 2) * spacing / rx) ** 2 <= 1
    level = np.where(body, contrast.body, -contrast.myocardium)
    from_septum = np.abs(_delta(theta, heart["septum"]))
    level[body & (from_septum > np.deg2rad(110)) & (radius > epi + heart["fat_gap"] + 5.0)] = contrast.lung
    level[(radius > epi) & (radius <= epi + heart["fat_gap"]) & (heart["fat"](theta) > 0.5)] = contrast.fat
    rv_depth = heart["rv_depth"] * (1 - 0.6 * fraction)
    rv = (radius > epi) & (radius <= epi + rv_depth) & (from_septum <= np.deg2rad(55))
    rv_wall = (radius > epi) & (radius <= epi + rv_depth + 3.0) & (from_septum <= np.deg2rad(60)) & ~rv
    level[rv_wall], level[rv] = 0.0, heart["blood_level"]
    level[pool], level[ring] = heart["blood_level"], 0.0
    level[in_scar], level[mvo] = heart["scar_level"], contrast.mvo
    error = contrast.contour_error_mm
    endo_shift, epi_shift = _wobble(rng, error, (2, 3, 4, 5, 6)), _wobble(rng, error, (2, 3, 4, 5, 6))
    pool, ring, in_scar, mvo, _ = _regions(radius, theta, heart, fraction, scar, endo_shift(theta), epi_shift(theta))
    label = np.zeros(shape, np.uint8)
    label[pool], label[ring], label[in_scar], label[mvo] = 1, 2, 3, 4
    return level, label


def lge_signal(level: np.ndarray, contrast: LGESignalModel, rng: np.random.Generator) -> np.ndarray:
    """Tissue levels -> magnitude image: point spread (partial volume), smooth texture, coil shading, slice
    offset, Rician noise."""
    blurred = gaussian_filter(level, contrast.partial_volume_px)
    textured = blurred + contrast.texture * _smooth_field(level.shape, contrast.texture_px, rng)
    yy, xx = np.meshgrid(*(np.linspace(-1, 1, n) for n in level.shape), indexing="ij")
    direction = rng.uniform(0, 2 * np.pi)
    shading = 1 + 0.1 * (np.cos(direction) * yy + np.sin(direction) * xx)
    offset = contrast.myocardium + rng.normal(0, contrast.slice_offset)
    signal = np.maximum((textured + offset) * contrast.unit * shading, 0)
    return rician(signal, contrast.noise * contrast.unit, rng)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of standard deviation `sigma` per channel."""
    return np.hypot(signal + rng.normal(0, sigma, signal.shape), rng.normal(0, sigma, signal.shape))


def make_phantom(seed: int, infarct: bool, shape: Tuple[int, int] = (128, 128),
                 contrast: LGESignalModel = LGESignalModel()) -> Tuple[np.ndarray, np.ndarray, Tuple[float, float, float]]:
    """Image (x, y, slice; int16), EMIDEC label (uint8) and spacing (mm) of one phantom patient."""
    rng = np.random.default_rng(seed)
    spacing = float(rng.uniform(1.37, 1.56))
    slice_spacing = float(rng.uniform(8.0, 10.0))
    n_slices = int(rng.integers(5, 10))
    heart = _heart(rng, shape, contrast)
    scar_slices = set()
    if infarct:
        span = min(n_slices, max(2, int(round(n_slices * rng.uniform(0.7, 1.15)))))
        first = int(rng.integers(0, n_slices - span + 1))
        scar_slices = set(range(first, first + span))
        scar_center, half_width = float(rng.uniform(-np.pi, np.pi)), float(np.deg2rad(rng.uniform(50, 105)))
        transmurality, with_mvo = float(rng.uniform(0.6, 1.0)), bool(rng.random() < 0.4)
    images, labels = [], []
    for k in range(n_slices):
        scar = {}
        if k in scar_slices:
            scar = dict(center=scar_center + rng.uniform(-0.15, 0.15), half_width=half_width * rng.uniform(0.8, 1.1),
                        transmurality=min(1.0, transmurality * rng.uniform(0.85, 1.15)),
                        wobble=_wobble(rng, 0.08), mvo=with_mvo)
        level, label = tissue_slice(shape, spacing, heart, k / max(n_slices - 1, 1), scar, contrast, rng)
        images.append(lge_signal(level, contrast, rng))
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
