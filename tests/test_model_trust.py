"""A model folder is untrusted input (issue 20, items 1 and 4): plans.json names only code that nnU-Net and this
package ship, its numbers are usable, and the labels are those the checkpoint was trained with.

Every attack is written by hand into a copy of a model folder (the JSON edited as an attacker would, never through
the package's helpers) and driven through `scarnet report` (a subprocess for the headline attack, `cli.main` in
process for the rest) or the noise command's predictor entry point (`python -m nnunetv2_scarnet.model_loading`,
its `main` in process). The cheap folder is report_helpers' hand-written stock PlainConvUNet; the label swap of
item 4 uses the session's trained ScarNet (`tiny_model`)."""
import json
import math
import os
import pydoc
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from report_helpers import EMIDEC_LABELS, build_model_folder, ring_prediction
from nnunetv2_scarnet.cli import main
from nnunetv2_scarnet.report.predict import ReportPredictor

VICTIM_TEXT = "a file the attacker wants emptied\n"


@pytest.fixture(scope="module")
def cheap(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("trust") / "nnUNetTrainer__nnUNetPlans__2d")


@pytest.fixture
def image(emidec_cases):
    return os.path.join(emidec_cases, "Case_N012", "image.nii.gz")


def copy_model(model, tmp_path, name="model"):
    folder = tmp_path / name / os.path.basename(model)
    shutil.copytree(model, folder)
    return folder


def edit_json(path, edit):
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))  # NaN is written as the bare word NaN, which Python's json reads back


def report(image, folder, out, capsys, *extra):
    code = main(["report", image, "--model", str(folder), str(out), "--device", "cpu", *extra])
    return code, capsys.readouterr().err


def architecture(plans):
    return plans["configurations"]["2d"]["architecture"]


# ---------------------------------------------------------------- item 1: plans.json names code
def test_plans_naming_logging_basicconfig_empties_no_file(cheap, image, tmp_path):
    """The issue's attack, as a user meets it: `scarnet report` on a folder whose plans name logging.basicConfig as
    the network class; nnU-Net would call it with arch_kwargs and open the victim file for writing."""
    folder = copy_model(cheap, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)

    def attack(plans):
        architecture(plans).update(network_class_name="logging.basicConfig", _kw_requires_import=[],
                                   arch_kwargs={"filename": str(victim), "filemode": "w"})
    edit_json(folder / "plans.json", attack)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", "report", image, "--model", str(folder),
                             str(out), "--device", "cpu"], capture_output=True, text=True, cwd=REPO, timeout=600)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2, result.stderr[-2000:]
    assert victim.read_text() == VICTIM_TEXT and not out.exists()
    assert last.startswith(f"scarnet report: {folder / 'plans.json'}: configurations.2d.architecture."
                           f"network_class_name: 'logging.basicConfig' is not a network class"), last
    assert "--trust-model" in last and "Traceback" not in result.stderr


def test_plans_naming_numpy_savez_writes_no_file_unless_trusted(cheap, image, tmp_path, capsys):
    """numpy.savez as the network class writes a file with nnU-Net's arguments in it; refused by `report` and by the
    noise command's predictor; with --trust-model the user's explicit choice is nnU-Net's behaviour."""
    from nnunetv2_scarnet import model_loading

    folder = copy_model(cheap, tmp_path)
    written = tmp_path / "written.npz"
    edit_json(folder / "plans.json", lambda plans: architecture(plans).update(
        network_class_name="numpy.savez", _kw_requires_import=[], arch_kwargs={"file": str(written)}))
    code, err = report(image, folder, tmp_path / "out", capsys)
    assert code == 2 and "configurations.2d.architecture.network_class_name: 'numpy.savez'" in err, err
    assert str(folder / "plans.json") in err and not written.exists() and not (tmp_path / "out").exists()
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(image, images / "Case_N012_0000.nii.gz")
    assert model_loading.main(["-i", str(images), "-o", str(tmp_path / "noise"), "-m", str(folder), "-f", "0"]) == 2
    assert "'numpy.savez' is not a network class" in capsys.readouterr().err and not written.exists()
    with pytest.raises(FileNotFoundError, match="disagrees with the plans the model was trained with"):
        ReportPredictor(str(folder), ["0"], device="cpu", trust_model=True)  # trusted, but not what was trained
    assert not written.exists()
    checkpoint_path = folder / "fold_0" / "checkpoint_final.pth"  # a publisher who also rewrites the checkpoint
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    checkpoint["init_args"]["plans"] = json.loads((folder / "plans.json").read_text())
    torch.save(checkpoint, checkpoint_path)
    with pytest.raises(FileNotFoundError):  # savez returns no network: the weights cannot be loaded into it
        ReportPredictor(str(folder), ["0"], device="cpu", trust_model=True)
    assert written.exists()


@pytest.mark.parametrize("key, edit", [
    ("configurations.2d.spacing", lambda c: c.update(spacing=[s * 1.25 for s in c["spacing"]])),
    ("configurations.2d.normalization_schemes", lambda c: c.update(normalization_schemes=["NoNormalization"])),
])
def test_plausible_plans_edit_is_refused_against_the_trained_plans(cheap, image, tmp_path, capsys, key, edit):
    """A plausible edit of the folder's plans.json (a spacing 25 % off, another allowed normalisation) passes every
    check of the values themselves and would change the numbers silently; the checkpoint holds the plans the model
    was trained with (nnU-Net's init_args.plans), and the folder must agree with them."""
    folder = copy_model(cheap, tmp_path)
    edit_json(folder / "plans.json", lambda plans: edit(plans["configurations"]["2d"]))
    code, err = report(image, folder, tmp_path / "out", capsys)
    assert code == 2 and "disagrees with the plans the model was trained with" in err, err
    assert f"{key}:" in err and str(folder / "plans.json") in err and not (tmp_path / "out").exists()


def test_building_block_naming_logging_basicconfig_empties_no_file(cheap, image, tmp_path, capsys):
    """The network class is allowed, but `nonlin` (resolved with pydoc.locate, then called with nonlin_kwargs by
    every convolution block) names logging.basicConfig."""
    folder = copy_model(cheap, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    edit_json(folder / "plans.json", lambda plans: architecture(plans)["arch_kwargs"].update(
        nonlin="logging.basicConfig", nonlin_kwargs={"filename": str(victim), "filemode": "w", "force": True}))
    code, err = report(image, folder, tmp_path / "out", capsys)
    assert code == 2 and "configurations.2d.architecture.arch_kwargs.nonlin: expected null or one of" in err, err
    assert victim.read_text() == VICTIM_TEXT and not (tmp_path / "out").exists()


def _set(path, value):
    """An edit that sets plans[path...] = value."""
    def edit(content):
        *parents, last = path
        for key in parents:
            content = content[key]
        content[last] = value
    return edit


def _inherited_network_class(plans):
    """`configurations.2d` holds only `inherits_from` (nnU-Net merges the parent's entries under the child's):
    the network class it gets is named in another configuration, `evil`."""
    evil = json.loads(json.dumps(plans["configurations"]["2d"]))
    evil["architecture"]["network_class_name"] = "numpy.savez"
    plans["configurations"]["evil"] = evil
    plans["configurations"]["2d"] = {"inherits_from": "evil"}


ARCH = ("configurations", "2d", "architecture")
KWARGS = ARCH + ("arch_kwargs",)
#: plans edits -> the key the refusal names; each passed loading before (or failed without naming the key).
#: Names outside the allow-lists (the refusal names --trust-model); nnU-Net finds each of these among its modules'
#: attributes (or imports it with pydoc.locate) and would call what it found
NAME_ROWS = {
    "preprocessor_is_a_json_loader": (_set(("configurations", "2d", "preprocessor_name"), "load_json"),
                                      "configurations.2d.preprocessor_name"),
    "normalization_is_numpy": (_set(("configurations", "2d", "normalization_schemes"), ["np"]),
                               "configurations.2d.normalization_schemes.0"),
    "resampling_is_torch": (_set(("configurations", "2d", "resampling_fn_data"), "torch"),
                            "configurations.2d.resampling_fn_data"),
    "label_manager_is_numpy": (_set(("label_manager",), "np"), "label_manager"),
    "conv_op_is_os_system": (_set(KWARGS + ("conv_op",), "os.system"), "configurations.2d.architecture.arch_kwargs"
                             ".conv_op"),
    "import_list_names_a_number_argument": (_set(ARCH + ("_kw_requires_import",), ["conv_op", "n_stages"]),
                                            "configurations.2d.architecture._kw_requires_import"),
    # review 2026-12-05: refused before, but naming configurations.2d.architecture, which the file does not hold
    "network_class_inherited": (_inherited_network_class, "configurations.evil.architecture.network_class_name"),
}
#: refused whether or not the user trusts the folder (values of allowed names, numbers)
VALUE_ROWS = {
    "resampling_argument_unknown": (_set(("configurations", "2d", "resampling_fn_seg_kwargs", "file"), "/tmp/x"),
                                    "configurations.2d.resampling_fn_seg_kwargs.file"),
    "network_argument_set_by_nnunet": (_set(KWARGS + ("num_classes",), 2),
                                       "configurations.2d.architecture.arch_kwargs.num_classes"),
    "patch_size_abc": (_set(("configurations", "2d", "patch_size"), "abc"), "configurations.2d.patch_size"),
    "spacing_zero": (_set(("configurations", "2d", "spacing"), [0.0, 3.0]), "configurations.2d.spacing"),
    "spacing_negative": (_set(("configurations", "2d", "spacing"), [-3.0, 3.0]), "configurations.2d.spacing"),
    "spacing_nan": (_set(("configurations", "2d", "spacing"), [math.nan, 3.0]), "configurations.2d.spacing"),
    "transpose_not_a_permutation": (_set(("transpose_forward",), [0, 0, 1]), "transpose_forward"),
    "patch_not_divisible_by_the_strides": (_set(("configurations", "2d", "patch_size"), [30, 30]),
                                           "configurations.2d.patch_size"),
    "features_for_two_of_three_stages": (_set(KWARGS + ("features_per_stage",), [4, 8]),
                                         "configurations.2d.architecture.arch_kwargs.features_per_stage"),
    "ct_statistics_nan": (lambda p: (_set(("configurations", "2d", "normalization_schemes"), ["CTNormalization"])(p),
                                     _set(("foreground_intensity_properties_per_channel", "0", "percentile_99_5"),
                                          math.nan)(p)),
                          "foreground_intensity_properties_per_channel.0"),
}


@pytest.mark.parametrize("row", sorted(NAME_ROWS) + sorted(VALUE_ROWS))
def test_bad_plans_are_refused_naming_the_key_before_anything_is_written(row, cheap, image, tmp_path, capsys):
    edit, key = {**NAME_ROWS, **VALUE_ROWS}[row]
    folder = copy_model(cheap, tmp_path)
    edit_json(folder / "plans.json", edit)
    out = tmp_path / "out"
    code, err = report(image, folder, out, capsys)
    assert code == 2 and f"{folder / 'plans.json'}: {key}: " in err, err
    assert ("--trust-model" in err) == (row in NAME_ROWS) and "Traceback" not in err and not out.exists()


def _checkpoint(folder, edit):
    path = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(path, weights_only=False)  # the test's own file (report_helpers)
    edit(checkpoint)
    torch.save(checkpoint, path)
    return path


CHECKPOINT_ROWS = {  # checkpoint edits -> the key the refusal names
    "trainer_name_is_a_module": (lambda c: c.update(trainer_name="torch"), "trainer_name"),
    "mirroring_axis_outside_the_patch": (lambda c: c.update(inference_allowed_mirroring_axes=(0, 5)),
                                         "inference_allowed_mirroring_axes"),
    "no_trained_dataset_json": (lambda c: c["init_args"].pop("dataset_json"), "init_args.dataset_json"),
}


@pytest.mark.parametrize("row", sorted(CHECKPOINT_ROWS))
def test_bad_checkpoint_entries_are_refused_naming_the_key(row, cheap, image, tmp_path, capsys):
    edit, key = CHECKPOINT_ROWS[row]
    folder = copy_model(cheap, tmp_path)
    path = _checkpoint(folder, edit)
    code, err = report(image, folder, tmp_path / "out", capsys)
    assert code == 2 and f"{path}: {key}: " in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- item 4: the labels are the checkpoint's
def test_swapped_myocardium_and_scar_in_dataset_json_are_refused(tiny_model, image, tmp_path, capsys):
    """Issue 20 item 4: swapping the two values in the folder's dataset.json made 0.85 % scar 99.1 % at exit code
    0. The checkpoint holds the dataset.json of the training (nnU-Net's init_args): the folder must agree."""
    folder = copy_model(tiny_model, tmp_path)
    path = folder / "dataset.json"
    dataset = json.loads(path.read_text())
    assert (dataset["labels"]["myocardium"], dataset["labels"]["scar"]) == (2, 3)
    dataset["labels"]["myocardium"], dataset["labels"]["scar"] = 3, 2
    path.write_text(json.dumps(dataset))
    out = tmp_path / "out"
    code, err = report(image, folder, out, capsys)
    assert code == 2 and not out.exists(), err
    line = err.strip().splitlines()[-1]
    assert f"{path}: disagrees with the dataset.json the model was trained with" in line, line
    assert str(folder / "fold_0" / "checkpoint_final.pth") in line
    assert "myocardium is 3 here but 2 in the checkpoint" in line and "scar is 2 here but 3 in the checkpoint" in line


DATASET_ROWS = {  # folder dataset.json edits -> the words of the difference
    "second_input_channel": (lambda d: d["channel_names"].update({"1": "T2"}), "channel_names: "),
    "scar_label_removed": (lambda d: d["labels"].pop("scar"), "scar is absent here but 3 in the checkpoint"),
    "region_based_order_added": (lambda d: d.update(regions_class_order=[1, 2, 3, 4]), "regions_class_order: "),
}


@pytest.mark.parametrize("row", sorted(DATASET_ROWS))
def test_dataset_json_changing_the_label_map_or_channels_is_refused(row, cheap, image, tmp_path, capsys):
    edit, words = DATASET_ROWS[row]
    folder = copy_model(cheap, tmp_path)
    edit_json(folder / "dataset.json", edit)
    code, err = report(image, folder, tmp_path / "out", capsys)
    assert code == 2 and f"{folder / 'dataset.json'}: disagrees with the dataset.json" in err and words in err, err


def test_folds_trained_with_other_labels_are_refused(cheap, image, tmp_path, capsys):
    folder = copy_model(cheap, tmp_path)
    shutil.copytree(folder / "fold_0", folder / "fold_1")
    checkpoint = torch.load(folder / "fold_1" / "checkpoint_final.pth", weights_only=False)
    checkpoint["init_args"]["dataset_json"]["labels"] = {"background": 0, "blood_pool": 1, "myocardium": 3,
                                                         "scar": 2, "mvo": 4}
    torch.save(checkpoint, folder / "fold_1" / "checkpoint_final.pth")
    code, err = report(image, folder, tmp_path / "out", capsys, "--folds", "0", "1")
    assert code == 2 and "not trained alike" in err and "myocardium is 3 in fold_1 but 2 in fold_0" in err, err


def test_the_checkpoints_dataset_json_is_used_and_harmless_edits_are_accepted(cheap, tmp_path):
    """Labels in another order, another description and case count change no label map: accepted. The predictor
    (and what nnU-Net writes next to its predictions) uses the checkpoint's dataset.json."""
    folder = copy_model(cheap, tmp_path)
    edit_json(folder / "dataset.json", lambda d: d.update(
        labels=dict(reversed(list(d["labels"].items()))), numTraining=999, description="edited by hand"))
    predictor = ReportPredictor(str(folder), ["0"], device="cpu")
    assert "description" not in predictor.predictor.dataset_json
    assert predictor.predictor.dataset_json["numTraining"] == 1
    assert (predictor.scheme.myocardium, predictor.scheme.scar) == (frozenset({2, 3, 4}), frozenset({3, 4}))


def test_dataset_json_override_declaring_a_value_the_model_never_predicts_is_refused(image, tmp_path, monkeypatch,
                                                                                     capsys):
    """`--dataset-json` says which value is which structure. Declaring MVO (4) for a model trained without an MVO
    label reported "MVO assessed: 0 mL" at exit code 0, a claim the model cannot make."""
    monkeypatch.setattr(ReportPredictor, "predict", ring_prediction)  # labels 1, 2, 3 (tests/report_helpers.py)
    without_mvo = {name: value for name, value in EMIDEC_LABELS.items() if name != "mvo"}
    model = build_model_folder(tmp_path / "model" / "nnUNetTrainer__nnUNetPlans__2d", labels=without_mvo)
    override = tmp_path / "labels.json"
    override.write_text(json.dumps({"labels": EMIDEC_LABELS}))
    out = tmp_path / "out"
    code, err = report(image, model, out, capsys, "--dataset-json", str(override))
    assert code == 2 and "--dataset-json declares label value(s) [4]" in err and not out.exists(), err


# ---------------------------------------------------------------- the allow-lists are nnU-Net's own names
def test_allow_lists_name_what_nnunet_ships_and_planner_written_plans_pass(tiny_model):
    """Each allowed name is found by nnU-Net's own lookup (so the lists are not stale), every class the ScarNet
    builder accepts is allowed, and plans written by nnU-Net's planner (all configurations), by a ScarNet trainer,
    and the architecture entry of every ScarNet trainer variant pass the checks unchanged (no false refusal)."""
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_scarnet import trainers
    from nnunetv2_scarnet.model_validation import NETWORK_CLASSES, OP_CLASSES, check_architecture, check_plans
    from nnunetv2_scarnet.model_validation import plans as checks
    from nnunetv2_scarnet.model_validation.architecture import op_names
    from nnunetv2_scarnet.network.builder import SCARNET_CLASS_NAME, STOCK_CLASS_NAMES, scarnet_architecture

    assert set(STOCK_CLASS_NAMES) | {SCARNET_CLASS_NAME} == set(NETWORK_CLASSES)
    for name in NETWORK_CLASSES:
        assert isinstance(pydoc.locate(name), type), name
    for classes in OP_CLASSES.values():
        for name, cls in op_names(classes).items():
            assert pydoc.locate(name) is cls, name
    root = nnunetv2.__path__[0]
    for folder, names in (("preprocessing", checks.PREPROCESSORS),
                          ("preprocessing/normalization", checks.NORMALIZATIONS), ("imageio", checks.READER_WRITERS),
                          ("utilities/label_handling", checks.LABEL_MANAGERS),
                          ("preprocessing/resampling", tuple(checks.RESAMPLING_FUNCTIONS))):
        for name in names:
            module = "nnunetv2." + folder.replace("/", ".")
            found = recursive_find_python_class(os.path.join(root, folder), name, module)
            assert found is not None and found.__name__ == name, (folder, name)
    results = os.path.dirname(os.path.dirname(tiny_model))
    stock = os.path.join(os.path.dirname(results), "preprocessed", os.path.basename(os.path.dirname(tiny_model)),
                         "nnUNetPlans.json")
    for path in (stock, os.path.join(tiny_model, "plans.json")):
        plans = json.load(open(path))
        for name in plans["configurations"]:
            check_plans(plans, name, PlansManager(plans).get_configuration(name).configuration, 1)
    # the architecture entry every ScarNet trainer variant writes into those stock 2d plans when it starts training
    stock_2d = json.load(open(stock))["configurations"]["2d"]
    variants = [c for c in vars(trainers).values() if isinstance(c, type) and issubclass(c, trainers.ScarNetTrainer)]
    assert len(variants) > 10
    for variant in variants:
        settings = variant.network_settings()
        settings["encoder_input_window"] = settings["encoder_input_window"] or [-2.0, 3.0]  # measured at training
        entry = scarnet_architecture(stock_2d["architecture"]["arch_kwargs"], settings,
                                     stock_2d["architecture"]["network_class_name"])
        check_architecture(entry, stock_2d["patch_size"], "architecture", "patch_size")
