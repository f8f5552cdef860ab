"""Which label values make up LV myocardium, scar, MVO and blood pool, and how stacks are read."""
import json
import os
from dataclasses import dataclass, field
from typing import FrozenSet, Optional, Tuple

import nibabel as nib
import numpy as np

#: mass density of myocardium used for mass (g/mL)
MYOCARDIAL_DENSITY_G_PER_ML = 1.05


@dataclass(frozen=True)
class LabelScheme:
    """Label values of each structure. Defaults fit EMIDEC and this project's nnU-Net datasets:
    1 blood pool, 2 healthy myocardium, 3 scar, 4 MVO; LV myocardium = 2 + 3 + 4, scar = 3 + 4."""
    blood_pool: FrozenSet[int] = field(default_factory=lambda: frozenset({1}))
    myocardium: FrozenSet[int] = field(default_factory=lambda: frozenset({2, 3, 4}))
    scar: FrozenSet[int] = field(default_factory=lambda: frozenset({3, 4}))
    mvo: FrozenSet[int] = field(default_factory=lambda: frozenset({4}))

    @property
    def valid(self) -> FrozenSet[int]:
        return frozenset({0}) | self.blood_pool | self.myocardium | self.scar | self.mvo

    def masks(self, label: np.ndarray):
        """Boolean masks (myocardium, scar, mvo, blood pool) of a label array."""
        return (np.isin(label, list(self.myocardium)), np.isin(label, list(self.scar)),
                np.isin(label, list(self.mvo)), np.isin(label, list(self.blood_pool)))

    @classmethod
    def from_dataset_json(cls, path: str) -> "LabelScheme":
        """Scheme of an nnU-Net dataset.json with labels named blood_pool, myocardium, scar and optionally mvo."""
        with open(path) as f:
            labels = json.load(f)["labels"]
        missing = [k for k in ("myocardium", "scar") if k not in labels]
        if missing:
            raise ValueError(f"{path}: labels {missing} not defined; expected blood_pool, myocardium, scar[, mvo]")
        scar = {int(labels["scar"])}
        mvo = {int(labels["mvo"])} if "mvo" in labels else set()
        return cls(blood_pool=frozenset({int(labels["blood_pool"])}) if "blood_pool" in labels else frozenset(),
                   myocardium=frozenset({int(labels["myocardium"])} | scar | mvo), scar=frozenset(scar | mvo),
                   mvo=frozenset(mvo))


@dataclass
class Stack:
    """A 3D stack (x, y, slice) with its voxel spacing (mm) and affine."""
    path: str
    data: np.ndarray
    spacing: Tuple[float, float, float]
    affine: np.ndarray

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0


def read_stack(path: str, kind: str = "image") -> Stack:
    """Read a 3D NIfTI stack; slices are along the third array axis."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such {kind} file")
    try:
        image = nib.load(path)
        data = np.asarray(image.dataobj)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read as NIfTI ({exc})") from None
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D stack (x, y, slice), got shape {data.shape}")
    spacing = tuple(float(s) for s in image.header.get_zooms()[:3])
    return Stack(path, data, spacing, image.affine)


def read_label_stack(path: str, scheme: Optional[LabelScheme] = None) -> Stack:
    """Read a label stack and check that it holds only the scheme's values."""
    stack = read_stack(path, "label")
    scheme = scheme or LabelScheme()
    values = set(np.unique(stack.data).tolist())
    unknown = sorted(values - set(scheme.valid))
    if unknown:
        raise ValueError(f"{path}: label values {unknown} are not in the label scheme {sorted(scheme.valid)}")
    stack.data = stack.data.astype(np.int16)
    return stack


def same_geometry(a: Stack, b: Stack, atol: float = 1e-3) -> bool:
    return a.data.shape == b.data.shape and np.allclose(a.affine, b.affine, atol=atol)


def case_id_of(filename: str, suffix: str = ".nii.gz", image: bool = False) -> str:
    """nnU-Net case identifier of a file name. Only images carry the channel suffix `_dddd` (`Heart_0001_0000`),
    so it is stripped only with `image=True`; label names (`Heart_0001.nii.gz`) are kept whole."""
    name = os.path.basename(filename)
    if not name.endswith(suffix):
        raise ValueError(f"{filename}: expected a {suffix} file")
    name = name[: -len(suffix)]
    if image:
        if not (len(name) > 5 and name[-5] == "_" and name[-4:].isdigit()):
            raise ValueError(f"{filename}: image file names end in a channel suffix _0000 (nnU-Net convention)")
        return name[:-5]
    return name
