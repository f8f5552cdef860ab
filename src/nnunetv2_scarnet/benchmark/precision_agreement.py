"""How far CPU low-precision inference moves a trained model's predictions: float32 against each other precision.

    python -m nnunetv2_scarnet.benchmark.precision_agreement -m MODEL_FOLDER -f 0 -c checkpoint_final.pth \\
        -i IMAGES_FOLDER --cases Case_P001 Case_P002 [--precisions encoder all int8] [--threads 1] [--out x.json]

Each case is predicted as `nnUNetv2_predict --disable_tta` does (nnU-Net's predictor, sliding window, no
mirroring) once per SCARNET_CPU_BF16 precision (see network/architectures/precision.py): "0" (float32, the
reference), then each of --precisions ("int8": the encoder's Linear layers dynamically quantised, the rest
float32, int8_encoder.py; a benchmark, not a network mode). Reported per case and precision: Dice against the
float32 prediction of LV myocardium, scar and blood pool (the dataset's label scheme), their volumes in mL in
both, the fraction of voxels whose label changed, the process CPU time of the prediction (its ratio to float32's),
and how many cases are within the tolerance the project states for CPU precisions (precision.CPU_BF16_TOLERANCE).
The bfloat16 precisions are only meaningful on CPUs with native bfloat16 (on others they run in float32, which
the report says).
"""
import argparse
import contextlib
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from nnunetv2_scarnet.network.architectures.precision import CPU_BF16_TOLERANCE


def dice(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """Dice of two boolean masks; None when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return None if total == 0 else 2.0 * int((a & b).sum()) / total


#: the structures compared (LabelScheme.masks order: myocardium, scar, mvo, blood pool)
STRUCTURES = ("myocardium", "scar", "blood_pool")


def compare(reference: np.ndarray, other: np.ndarray, scheme, voxel_ml: float) -> Dict:
    """Agreement of two label maps (float32's first): Dice and volumes (mL) per structure, changed voxels."""
    structures = dict(zip(("myocardium", "scar", "mvo", "blood_pool"), scheme.masks(reference)))
    others = dict(zip(("myocardium", "scar", "mvo", "blood_pool"), scheme.masks(other)))
    result = {}
    for name in STRUCTURES:
        result[f"dice_{name}"] = dice(structures[name], others[name])
        result[f"{name}_ml_float32"] = float(structures[name].sum() * voxel_ml)
        result[f"{name}_ml"] = float(others[name].sum() * voxel_ml)
    result["changed_voxel_fraction"] = float((reference != other).mean())
    return result


def within_tolerance(row: Dict, tolerance: Dict) -> bool:
    """The stated tolerance (precision.CPU_BF16_TOLERANCE) for one case: every structure present in either
    prediction has a Dice of at least tolerance["dice"] (where float32's structure has at least
    tolerance["dice_min_ml"]) and a volume within tolerance["volume_fraction"] of float32's or
    tolerance["volume_ml"], whichever is larger."""
    return all(structure_within_tolerance(row[f"dice_{name}"], row[f"{name}_ml_float32"], row[f"{name}_ml"],
                                          tolerance)
               for name in STRUCTURES if row[f"dice_{name}"] is not None)  # None: absent from both predictions


def structure_within_tolerance(dice_value: float, reference_ml: float, other_ml: float, tolerance: Dict) -> bool:
    """One structure against the stated tolerance (see `within_tolerance`); `reference_ml` is float32's volume."""
    if reference_ml >= tolerance["dice_min_ml"] and dice_value < tolerance["dice"]:
        return False
    return abs(other_ml - reference_ml) <= max(tolerance["volume_fraction"] * reference_ml, tolerance["volume_ml"])


@contextlib.contextmanager
def _int8_encoder(predictor, encoders):
    """The predictor's network with its int8 encoder copy; nnU-Net's predictor reloads its (one fold's) parameters
    before every prediction, so within the block they are the state of that network, int8 encoder included."""
    with encoders.swapped_in(predictor.network):
        parameters = predictor.list_of_parameters
        predictor.list_of_parameters = [predictor.network.state_dict()]
        try:
            yield
        finally:
            predictor.list_of_parameters = parameters


def measure(model_folder: str, fold: str, checkpoint: str, images: str, cases: Sequence[str],
            precisions: Sequence[str]) -> Dict:
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunetv2_scarnet.benchmark.int8_encoder import INT8, Int8Encoders
    from nnunetv2_scarnet.model_loading import initialize_predictor
    from nnunetv2_scarnet.network.architectures.precision import CPU_BF16_ENV, cpu_has_native_bf16
    from nnunetv2_scarnet.quantification.label_scheme import LabelScheme

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                allow_tqdm=False)
    initialize_predictor(predictor, model_folder, [fold if fold == "all" else int(fold)], checkpoint)
    scheme = LabelScheme.from_dataset_json(os.path.join(model_folder, "dataset.json"))
    previous = os.environ.get(CPU_BF16_ENV)
    int8_encoders = Int8Encoders()
    rows: List[Dict] = []
    try:
        for case in cases:
            path = os.path.join(images, f"{case}_0000.nii.gz")
            image, properties = SimpleITKIO().read_images([path])
            voxel_ml = float(np.prod(properties["spacing"])) / 1000.0
            predictions, cpu_seconds = {}, {}
            for precision in ["0", *precisions]:
                os.environ[CPU_BF16_ENV] = precision
                int8 = (_int8_encoder(predictor, int8_encoders) if precision == INT8
                        else contextlib.nullcontext())
                with int8:
                    start = time.process_time()
                    predictions[precision] = predictor.predict_single_npy_array(image, properties, None, None,
                                                                                False)
                    cpu_seconds[precision] = time.process_time() - start
            for precision in precisions:
                rows.append({"case": case, "precision": precision,
                             **compare(predictions["0"], predictions[precision], scheme, voxel_ml),
                             "cpu_s": cpu_seconds[precision], "cpu_s_float32": cpu_seconds["0"],
                             "cpu_time_vs_float32": cpu_seconds[precision] / cpu_seconds["0"]})
    finally:
        if previous is None:
            os.environ.pop(CPU_BF16_ENV, None)
        else:
            os.environ[CPU_BF16_ENV] = previous
    return {"rows": rows, "native_bf16": cpu_has_native_bf16(), "model_folder": model_folder, "fold": fold,
            "checkpoint": checkpoint}


def summary(rows: List[Dict], precision: str) -> Dict:
    """Worst case over the cases of one precision (Dice where the structure is present in either prediction)."""
    mine = [r for r in rows if r["precision"] == precision]
    worst = {}
    for key in ("dice_myocardium", "dice_scar", "dice_blood_pool"):
        values = [r[key] for r in mine if r[key] is not None]
        worst[f"min_{key}"] = min(values) if values else None
    for name in STRUCTURES:
        worst[f"max_abs_{name}_ml_difference"] = max(abs(r[f"{name}_ml"] - r[f"{name}_ml_float32"]) for r in mine)
        relative = [abs(r[f"{name}_ml"] - r[f"{name}_ml_float32"]) / r[f"{name}_ml_float32"] for r in mine
                    if r[f"{name}_ml_float32"] > 0]
        worst[f"max_relative_{name}_volume_difference"] = max(relative) if relative else None
    worst["cases_within_stated_tolerance"] = sum(within_tolerance(r, CPU_BF16_TOLERANCE) for r in mine)
    worst["cases"] = len(mine)
    worst["max_changed_voxel_fraction"] = max(r["changed_voxel_fraction"] for r in mine)
    worst["median_cpu_time_vs_float32"] = float(np.median([r["cpu_time_vs_float32"] for r in mine]))
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", required=True, help="trained nnU-Net model folder")
    parser.add_argument("-f", "--fold", default="0")
    parser.add_argument("-c", "--checkpoint", default="checkpoint_final.pth")
    parser.add_argument("-i", "--images", required=True, help="folder of CASE_0000.nii.gz images")
    parser.add_argument("--cases", nargs="+", required=True)
    parser.add_argument("--precisions", nargs="+", default=["encoder", "all"], choices=["encoder", "all", "int8"])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    report = measure(args.model, args.fold, args.checkpoint, args.images, args.cases, args.precisions)
    report["summary"] = {p: summary(report["rows"], p) for p in args.precisions}
    report.update(date=time.strftime("%Y-%m-%d"), load_average_1_5_15min=list(os.getloadavg()))
    print(json.dumps(report["summary"], indent=1))
    if not report["native_bf16"]:
        print("this CPU has no native bfloat16: every precision ran in float32")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
