"""Loading nnU-Net model folders without running code from them (trust policy, docs/reliability.md).

nnU-Net's own `initialize_from_trained_model_folder` reads checkpoints with `torch.load(weights_only=False)`: a
model folder from the internet can run any code when it is loaded. Here checkpoints are read with
`weights_only=True` and an explicit allow-list of what nnU-Net checkpoints hold besides tensors, dicts, lists and
plain numbers (`nnUNetTrainer.save_checkpoint`: `init_args.device` is a torch.device, the logging and `_best_ema`
hold numpy scalars). A checkpoint that needs anything else is refused with the globals it names, unless the user
passes `--trust-model` (then it is loaded as nnU-Net would, with pickle execution).

`initialize_predictor` is `nnUNetPredictor.initialize_from_trained_model_folder` with this loader and clear
messages for a bad `plans.json` / `dataset.json` / checkpoint. `python -m nnunetv2_scarnet.model_loading` predicts a
folder of images with it (used by `scarnet noise` instead of `nnUNetv2_predict_from_modelfolder`).
"""
import argparse
import json
import os
import sys
import zipfile
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch


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


def initialize_predictor(predictor, model_folder: str, folds: Sequence[str], checkpoint_name: str,
                         trust_model: bool = False) -> None:
    """`predictor.initialize_from_trained_model_folder` with `load_checkpoint` and messages naming the file."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_json = read_model_json(os.path.join(model_folder, "dataset.json"))
    plans_path = os.path.join(model_folder, "plans.json")
    plans = read_model_json(plans_path)
    parameters, first = [], None
    for fold in folds:
        path = os.path.join(model_folder, f"fold_{fold}", checkpoint_name)
        checkpoint = load_checkpoint(path, trust_model)
        first = first or (path, checkpoint)
        parameters.append(checkpoint["network_weights"])
    path, checkpoint = first
    configuration = checkpoint["init_args"]["configuration"]
    try:
        plans_manager = PlansManager(plans)
        configuration_manager = plans_manager.get_configuration(configuration)
        label_manager = plans_manager.get_label_manager(dataset_json)
        n_inputs = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    except Exception as exc:  # noqa: BLE001 - nnU-Net raises KeyError/TypeError/... for a malformed plans file
        raise ModelFolderError(f"{plans_path}: not usable nnU-Net plans for configuration {configuration!r} "
                               f"({type(exc).__name__}: {exc})") from None
    trainer_class = recursive_find_trainer_class_by_name(checkpoint["trainer_name"])
    if trainer_class is None:
        raise ModelFolderError(f"{path}: trainer {checkpoint['trainer_name']!r} not found (is its package "
                               f"installed?)")
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
                                    checkpoint["trainer_name"], checkpoint.get("inference_allowed_mirroring_axes"))


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
