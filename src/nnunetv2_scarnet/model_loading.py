"""Loading nnU-Net model folders without running code from them (trust policy, docs/reliability.md).

nnU-Net's own `initialize_from_trained_model_folder` reads checkpoints with `torch.load(weights_only=False)`: a
model folder from the internet can run any code when it is loaded. Here checkpoints are read with
`weights_only=True` and an explicit allow-list of what nnU-Net checkpoints hold besides tensors, dicts, lists and
plain numbers (`nnUNetTrainer.save_checkpoint`: `init_args.device` is a torch.device, the logging and `_best_ema`
hold numpy scalars). A checkpoint that needs anything else is refused with the globals it names, unless the user
passes `--trust-model` (then it is loaded as nnU-Net would, with pickle execution).

`plans.json` is untrusted too: nnU-Net resolves the network class, its building blocks, the preprocessor,
normalisations, resampling functions, reader/writer and label manager by name and calls them. `initialize_predictor`
is `nnUNetPredictor.initialize_from_trained_model_folder` with this loader, `model_validation`'s allow-lists and
number checks run before any of those names is resolved (`--trust-model` lifts the allow-lists, not the number
checks), the dataset.json the model was trained with (from the checkpoint; the folder's must agree), and one message
naming the file and the key for anything refused. `python -m nnunetv2_scarnet.model_loading` predicts a
folder of images with it (used by `scarnet noise` instead of `nnUNetv2_predict_from_modelfolder`).
"""
import argparse
import copy
import json
import os
import sys
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nnunetv2_scarnet.model_validation import (ModelProblem, check_checkpoint_entries, check_dataset_json,
                                               check_mirroring_axes, check_plans, fold_disagreements,
                                               label_map_differences, plans_differences)


class ModelFolderError(FileNotFoundError):
    """The model folder is not a usable (or not a trusted) nnU-Net training output; the message names the file."""


def _numpy_globals() -> list:
    core = getattr(np, "_core", None) or np.core
    names = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float16", "Float32",
             "Float64")
    dtypes = [getattr(np.dtypes, f"{n}DType") for n in names if hasattr(np.dtypes, f"{n}DType")]
    return [core.multiarray.scalar, core.multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]


#: what an nnU-Net checkpoint may hold besides what `weights_only=True` always allows (tensors, dicts, lists,
#: tuples, str, numbers, torch.device, OrderedDict): numpy scalars, arrays and their dtypes
CHECKPOINT_ALLOW_LIST = _numpy_globals()
TRUST_HINT = ("load it only if you trust where the model folder comes from, with --trust-model (its pickled code "
              "is then executed)")
PLANS_TRUST_HINT = ("pass --trust-model only if you trust where the model folder comes from (its plans may then name "
                    "any installed code, as nnU-Net allows)")


def read_model_json(path: str) -> Dict:
    """plans.json / dataset.json of a model folder as a dict, or a ModelFolderError naming the file."""
    if not os.path.isfile(path):
        raise ModelFolderError(f"{path}: missing; --model must be an nnU-Net training output folder "
                               f"(Dataset.../<trainer>__<plans>__<configuration>)")
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(content, dict):
        raise ModelFolderError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def load_checkpoint(path: str, trust_model: bool = False) -> Dict:
    """An nnU-Net checkpoint read without pickle execution (see module doc); with `trust_model`, as nnU-Net does."""
    if not os.path.isfile(path):
        raise ModelFolderError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise ModelFolderError(f"{path}: not a PyTorch checkpoint (torch.save writes a zip archive; this file is "
                               f"truncated, plain text or of another format)")
    with torch.serialization.safe_globals(CHECKPOINT_ALLOW_LIST):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            if unsafe and not trust_model:
                raise ModelFolderError(f"{path}: the checkpoint holds objects that are not in the allow-list of "
                                       f"nnU-Net checkpoints ({', '.join(unsafe)}) and could run code when loaded; "
                                       f"refused; {TRUST_HINT}")
            checkpoint = torch.load(path, map_location="cpu", weights_only=not trust_model)
        except ModelFolderError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFolderError(f"{path}: cannot read the checkpoint ({first})") from None
    network = checkpoint.get("network_weights") if isinstance(checkpoint, dict) else None
    init_args = checkpoint.get("init_args") if isinstance(checkpoint, dict) else None
    if not isinstance(network, dict) or not isinstance(checkpoint.get("trainer_name"), str) or \
            not isinstance(init_args, dict) or not isinstance(init_args.get("configuration"), str):
        raise ModelFolderError(f"{path}: not an nnU-Net checkpoint (expected network_weights, trainer_name and "
                               f"init_args.configuration)")
    return checkpoint


def _refusal(path: str, problem: ModelProblem, key_prefix: str = "") -> ModelFolderError:
    """One ModelFolderError naming the file and the key; names of code add how to trust the folder."""
    hint = f"; {PLANS_TRUST_HINT}" if problem.by_name else ""
    return ModelFolderError(f"{path}: {key_prefix}{problem}{hint}")


def trained_dataset_json(checkpoints: List[Tuple[str, Dict]], dataset_path: str) -> Dict:
    """The dataset.json the model was trained with (the checkpoints' `init_args.dataset_json`), once the chosen
    folds agree on it and the folder's `dataset_path` says the same in every entry that changes the label map."""
    for path, checkpoint in checkpoints:
        try:
            check_checkpoint_entries(checkpoint)
        except ModelProblem as problem:
            raise _refusal(path, problem) from None
    differing = fold_disagreements(checkpoints)
    if differing:
        raise ModelFolderError(f"{checkpoints[0][0]}: the chosen folds were not trained alike ({'; '.join(differing)})"
                               f"; choose folds of one training with --folds")
    path, checkpoint = checkpoints[0]
    trained = checkpoint["init_args"]["dataset_json"]
    try:
        check_dataset_json(trained)
    except ModelProblem as problem:
        raise _refusal(path, problem, "init_args.dataset_json.") from None
    here = read_model_json(dataset_path)
    try:
        check_dataset_json(here)
    except ModelProblem as problem:
        raise _refusal(dataset_path, problem) from None
    differences = label_map_differences(here, trained)
    if differences:
        raise ModelFolderError(f"{dataset_path}: disagrees with the dataset.json the model was trained with "
                               f"(init_args.dataset_json of {path}): {'; '.join(differences)}; refused: the network "
                               f"predicts the checkpoint's labels, so restore the folder's dataset.json from the "
                               f"training")
    return trained


def checked_plans(plans_path: str, configuration: str, n_channels: int, trust_model: bool,
                  checkpoints: Sequence[Tuple[str, Dict]] = ()):
    """(PlansManager, ConfigurationManager) of `plans_path` once the configuration the checkpoint names passed
    `model_validation.check_plans` (with `trust_model`, names outside its allow-lists are accepted) and the file
    equals the plans each of `checkpoints` was trained with (`init_args.plans`)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = read_model_json(plans_path)
    as_written = copy.deepcopy(plans)  # PlansManager may convert the dict it is given
    configurations = plans.get("configurations")
    if not isinstance(configurations, dict) or configuration not in configurations:
        raise ModelFolderError(f"{plans_path}: configurations: no {configuration!r}, the configuration the "
                               f"checkpoint was trained with (init_args.configuration)")
    try:  # nnU-Net's inheritance and old-format conversion: dict work, nothing is resolved by name
        plans_manager = PlansManager(plans)
        configuration_manager = plans_manager.get_configuration(configuration)
    except Exception as exc:  # noqa: BLE001 - nnU-Net raises KeyError/TypeError/... for a malformed plans file
        raise ModelFolderError(f"{plans_path}: not usable nnU-Net plans for configuration {configuration!r} "
                               f"({type(exc).__name__}: {exc})") from None
    try:
        check_plans(plans, configuration, configuration_manager.configuration, n_channels, trust_model)
    except ModelProblem as problem:
        raise _refusal(plans_path, problem) from None
    for path, checkpoint in checkpoints:
        try:
            differences = plans_differences(as_written, checkpoint["init_args"].get("plans"))
        except ModelProblem as problem:
            raise _refusal(path, problem) from None
        if differences:
            raise ModelFolderError(f"{plans_path}: disagrees with the plans the model was trained with "
                                   f"(init_args.plans of {path}): {'; '.join(differences)}; refused: the network "
                                   f"was trained on the checkpoint's plans, so restore the folder's plans.json from "
                                   f"the training")
    return plans_manager, configuration_manager


def find_trainer_class(name: str, path: str):
    """The installed nnU-Net trainer class `name` (nnU-Net's own lookup), refused unless it is one."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        found = recursive_find_trainer_class_by_name(name)
    except (RuntimeError, TypeError, AssertionError):  # not found, not a class, not a trainer
        found = None
    if not (isinstance(found, type) and issubclass(found, nnUNetTrainer)):
        raise ModelFolderError(f"{path}: trainer_name: {name!r} is not an installed nnU-Net trainer (a subclass of "
                               f"nnUNetTrainer; is its package installed?)")
    return found


def initialize_predictor(predictor, model_folder: str, folds: Sequence[str], checkpoint_name: str,
                         trust_model: bool = False) -> None:
    """`predictor.initialize_from_trained_model_folder` with `load_checkpoint`, the model folder checked before
    anything is resolved by name or built (`model_validation`), the trained dataset.json, and one message naming
    the file and the key for anything refused."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    paths = [os.path.join(model_folder, f"fold_{fold}", checkpoint_name) for fold in folds]
    checkpoints = [(p, load_checkpoint(p, trust_model)) for p in paths]
    dataset_json = trained_dataset_json(checkpoints, os.path.join(model_folder, "dataset.json"))
    path, checkpoint = checkpoints[0]
    plans_path = os.path.join(model_folder, "plans.json")
    configuration = checkpoint["init_args"]["configuration"]
    plans_manager, configuration_manager = checked_plans(plans_path, configuration, check_dataset_json(dataset_json),
                                                         trust_model, checkpoints)
    mirroring = checkpoint.get("inference_allowed_mirroring_axes")
    try:
        check_mirroring_axes(mirroring, len(configuration_manager.patch_size))
    except ModelProblem as problem:
        raise _refusal(path, problem) from None
    try:
        label_manager = plans_manager.get_label_manager(dataset_json)
        n_inputs = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    except Exception as exc:  # noqa: BLE001
        raise ModelFolderError(f"{plans_path}: not usable nnU-Net plans for configuration {configuration!r} "
                               f"({type(exc).__name__}: {exc})") from None
    trainer_class = find_trainer_class(checkpoint["trainer_name"], path)
    parameters = [c["network_weights"] for _, c in checkpoints]
    try:
        network = trainer_class.build_network_architecture(plans_manager, configuration_manager, n_inputs,
                                                           label_manager.num_segmentation_heads,
                                                           enable_deep_supervision=False)
        network.load_state_dict(parameters[0])
    except Exception as exc:  # noqa: BLE001
        raise ModelFolderError(f"{path}: the weights do not fit the network that {plans_path} describes "
                               f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''})") \
            from None
    predictor.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                    checkpoint["trainer_name"], mirroring)


def predict_folder(model_folder: str, folds: List[str], images: str, out: str, device: str, mirroring: bool,
                   checkpoint_name: str = "checkpoint_final.pth", trust_model: bool = False) -> None:
    """nnU-Net prediction of every image of `images` into `out` (as nnUNetv2_predict_from_modelfolder)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch_device = torch.device(device)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                                perform_everything_on_device=torch_device.type == "cuda", device=torch_device,
                                verbose=False, allow_tqdm=False)
    initialize_predictor(predictor, model_folder, [f if f == "all" else int(f) for f in folds], checkpoint_name,
                         trust_model)
    predictor.predict_from_files(images, out, save_probabilities=False, overwrite=True,
                                 num_processes_preprocessing=1, num_processes_segmentation_export=1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnunetv2_scarnet.model_loading",
                                     description="nnU-Net prediction with the checkpoint trust policy")
    parser.add_argument("-i", required=True)
    parser.add_argument("-o", required=True)
    parser.add_argument("-m", required=True)
    parser.add_argument("-f", nargs="+", required=True)
    parser.add_argument("-chk", default="checkpoint_final.pth")
    parser.add_argument("-device", default="cpu")
    parser.add_argument("--disable_tta", action="store_true")
    parser.add_argument("--trust-model", action="store_true")
    args = parser.parse_args(argv)
    try:
        predict_folder(args.m, args.f, args.i, args.o, args.device, not args.disable_tta, args.chk, args.trust_model)
    except ModelFolderError as exc:  # one line for the caller's message
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
