"""Bad inputs, one table: each row runs the real CLI (`scarnet ...` or `scarnet-convert-emidec`) as a subprocess on
real EMIDEC stacks made bad in one way, and checks the promise of docs/reliability.md:

- exit code 2 and exactly one line on stderr, `scarnet <command>: ...`, no traceback;
- the line says what is wrong (expected text) and names the offending path;
- nothing new anywhere in the test's folder: no output folder, no half-written file, no PNG, no empty folder.
"""
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicom_helpers import write_series

CASES = ("Case_N012", "Case_P004")  # sorted: the second one is the bad one, so a late check would write case one
DICOM_CASE = "Case_P002"
CLI, CONVERT = "nnunetv2_scarnet.cli", "nnunetv2_scarnet.data.emidec"
ENV = dict(os.environ, TQDM_DISABLE="1", PYTHONWARNINGS="ignore")


class Workspace:
    """Inputs of one row under `root`; the real stacks are symlinked, bad ones written as edited copies."""

    def __init__(self, root, emidec):
        self.root, self.emidec = str(root), emidec

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def source(self, case, kind):
        return os.path.join(self.emidec, case, f"{kind}.nii.gz")

    def folder(self, name, kind, edit=None, cases=CASES):
        """nnU-Net folder of `kind` ("image" -> <case>_0000.nii.gz, "label" -> <case>.nii.gz); `edit(case, path)`
        may write a bad file for a case instead of the symlink (return True when it did)."""
        folder = self.path(name)
        os.makedirs(folder, exist_ok=True)
        for case in cases:
            path = os.path.join(folder, f"{case}_0000.nii.gz" if kind == "image" else f"{case}.nii.gz")
            if not (edit and edit(case, path)):
                os.symlink(self.source(case, kind), path)
        return folder

    def labels(self, name="labels", edit=None, cases=CASES):
        return self.folder(name, "label", edit, cases)

    def images(self, name="images", edit=None, cases=CASES):
        return self.folder(name, "image", edit, cases)

    def dataset_json(self, content):
        path = self.path("dataset.json")
        with open(path, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        return path

    def dicom(self, name="dicom", **options):
        folder = self.path(name)
        write_series(self.source(DICOM_CASE, "image"), folder, **options)
        return folder


def save_like(source, path, data=None, affine=None, zooms=None, dtype=None):
    """Copy of the NIfTI `source` at `path` with other voxels, affine or stored spacing (pixdim)."""
    image = nib.load(source)
    data = np.asarray(image.dataobj) if data is None else data
    if zooms is not None:  # keep the file's own sform/qform, change only pixdim, as a broken writer would
        header = image.header.copy()
        header.set_data_dtype(dtype or data.dtype)
        header["pixdim"][1:4] = zooms
        out = nib.Nifti1Image(data, None, header)
        out.header["pixdim"][1:4] = zooms
    else:
        out = nib.Nifti1Image(data.astype(dtype) if dtype else data,
                              image.affine if affine is None else affine)
    nib.save(out, path)
    return True


def only(case, action):
    """`edit` that applies `action(case, path)` to the second (bad) case only."""
    return lambda c, path: action(c, path) if c == case else False


BAD = CASES[1]


def truncate(source, path, keep=0.5):
    raw = open(source, "rb").read()
    open(path, "wb").write(raw[: int(len(raw) * keep)])
    return True


# ---------------------------------------------------------------------------------------------------------------
# The table: name -> function(workspace) returning (argv, expected texts, path the message must name)

ROWS = {}


def row(function):
    ROWS[function.__name__] = function
    return function


def corner_value_9(data):
    data = data.copy()
    data[0, 0, 0] = 9
    return data


def with_label(w, case, data_fn, dtype=None):
    return lambda c, path: save_like(w.source(c, "label"), path, data_fn(np.asarray(nib.load(w.source(c, "label"))
                                                                                   .dataobj)), dtype=dtype)


# --- 2. no silent wrong numbers ---

@row
def dicomseg_non_integer_label(w):
    label = w.path("label.nii.gz")
    data = np.asarray(nib.load(w.source(DICOM_CASE, "label")).dataobj).astype(np.float32)
    data[data == 3] = 3.4  # e.g. after linear resampling
    save_like(w.source(DICOM_CASE, "label"), label, data)
    return [CLI, "dicomseg", label, w.dicom(), w.path("out", "seg.dcm")], ["non-integer label values", "3.4"], label


@row
def baselines_fwhm_nan_image(w):
    def nan_image(case, path):
        data = np.asarray(nib.load(w.source(case, "image")).dataobj).astype(np.float32)
        data[0, 0, 0] = np.nan
        return save_like(w.source(case, "image"), path, data)

    images = w.images(edit=only(BAD, nan_image))
    labels = w.labels()
    return ([CLI, "baselines", images, labels, labels, w.path("out")], ["1 of", "NaN"],
            os.path.join(images, f"{BAD}_0000.nii.gz"))


def dataset_json_row(content, expected):
    def make(w):
        path = w.dataset_json(content)
        return [CLI, "quantify", w.labels(), w.path("out"), "--dataset-json", path], expected, path
    return make


for _name, _content, _expected in [
    ("scar_on_background", {"labels": {"background": 0, "myocardium": 2, "scar": 0}}, ["0 must be the background"]),
    ("two_structures_on_one_value", {"labels": {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 2}},
     ["several structures on one label value", "myocardium, scar"]),
    ("non_integer_value", {"labels": {"background": 0, "myocardium": 2, "scar": 3.5}}, ["non-negative integers"]),
    ("string_value", {"labels": {"background": 0, "myocardium": "2", "scar": 3}}, ["non-negative integers"]),
    ("region_based_labels", {"labels": {"background": 0, "myocardium": [2, 3], "scar": 3},
                             "regions_class_order": [2, 3]}, ["region-based labels", "myocardium"]),
    ("missing_labels_key", {"name": "x", "channel_names": {"0": "LGE"}}, ["no 'labels' mapping"]),
    ("bad_json", '{"labels": {"myocardium": 2,', ["not valid JSON"]),
]:
    ROWS[f"dataset_json_{_name}"] = dataset_json_row(_content, _expected)


@row
def quantify_zero_slice_spacing(w):
    def zero(case, path):
        zooms = nib.load(w.source(case, "label")).header.get_zooms()
        return save_like(w.source(case, "label"), path, zooms=(zooms[0], zooms[1], 0.0))

    labels = w.labels(edit=only(BAD, zero))
    return ([CLI, "quantify", labels, w.path("out")], ["slice spacing 0 mm", "plausible range"],
            os.path.join(labels, f"{BAD}.nii.gz"))


@row
def quantify_huge_x_spacing(w):
    def huge(case, path):
        zooms = nib.load(w.source(case, "label")).header.get_zooms()
        return save_like(w.source(case, "label"), path, zooms=(1e6, zooms[1], zooms[2]))

    labels = w.labels(edit=only(BAD, huge))
    return ([CLI, "quantify", labels, w.path("out")], ["x spacing 1e+06 mm", "plausible range"],
            os.path.join(labels, f"{BAD}.nii.gz"))


# --- 3. one clear error, nothing half-written ---

def output_is_file_row(command):
    def make(w):
        out = w.path("out")
        open(out, "w").close()
        labels = w.labels()
        args = {"quantify": lambda: [labels, out],
                "evaluate": lambda: [labels, labels, out],
                "baselines": lambda: [w.images(), labels, labels, out],
                "noise": lambda: ["--model", f"m={w.path('model')}", w.images(), labels, out]}[command]()
        return [CLI, command, *args], ["output folder is a file"], out
    return make


for _command in ("quantify", "evaluate", "baselines", "noise"):
    ROWS[f"{_command}_output_dir_is_a_file"] = output_is_file_row(_command)


@row
def dicom2nifti_output_parent_is_a_file(w):
    parent = w.path("file")
    open(parent, "w").close()
    return [CLI, "dicom2nifti", w.dicom(), os.path.join(parent, "x.nii.gz")], ["is a file"], parent


@row
def dicomseg_output_parent_is_a_file(w):
    parent = w.path("file")
    open(parent, "w").close()
    return ([CLI, "dicomseg", w.source(DICOM_CASE, "label"), w.dicom(), os.path.join(parent, "seg.dcm")],
            ["is a file"], parent)


@row
def quantify_output_dir_not_writable(w):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    out = w.path("locked")
    os.makedirs(out)
    os.chmod(out, 0o500)
    return [CLI, "quantify", w.labels(), os.path.join(out, "report")], ["not writable"], out


@row
def quantify_labels_dir_is_a_file(w):
    label = w.source(CASES[0], "label")
    return [CLI, "quantify", label, w.path("out")], ["labels folder is a file"], label


@row
def dicom2nifti_geometry_without_pixel_data(w):
    dicom = w.dicom()
    name = sorted(os.listdir(dicom))[3]
    ds = pydicom.dcmread(os.path.join(dicom, name))
    del ds.PixelData
    ds.save_as(os.path.join(dicom, name))
    return ([CLI, "dicom2nifti", dicom, w.path("out.nii.gz")], ["no PixelData"], os.path.join(dicom, name))


@row
def quantify_sectors_zero(w):
    return [CLI, "quantify", w.labels(), w.path("out"), "--sectors", "0"], ["--sectors", "positive integer"], "'0'"


@row
def quantify_sectors_negative(w):
    return [CLI, "quantify", w.labels(), w.path("out"), "--sectors=-3"], ["--sectors", "positive integer"], "'-3'"


@row
def quantify_septum_nan(w):
    return ([CLI, "quantify", w.labels(), w.path("out"), "--septum-deg", "nan"], ["--septum-deg", "finite number"],
            "'nan'")


@row
def baselines_zero_slice_spacing(w):
    def zero(case, path):
        zooms = nib.load(w.source(case, "image")).header.get_zooms()
        return save_like(w.source(case, "image"), path, zooms=(zooms[0], zooms[1], 0.0))

    images, labels = w.images(edit=only(BAD, zero)), w.labels()
    return ([CLI, "baselines", images, labels, labels, w.path("out")], ["slice spacing 0 mm"],
            os.path.join(images, f"{BAD}_0000.nii.gz"))


@row
def convert_truncated_label(w):
    labels = w.labels(edit=only(BAD, lambda c, path: truncate(w.source(c, "label"), path)))
    return ([CONVERT, "--images", w.images(), "--labels", labels, "-d", "501", "-o", w.path("raw")],
            ["truncated or corrupt"], os.path.join(labels, f"{BAD}.nii.gz"))


@row
def convert_output_is_a_file(w):
    raw = w.path("raw")
    open(raw, "w").close()
    return ([CONVERT, "--images", w.images(), "--labels", w.labels(), "-d", "501", "-o", raw],
            ["nnU-Net raw folder is a file"], raw)


@row
def dicomseg_output_is_a_folder(w):
    out = w.path("segs")
    os.makedirs(out)
    return [CLI, "dicomseg", w.source(DICOM_CASE, "label"), w.dicom(), out], ["is a folder"], out


@row
def quantify_images_truncated_before_first_png(w):
    images = w.images(edit=only(BAD, lambda c, path: truncate(w.source(c, "image"), path, 0.6)))
    return ([CLI, "quantify", w.labels(), w.path("out"), "--images", images], ["cannot read"],
            os.path.join(images, f"{BAD}_0000.nii.gz"))


@row
def baselines_bad_reference_before_threshold_maps(w):
    labels = w.labels()
    reference = w.labels("reference", edit=only(BAD, with_label(w, BAD, corner_value_9)))
    return ([CLI, "baselines", w.images(), labels, reference, w.path("out")], ["label values [9]"],
            os.path.join(reference, f"{BAD}.nii.gz"))


@row
def baselines_reference_missing_a_case(w):
    labels = w.labels()
    reference = w.labels("reference", cases=CASES[:1])
    return ([CLI, "baselines", w.images(), labels, reference, w.path("out")], ["different cases", BAD], reference)


@row
def noise_model_folder_missing(w):
    model = w.path("no_model")
    return ([CLI, "noise", "--model", f"m={model}", w.images(), w.labels(), w.path("out")],
            ["not an nnU-Net model folder", "checkpoint_final.pth"], model)


@row
def quantify_into_a_foreign_non_empty_folder(w):
    out = w.path("mine")
    os.makedirs(out)
    open(os.path.join(out, "notes.txt"), "w").close()
    return [CLI, "quantify", w.labels(), out], ["not empty and was not written by scarnet"], out


@row
def evaluate_input_inside_the_output_folder(w):
    out = w.path("out")  # an earlier scarnet output folder, which a new run would empty
    os.makedirs(out)
    open(os.path.join(out, ".scarnet-output"), "w").close()
    labels = w.labels(os.path.join("out", "labels"))
    return [CLI, "evaluate", labels, labels, out], ["inside the output folder"], labels


@row
def dicom2nifti_output_without_suffix(w):
    out = w.path("stack")
    return [CLI, "dicom2nifti", w.dicom(), out], [".nii.gz or .nii"], out


@row
def dicom2nifti_output_is_an_existing_folder(w):
    out = w.path("niftis")
    os.makedirs(out)
    return [CLI, "dicom2nifti", w.dicom(), out], ["is a folder"], out


@row
def evaluate_affine_only_mismatch(w):
    def shifted(case, path):
        affine = nib.load(w.source(case, "label")).affine.copy()
        affine[0, 3] += 5.0
        return save_like(w.source(case, "label"), path, affine=affine)

    predictions = w.labels("predictions", edit=only(BAD, shifted))
    return ([CLI, "evaluate", predictions, w.labels(), w.path("out")], ["same shape", "affine", "] vs [["],
            os.path.join(predictions, f"{BAD}.nii.gz"))


# --- inputs that already gave clear errors before issue 9, kept in the table ---

@row
def quantify_label_not_nifti(w):
    labels = w.labels(edit=only(BAD, lambda c, path: open(path, "w").write("not a NIfTI file") and True))
    return [CLI, "quantify", labels, w.path("out")], ["cannot read as NIfTI"], os.path.join(labels, f"{BAD}.nii.gz")


@row
def quantify_label_truncated(w):
    labels = w.labels(edit=only(BAD, lambda c, path: truncate(w.source(c, "label"), path)))
    return [CLI, "quantify", labels, w.path("out")], ["cannot read as NIfTI"], os.path.join(labels, f"{BAD}.nii.gz")


@row
def quantify_label_4d(w):
    labels = w.labels(edit=only(BAD, with_label(w, BAD, lambda d: d[..., None])))
    return [CLI, "quantify", labels, w.path("out")], ["expected a 3D stack"], os.path.join(labels, f"{BAD}.nii.gz")


@row
def quantify_image_geometry_mismatch(w):
    images = w.images(edit=lambda c, path: os.symlink(w.source(CASES[0], "image"), path) or True)
    return ([CLI, "quantify", w.labels(), w.path("out"), "--images", images], ["geometry differs from image"],
            os.path.join(images, f"{BAD}_0000.nii.gz"))


@row
def dicom2nifti_missing_slice(w):
    n = nib.load(w.source(DICOM_CASE, "image")).shape[2]
    dicom = w.dicom(slices=[k for k in range(n) if k != n // 2])
    return [CLI, "dicom2nifti", dicom, w.path("out.nii.gz")], ["missing slice"], dicom


@row
def dicom2nifti_single_slice_99_mm_slice_thickness(w):
    dicom = w.dicom(slices=[3])  # one slice: its spacing comes from Slice Thickness, which the helper sets to 99 mm
    return ([CLI, "dicom2nifti", dicom, w.path("out.nii.gz")], ["slice spacing 99 mm", "outside the plausible range"],
            dicom)


@row
def dicom2nifti_single_slice_without_spacing_tags(w):
    dicom = w.dicom(slices=[3])
    (name,) = os.listdir(dicom)
    ds = pydicom.dcmread(os.path.join(dicom, name))
    del ds.SliceThickness  # the 1 mm fallback of read_dicom_series is a guess: dicom2nifti refuses it
    ds.save_as(os.path.join(dicom, name), enforce_file_format=True)
    return [CLI, "dicom2nifti", dicom, w.path("out.nii.gz")], ["slice spacing is unknown"], dicom


@row
def dicom2nifti_undecodable_compressed_syntax(w):
    dicom = w.dicom()
    name = sorted(os.listdir(dicom))[2]
    ds = pydicom.dcmread(os.path.join(dicom, name))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLosslessSV1  # no decoder installed for it
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not really jpeg \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(os.path.join(dicom, name), enforce_file_format=True)
    return [CLI, "dicom2nifti", dicom, w.path("out.nii.gz")], ["cannot decode the pixel data"], name


def snapshot(root):
    found = set()
    for folder, dirs, files in os.walk(root):
        found |= {os.path.relpath(os.path.join(folder, n), root) for n in dirs + files}
    return found


def run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=120)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name, emidec_cases, tmp_path):
    w = Workspace(tmp_path, emidec_cases)
    argv, expected, named = ROWS[name](w)
    before = snapshot(tmp_path)
    done = run(*argv)
    prog = "scarnet-convert-emidec" if argv[0] == CONVERT else f"scarnet {argv[1]}"
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), done.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert named in lines[0], (named, lines[0])
    assert snapshot(tmp_path) == before, sorted(snapshot(tmp_path) - before)


def not_writable_argv(w, command, out):
    """argv (without `scarnet`) of `command` on good inputs, writing to `out`."""
    if command == "quantify":
        return ["quantify", w.labels(), out]
    if command == "evaluate":
        return ["evaluate", w.labels("pred"), w.labels("ref"), out]
    if command == "baselines":
        return ["baselines", w.images(), w.labels("myo"), w.labels("ref"), out]
    if command == "noise":
        return ["noise", "--model", f"m={w.path('model')}", w.images(), w.labels(), out]
    if command == "dicom2nifti":
        return ["dicom2nifti", w.dicom(), os.path.join(out, "stack.nii.gz")]
    if command == "dicomseg":
        return ["dicomseg", w.source(DICOM_CASE, "label"), w.dicom(), os.path.join(out, "seg.dcm")]
    raise AssertionError(command)


# every subcommand with an output path (`weights fetch` has none: it writes to the weights cache)
WRITERS = ("quantify", "evaluate", "baselines", "noise", "dicom2nifti", "dicomseg")


@pytest.mark.parametrize("command, where", [(c, "new path inside") for c in WRITERS] +
                         [(c, "existing folder") for c in WRITERS if c not in ("dicom2nifti", "dicomseg")])
def test_output_not_writable_is_refused_by_every_writer(command, where, emidec_cases, tmp_path, monkeypatch, capsys):
    """In process, so it runs as root too (root writes anywhere, a chmod row would skip): the writability check of
    `cli.checks.check_paths` (os.access) is told that `locked` is read-only; every writer refuses with exit code 2,
    one line naming the path, and writes nothing."""
    from nnunetv2_scarnet.cli import main

    w = Workspace(tmp_path, emidec_cases)
    locked = w.path("locked")
    os.makedirs(locked)
    real_access = os.access
    asked = []

    def access(path, mode, *args, **kwargs):
        inside = os.path.realpath(path) == os.path.realpath(locked)
        asked.append(inside)
        return False if inside and mode & os.W_OK else real_access(path, mode, *args, **kwargs)

    file_output = command in ("dicom2nifti", "dicomseg")  # a new file in the locked folder
    out = locked if where == "existing folder" else os.path.join(locked, "report")
    argv = not_writable_argv(w, command, out)
    named = locked if (file_output or where == "new path inside") else out
    before = snapshot(tmp_path)
    capsys.readouterr()
    monkeypatch.setattr(os, "access", access)
    code = main(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"scarnet {command}: "), err
    assert "not writable" in lines[0] and named in lines[0], lines[0]
    assert any(asked)  # the refusal came from the writability check
    assert snapshot(tmp_path) == before, sorted(snapshot(tmp_path) - before)


# ---------------------------------------------------------------------------------------------------------------
# Behaviours that are not errors


def test_rerun_replaces_the_earlier_runs_files(emidec_cases, tmp_path):
    w = Workspace(tmp_path, emidec_cases)
    labels, images, out = w.labels(), w.images(), w.path("report")
    assert run(CLI, "quantify", labels, out, "--images", images).returncode == 0
    assert {f"{c}_overlay.png" for c in CASES} <= set(os.listdir(out))
    os.remove(os.path.join(labels, f"{BAD}.nii.gz"))
    done = run(CLI, "quantify", labels, out, "--images", images)
    assert done.returncode == 0, done.stderr
    assert f"{BAD}_overlay.png" not in os.listdir(out) and f"{CASES[0]}_overlay.png" in os.listdir(out)
    assert BAD not in open(os.path.join(out, "patients.csv")).read()


def test_dicom2nifti_prints_the_file_it_wrote(emidec_cases, tmp_path):
    w = Workspace(tmp_path, emidec_cases)
    out = w.path("stack.nii")
    done = run(CLI, "dicom2nifti", w.dicom(), out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out}:") and os.path.isfile(out)


def test_rle_compressed_series_reads_like_the_uncompressed_one(emidec_cases, tmp_path):
    from nnunetv2_scarnet.ingestion import read_dicom_series

    w = Workspace(tmp_path, emidec_cases)
    plain = w.dicom()
    packed = w.path("rle")
    shutil.copytree(plain, packed)
    for name in os.listdir(packed):
        ds = pydicom.dcmread(os.path.join(packed, name))
        ds.compress(pydicom.uid.RLELossless)
        ds.save_as(os.path.join(packed, name))
    assert pydicom.dcmread(os.path.join(packed, name)).file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert np.array_equal(read_dicom_series(packed).data, read_dicom_series(plain).data)


def test_truncated_checkpoint_is_refused(tmp_path):
    import torch

    from nnunetv2_scarnet.network.pretrained_weights import PretrainedWeightsError, read_checkpoint

    path = tmp_path / "weights.pth"
    torch.save({"image_encoder.w": torch.zeros(64, 64)}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PretrainedWeightsError, match="weights.pth"):
        read_checkpoint(str(path))



def test_noise_model_that_fails_to_predict_leaves_no_output_folder(emidec_cases, tmp_path, monkeypatch):
    from nnunetv2_scarnet.evaluation import noise_robustness as study

    w = Workspace(tmp_path, emidec_cases)
    model = w.path("model")
    os.makedirs(os.path.join(model, "fold_0"))
    for name in ("dataset.json", "plans.json", os.path.join("fold_0", "checkpoint_final.pth")):
        open(os.path.join(model, name), "w").write("{}")  # all files there, but not a working model

    def broken(model_dir, *args):
        raise RuntimeError(f"nnUNetv2_predict_from_modelfolder -m {model_dir} failed:\ncorrupt checkpoint")

    monkeypatch.setattr(study, "predict_folder", broken)
    images, labels, out = w.images(), w.labels(), w.path("out")
    with pytest.raises(RuntimeError, match="corrupt checkpoint"):
        study.noise_robustness({"m": model}, images, labels, out, snr_levels=(10,), repeats=1)
    assert not os.path.exists(out)
