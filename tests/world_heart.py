"""A short-axis LGE stack whose anatomy is placed in WORLD (patient RAS+) coordinates, for orientation tests.

RAS+: +x the patient's right, +y anterior, +z superior. The LV is a ring around a long axis (base -> apex
`apex_dir`); the RV blood pool is a crescent hugging the epicardium on the side `rv_dir` (right-anterior by default,
the textbook anatomy), optionally turned by `rv_turn_deg` about the long axis (anatomical variation) and, on single
slices, by a further `slice_rv_turn_deg[k]` (towards anterior when positive: a slice whose RV lies elsewhere); a
scar sits on
the `scar_side` ('inferior' or 'anterior') wall. Anterior wall = the in-plane direction perpendicular to the septum
whose RAS y (anterior) component is positive. The stack is sampled on short-axis planes (perpendicular to the long
axis, so strongly oblique to the world axes) with a real affine, voxel centres evaluated from the world anatomy.
The expected answers of a test (septum direction, anterior, scar segments) come from these world placements, not
from the code under test.
"""
from typing import Dict, Optional, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter

from nnunetv2_scarnet.data.phantom import PhantomIntensities, rician

RIGHT_ANTERIOR = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _rotate(v: np.ndarray, axis: np.ndarray, deg: float) -> np.ndarray:
    """Rodrigues rotation of v about the unit axis."""
    t = np.radians(deg)
    return v * np.cos(t) + np.cross(axis, v) * np.sin(t) + axis * (axis @ v) * (1 - np.cos(t))


def world_heart(apex_dir=(-1.0, 1.0, -1.0), rv_turn_deg: float = 0.0, inplane_turn_deg: float = 25.0,
                apex_first: bool = True, scar_side: str = "inferior", rv_arc_deg: float = 120.0, seed: int = 0,
                shape: Tuple[int, int] = (112, 112), n_slices: int = 9,
                spacing: Tuple[float, float, float] = (1.6, 1.6, 10.0),
                slice_rv_turn_deg: Optional[Dict[int, float]] = None):
    """(image int16, EMIDEC label uint8, RAS affine, truth) with truth = dict of world unit vectors: septum (LV -> RV
    centre of the crescent), anterior, apex (long axis)."""
    rng = np.random.default_rng(seed)
    intens = PhantomIntensities()
    apex = _unit(apex_dir)
    rv = RIGHT_ANTERIOR - (RIGHT_ANTERIOR @ apex) * apex
    septum = _rotate(_unit(rv), apex, rv_turn_deg)
    anterior = np.cross(apex, septum)
    anterior = anterior if anterior[1] > 0 else -anterior
    # in-plane array axes: an arbitrary in-plane turn of (septum, anterior)
    e_i = _rotate(septum, apex, inplane_turn_deg)
    e_j = np.cross(apex, e_i)
    e_k = -apex if apex_first else apex  # slice index grows toward the base when slice 0 is the apex
    centre = np.array([20.0, -35.0, 40.0])  # LV centre at the basal plane
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([e_i * spacing[0], e_j * spacing[1], e_k * spacing[2]])
    depth_k0 = (n_slices - 1) * spacing[2] if apex_first else 0.0  # slice 0's distance from the base plane
    affine[:3, 3] = (centre + depth_k0 * apex - e_i * spacing[0] * (shape[0] / 2 - 0.3)
                     - e_j * spacing[1] * (shape[1] / 2 + 0.4))
    scar_dir = -anterior if scar_side == "inferior" else anterior
    scar_angle = np.degrees(np.arctan2(scar_dir @ anterior, scar_dir @ septum))
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    images, labels = [], []
    for k in range(n_slices):
        world = (affine[:3, :3] @ np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)]) + affine[:3, 3:4]).T
        rel = world - centre
        depth = rel @ apex                                   # mm from the base plane toward the apex
        q = rel - np.outer(depth, apex)
        radius = np.linalg.norm(q, axis=1).reshape(shape)
        angle = np.degrees(np.arctan2(q @ anterior, q @ septum)).reshape(shape)  # 0 septum, +90 anterior
        fraction = float(np.median(depth)) / ((n_slices - 1) * spacing[2])      # 0 base, 1 apex
        cavity, wall = 22.0 * (1 - 0.6 * fraction), 9.0 * (1 - 0.2 * fraction)
        epi = cavity + wall
        body = radius <= 0.45 * shape[0] * spacing[0]
        signal = np.where(body, intens.body, intens.air).astype(np.float64)
        label = np.zeros(shape, np.uint8)

        def delta(a):
            return np.abs((angle - a + 180.0) % 360.0 - 180.0)
        if fraction < 0.85:
            rv_depth = 16.0 * (1 - fraction)
            rv_centre = (slice_rv_turn_deg or {}).get(k, 0.0)  # in-plane angle from the septum, + = anterior
            rv_pool = (radius > epi) & (radius <= epi + rv_depth) & (delta(rv_centre) <= rv_arc_deg / 2)
            rv_wall = ((radius > epi) & (radius <= epi + rv_depth + 2.5) & (delta(rv_centre) <= rv_arc_deg / 2 + 4)
                       & ~rv_pool)
            signal[rv_pool], signal[rv_wall] = intens.blood, intens.myocardium
        pool, ring = radius <= cavity, (radius > cavity) & (radius <= epi)
        label[pool], signal[pool] = 1, intens.blood
        label[ring], signal[ring] = 2, intens.myocardium
        if fraction <= 0.6:
            scar = ring & (delta(scar_angle) <= 35.0) & ((radius - cavity) / wall <= 0.5 + 0.5 * (1 - fraction))
            label[scar], signal[scar] = 3, intens.scar
        images.append(rician(gaussian_filter(signal, 0.7), intens.noise_sigma, rng))
        labels.append(label)
    image = np.clip(np.round(np.stack(images, -1)), 0, 32767).astype(np.int16)
    truth: Dict[str, np.ndarray] = {"septum": septum, "anterior": anterior, "apex": apex}
    return image, np.stack(labels, -1), affine, truth
