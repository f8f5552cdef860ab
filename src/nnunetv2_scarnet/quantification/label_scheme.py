"""Which label values make up LV myocardium, scar, MVO and blood pool, and how stacks are read."""
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, Optional, Tuple

import nibabel as nib
import numpy as np

#: mass density of myocardium used for mass (g/mL)
MYOCARDIAL_DENSITY_G_PER_ML = 1.05


@dataclass(frozen=True)
class LabelScheme:
    """Label values of each structure. Defaults fit EMIDEC and this project's nnU-Net datasets:
    1 blood pool, 2 healthy myocardium, 3 scar, 4 MVO; LV myocardium = 2 + 3 + 4, scar = 3 + 4.

    `declared`: the values were read from a dataset.json (`from_dataset_json`). The defaults are not a
    declaration: such labels carry MVO only where an MVO value occurs (`mvo_assessed`), since the dataset
    converter's default merges MVO into scar and leaves no dataset.json next to its label folders."""
    blood_pool: FrozenSet[int] = field(default_factory=lambda: frozenset({1}))
    myocardium: FrozenSet[int] = field(default_factory=lambda: frozenset({2, 3, 4}))
    scar: FrozenSet[int] = field(default_factory=lambda: frozenset({3, 4}))
    mvo: FrozenSet[int] = field(default_factory=lambda: frozenset({4}))
    declared: bool = field(default=False, compare=False)

    @property
    def valid(self) -> FrozenSet[int]:
        return frozenset({0}) | self.blood_pool | self.myocardium | self.scar | self.mvo

    def masks(self, label: np.ndarray):
        """Boolean masks (myocardium, scar, mvo, blood pool) of a label array."""
        return (np.isin(label, list(self.myocardium)), np.isin(label, list(self.scar)),
                np.isin(label, list(self.mvo)), np.isin(label, list(self.blood_pool)))

    @classmethod
    def from_dataset_json(cls, path: str) -> "LabelScheme":
        """Scheme of an nnU-Net dataset.json, its labels mapped by name (`LABEL_SYNONYMS`: blood pool, myocardium,
        scar and optionally MVO; `background` on 0; nnU-Net's `ignore` label is never predicted and skipped).

        Refused with one message naming the file: unreadable or invalid JSON, no `labels` mapping, nnU-Net
        region-based labels (lists of values), values that are not non-negative integers, a structure on the
        background value 0, two names on one value, no myocardium or scar, a name that maps to none of the
        structures (e.g. ACDC's `RV`) and two names for one structure; the message lists the names found."""
        try:
            with open(path) as f:
                content = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read dataset.json ({exc})") from None
        labels = content.get("labels") if isinstance(content, dict) else None
        if not isinstance(labels, dict) or not labels:
            raise ValueError(f"{path}: no 'labels' mapping (name -> integer value) in dataset.json")
        regions = [k for k, v in labels.items() if isinstance(v, (list, tuple, dict))]
        if regions or "regions_class_order" in content:
            raise ValueError(f"{path}: nnU-Net region-based labels ({', '.join(regions) or 'regions_class_order'}) "
                             f"are not supported; give one integer value per structure")
        bad = {k: v for k, v in labels.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
        if bad:
            raise ValueError(f"{path}: label values must be non-negative integers, got {bad}")
        on_background = [k for k, v in labels.items() if v == 0 and _normalised(k) != "background"]
        background = [v for k, v in labels.items() if _normalised(k) == "background"]
        if on_background or (background and background[0] != 0):
            raise ValueError(f"{path}: {on_background or ['background']} on value "
                             f"{0 if on_background else background[0]}; 0 must be the background")
        by_value: dict = {}
        for name, value in labels.items():
            by_value.setdefault(value, []).append(name)
        shared = {v: names for v, names in by_value.items() if len(names) > 1}
        if shared:
            raise ValueError(f"{path}: several structures on one label value: "
                             + "; ".join(f"{v}: {', '.join(n)}" for v, n in sorted(shared.items())))
        found = ", ".join(f"{k}={v}" for k, v in labels.items())
        structures, unmapped = _map_label_names(labels)
        missing = [k for k in ("myocardium", "scar") if k not in structures]
        if missing:
            raise ValueError(f"{path}: labels {missing} not defined; expected blood pool, myocardium, scar[, MVO] "
                             f"(names found: {found})")
        if unmapped:
            raise ValueError(f"{path}: {unmapped} (names found: {found}); give a dataset.json naming the labels "
                             f"blood_pool, myocardium, scar[, mvo]")
        scar = {structures["scar"]}
        mvo = {structures["mvo"]} if "mvo" in structures else set()
        return cls(blood_pool=frozenset({structures["blood_pool"]}) if "blood_pool" in structures else frozenset(),
                   myocardium=frozenset({structures["myocardium"]} | scar | mvo), scar=frozenset(scar | mvo),
                   mvo=frozenset(mvo), declared=True)


def labels_carry_mvo(scheme: LabelScheme, label_arrays: Iterable[np.ndarray]) -> bool:
    """Whether these labels carry MVO: the scheme declares an MVO label (a dataset.json names one), or, with
    undeclared (default) values, an MVO value occurs in the label arrays. Otherwise MVO is not assessed (merged
    into scar), never 0 mL. Callers pass one patient's label map: the decision never depends on other patients."""
    if not scheme.mvo:
        return False
    if scheme.declared:
        return True
    values = list(scheme.mvo)
    return any(bool(np.isin(np.asarray(a), values).any()) for a in label_arrays)


def mvo_status(assessed: bool, scheme: LabelScheme, forced_off: bool = False) -> str:
    """`mvo_status` text: 'assessed', or 'not_assessed (reason)'."""
    if assessed:
        return "assessed"
    if forced_off or scheme.mvo and scheme.declared:
        return "not_assessed (MVO merged into scar in these labels)"
    if not scheme.mvo:
        return "not_assessed (the label scheme has no MVO label: MVO merged into scar)"
    return (f"not_assessed (no dataset.json declares an MVO label and this label map holds no MVO value "
            f"{'/'.join(str(v) for v in sorted(scheme.mvo))}: MVO merged into scar or absent; a dataset.json naming "
            f"an MVO label, e.g. --dataset-json, reports 0 mL)")


def scheme_summary(scheme: LabelScheme) -> dict:
    """JSON form of a scheme: sorted values per structure and whether they were declared by a dataset.json."""
    return {"blood_pool": sorted(scheme.blood_pool), "myocardium": sorted(scheme.myocardium),
            "scar": sorted(scheme.scar), "mvo": sorted(scheme.mvo), "declared": scheme.declared}


#: label names of each structure, compared lower-case without spaces, dashes and underscores (EMIDEC, ACDC-style
#: `MLV` / `LVC`, common spellings); an ambiguous bare `LV` (cavity in ACDC, whole ventricle elsewhere) is not one
LABEL_SYNONYMS = {
    "blood_pool": {"bloodpool", "lvbloodpool", "lvbp", "lvcavity", "lvc", "cavity", "leftventricularcavity"},
    "myocardium": {"myocardium", "myo", "lvmyocardium", "lvmyo", "mlv", "myocard", "healthymyocardium",
                   "normalmyocardium"},
    "scar": {"scar", "infarct", "infarction", "myocardialinfarction", "infarctedmyocardium", "mi", "lge", "fibrosis"},
    "mvo": {"mvo", "noreflow", "microvascularobstruction", "persistentmvo", "pmvo"},
}
#: names that are no structure: the background, and nnU-Net's ignore label (never predicted)
NON_STRUCTURE_NAMES = {"background", "ignore"}


def _normalised(name: str) -> str:
    return "".join(c for c in str(name).lower() if c.isalnum())


def _map_label_names(labels: dict):
    """({structure: value}, problem) of the dataset.json labels by `LABEL_SYNONYMS`; the problem names the label
    names that map to no structure or to a structure already taken ("" when there is none)."""
    structures, unknown, doubled = {}, [], []
    for name, value in labels.items():
        key = _normalised(name)
        if key in NON_STRUCTURE_NAMES:
            continue
        matches = [s for s, names in LABEL_SYNONYMS.items() if key in names]
        if not matches:
            unknown.append(name)
        elif matches[0] in structures:
            doubled.append(f"{matches[0]}: {name}")
        else:
            structures[matches[0]] = value
    problems = ([f"label name(s) {unknown} are none of blood pool, myocardium, scar, MVO"] if unknown else []) + \
        ([f"two names for one structure ({'; '.join(doubled)})"] if doubled else [])
    return structures, "; ".join(problems)


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


#: plausible voxel spacing (mm) of a cardiac MRI stack: (in-plane, slice); anything outside is refused
PLAUSIBLE_SPACING_MM = {"in-plane": (0.1, 10.0), "slice": (0.5, 50.0)}


def stored_zooms(path: str, image) -> Tuple[float, ...]:
    """pixdim[1:4] as stored in the file (nibabel silently turns a stored 0 into 1 when it loads a header)."""
    try:
        from nibabel.openers import ImageOpener

        with ImageOpener(path) as f:
            header = type(image.header).from_fileobj(f, check=False)
        return tuple(float(z) for z in header.get_zooms()[:3])
    except Exception:
        return tuple(float(z) for z in image.header.get_zooms()[:3])


def check_spacing(path: str, spacing) -> None:
    """Refuse a voxel spacing outside `PLAUSIBLE_SPACING_MM` (zero, negative, NaN, metres instead of mm...)."""
    for axis, value in zip(("x", "y", "slice"), spacing):
        low, high = PLAUSIBLE_SPACING_MM["slice" if axis == "slice" else "in-plane"]
        if not (np.isfinite(value) and low <= value <= high):
            raise ValueError(f"{path}: {axis} spacing {value:g} mm is outside the plausible range for cardiac MRI "
                             f"({low:g}-{high:g} mm); fix the NIfTI header (pixdim)")


def check_finite(path: str, data: np.ndarray) -> None:
    """NaN policy: refuse, never mask. A stack with NaN or infinite voxels is refused with their count."""
    if np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.complexfloating):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise ValueError(f"{path}: {bad} of {data.size} voxels are NaN or infinite; scarnet refuses stacks with "
                             f"non-finite values (replace them, e.g. by 0, before running)")


@contextmanager
def _quiet_nibabel():
    logger = nib.imageglobals.logger
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def read_stack(path: str, kind: str = "image") -> Stack:
    """Read a 3D NIfTI stack; slices are along the third array axis. The whole stack is read and checked: 3D,
    finite values (NaN policy: refuse) and a plausible spacing (`PLAUSIBLE_SPACING_MM`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such {kind} file")
    try:
        with _quiet_nibabel():  # its header fixes (stored spacing 0 -> 1) are checked below instead
            image = nib.load(path)
        data = np.asarray(image.dataobj)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read as NIfTI ({exc})") from None
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D stack (x, y, slice), got shape {data.shape}")
    check_finite(path, data)
    check_spacing(path, stored_zooms(path, image))
    spacing = tuple(float(s) for s in image.header.get_zooms()[:3])
    return Stack(path, data, spacing, image.affine)


def check_integer_labels(path: str, data: np.ndarray) -> None:
    """Label maps must hold integers: 3.4 (e.g. after linear resampling) is refused, never truncated."""
    if np.issubdtype(data.dtype, np.floating):
        fractional = np.unique(data[data != np.round(data)])
        if fractional.size:
            raise ValueError(f"{path}: non-integer label values (e.g. {', '.join(f'{v:g}' for v in fractional[:3])});"
                             f" label maps must hold integers (resample labels with nearest neighbour)")


def read_label_stack(path: str, scheme: Optional[LabelScheme] = None) -> Stack:
    """Read a label stack and check that it holds only integers of the scheme's values."""
    stack = read_stack(path, "label")
    scheme = scheme or LabelScheme()
    check_integer_labels(path, stack.data)
    values = set(np.unique(stack.data).tolist())
    unknown = sorted(values - set(scheme.valid))
    if unknown:
        raise ValueError(f"{path}: label values {unknown} are not in the label scheme {sorted(scheme.valid)}")
    stack.data = stack.data.astype(np.int16)
    return stack


def same_geometry(a: Stack, b: Stack, atol: float = 1e-3) -> bool:
    return a.data.shape == b.data.shape and np.allclose(a.affine, b.affine, atol=atol)


def geometry_difference(a: Stack, b: Stack) -> str:
    """One line saying how the grids of two stacks differ: the shapes, or (same shape) the two affines."""
    if a.data.shape != b.data.shape:
        return f"shape {a.data.shape} vs {b.data.shape}"
    return (f"same shape {a.data.shape} but affine {np.round(a.affine, 4).tolist()} vs "
            f"{np.round(b.affine, 4).tolist()}")


#: NIfTI file endings scarnet reads (compressed or not)
NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: other image formats nnU-Net may write: refused by name, never skipped silently
OTHER_IMAGE_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr", ".hdr", ".img", ".tif", ".tiff")


def nifti_suffix(filename: str) -> Optional[str]:
    """'.nii.gz' or '.nii' when `filename` is a NIfTI file name, else None."""
    return next((s for s in NIFTI_SUFFIXES if filename.endswith(s)), None)


def label_files(folder: str) -> Dict[str, str]:
    """{case id: file name} of the NIfTI label maps (`<case>.nii.gz` or `<case>.nii`) of `folder`. Refused with the
    file names: one case in two files, or label maps in another image format (scarnet reads NIfTI only)."""
    names = sorted(os.listdir(folder))
    other = [n for n in names if n.lower().endswith(OTHER_IMAGE_SUFFIXES)]
    if other:
        raise ValueError(f"{folder}: {', '.join(other[:5])}{' ...' if len(other) > 5 else ''}: not NIfTI; scarnet "
                         f"reads label maps as .nii.gz or .nii (convert them, or move them out of the folder)")
    files: Dict[str, str] = {}
    for name in names:
        if nifti_suffix(name) and os.path.isfile(os.path.join(folder, name)):
            case = case_id_of(name)
            if case in files:
                raise ValueError(f"{folder}: case {case} is in two files, {files[case]} and {name}; keep one")
            files[case] = name
    return files


def image_file(images_dir: str, case: str) -> Optional[str]:
    """Path of the nnU-Net image `<case>_0000.nii.gz` or `<case>_0000.nii` in `images_dir`, None when there is none;
    refused when both exist."""
    found = [os.path.join(images_dir, f"{case}_0000{s}") for s in NIFTI_SUFFIXES
             if os.path.isfile(os.path.join(images_dir, f"{case}_0000{s}"))]
    if len(found) > 1:
        raise ValueError(f"{found[0]} and {found[1]}: two images of case {case}; keep one")
    return found[0] if found else None


def case_id_of(filename: str, suffix: Optional[str] = None, image: bool = False) -> str:
    """nnU-Net case identifier of a file name (`suffix` default: .nii.gz or .nii). Only images carry the channel
    suffix `_dddd` (`Heart_0001_0000`), so it is stripped only with `image=True`; label names
    (`Heart_0001.nii.gz`) are kept whole."""
    name = os.path.basename(filename)
    suffix = suffix or nifti_suffix(name)
    if suffix is None or not name.endswith(suffix):
        raise ValueError(f"{filename}: expected a {suffix or '.nii.gz or .nii'} file")
    name = name[: -len(suffix)]
    if image:
        if not (len(name) > 5 and name[-5] == "_" and name[-4:].isdigit()):
            raise ValueError(f"{filename}: image file names end in a channel suffix _0000 (nnU-Net convention)")
        return name[:-5]
    return name
