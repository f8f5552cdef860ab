"""The main job on the embedded default: phantom LGE -> nnU-Net dataset -> plan -> train ScarNet -> predict.

    scarnet-demo [--workdir scarnet_demo] [--trainer ScarNetTrainerLite_demo]

Runs the stock nnU-Net console scripts as subprocesses, exactly as a user would on real data. The phantom-trained
model is a demonstration of the pipeline, not a model for patients.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List

import nibabel as nib
import numpy as np

from nnunetv2_scarnet.data.emidec import convert_emidec
from nnunetv2_scarnet.data.phantom import write_phantom_cases
from nnunetv2_scarnet.evaluation import evaluate_folders
from nnunetv2_scarnet.quantification import quantify_folder

MARKER = ".scarnet-demo"


def run(cmd: List[str], env: Dict[str, str], log_path: str) -> None:
    """Run one console script, its output going to `log_path`; raise with the log's tail when it fails."""
    print(f"$ {' '.join(cmd)}", flush=True)
    start = time.time()
    with open(log_path, "w") as log:
        result = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"  done in {time.time() - start:.0f} s (log: {log_path})", flush=True)
    if result.returncode != 0:
        with open(log_path) as log:
            tail = "".join(log.readlines()[-25:])
        raise RuntimeError(f"{cmd[0]} failed with exit code {result.returncode}:\n{tail}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def prepare_workdir(workdir: str) -> None:
    if os.path.isdir(workdir) and os.listdir(workdir):
        if not os.path.isfile(os.path.join(workdir, MARKER)):
            raise SystemExit(f"scarnet-demo: {workdir} exists and was not made by scarnet-demo; choose another "
                             f"--workdir")
        shutil.rmtree(workdir)
    os.makedirs(workdir, exist_ok=True)
    open(os.path.join(workdir, MARKER), "w").close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="scarnet_demo", help="everything is written here (default: %(default)s)")
    parser.add_argument("--trainer", default="ScarNetTrainerLite_demo")
    parser.add_argument("--train-cases", type=int, default=10)
    parser.add_argument("--test-cases", type=int, default=2)
    parser.add_argument("--dataset-id", type=int, default=990)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)

    workdir = os.path.abspath(args.workdir)
    prepare_workdir(workdir)
    env = dict(os.environ, nnUNet_raw=os.path.join(workdir, "nnUNet_raw"),
               nnUNet_preprocessed=os.path.join(workdir, "nnUNet_preprocessed"),
               nnUNet_results=os.path.join(workdir, "nnUNet_results"))
    if args.device == "cpu":
        env.update(nnUNet_def_n_proc="1")
    logs = os.path.join(workdir, "logs")
    os.makedirs(logs)
    t0 = time.time()

    print(f"[1/5] writing {args.train_cases} + {args.test_cases} phantom LGE stacks", flush=True)
    train_ids = write_phantom_cases(os.path.join(workdir, "phantoms_train"), args.train_cases, seed=args.seed)
    test_ids = write_phantom_cases(os.path.join(workdir, "phantoms_test"), args.test_cases, seed=args.seed + 1,
                                   infarct_fraction=1.0)
    test_ids_renamed = [f"Test_{c}" for c in test_ids]

    print("[2/5] converting to an nnU-Net raw dataset", flush=True)
    raw = convert_emidec(os.path.join(workdir, "phantoms_train"), env["nnUNet_raw"], args.dataset_id,
                         "ScarNetPhantom", num_folds=5, seed=args.seed)
    images_ts, labels_ts = os.path.join(workdir, "imagesTs"), os.path.join(workdir, "labelsTs")
    os.makedirs(images_ts)
    os.makedirs(labels_ts)
    for case, renamed in zip(test_ids, test_ids_renamed):
        source = os.path.join(workdir, "phantoms_test", case)
        shutil.copyfile(os.path.join(source, "image.nii.gz"), os.path.join(images_ts, f"{renamed}_0000.nii.gz"))
        label = nib.load(os.path.join(source, "label.nii.gz"))
        merged = np.asarray(label.dataobj).copy()
        merged[merged == 4] = 3  # the dataset merges MVO into scar
        nib.save(nib.Nifti1Image(merged, label.affine, label.header), os.path.join(labels_ts, f"{renamed}.nii.gz"))
    print(f"  {raw}", flush=True)

    d = str(args.dataset_id)
    print("[3/5] nnUNetv2_plan_and_preprocess with ScarNetPlanner", flush=True)
    run(["nnUNetv2_plan_and_preprocess", "-d", d, "-c", "2d", "-pl", "ScarNetPlanner", "-np", "1"], env,
        os.path.join(logs, "plan_and_preprocess.log"))

    train_env = dict(env, nnUNet_n_proc_DA="0") if args.device == "cpu" else env
    print(f"[4/5] nnUNetv2_train -tr {args.trainer} (short demo schedule)", flush=True)
    run(["nnUNetv2_train", d, "2d", "0", "-tr", args.trainer, "-p", "ScarNetPlans", "-device", args.device],
        train_env, os.path.join(logs, "train.log"))

    print("[5/5] nnUNetv2_predict on the held-out phantoms", flush=True)
    predictions = os.path.join(workdir, "predictions")
    run(["nnUNetv2_predict", "-i", images_ts, "-o", predictions, "-d", d, "-c", "2d", "-tr", args.trainer,
         "-p", "ScarNetPlans", "-f", "0", "--disable_tta", "-npp", "1", "-nps", "1", "-device", args.device],
        train_env, os.path.join(logs, "predict.log"))

    evaluation = evaluate_folders(predictions, labels_ts, os.path.join(workdir, "evaluation"), name=args.trainer)
    quantify_folder(predictions, os.path.join(workdir, "report"), images_ts)
    rows = [{k: c[k] for k in ("case", "dice_myocardium", "dice_scar", "scar_ml_reference", "scar_ml_prediction",
                               "scar_pct_lvm_reference", "scar_pct_lvm_prediction")} for c in evaluation["cases"]]
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump({"trainer": args.trainer, "seconds": round(time.time() - t0, 1), "cases": rows}, f, indent=2)
    print("\ncase                  Dice myo  Dice scar  scar mL true/pred  scar %LVM true/pred")
    for r in rows:
        print(f"{r['case']:<21} {_fmt(r['dice_myocardium']):>8}  {_fmt(r['dice_scar']):>9}  "
              f"{r['scar_ml_reference']:7.2f} / {r['scar_ml_prediction']:<7.2f} "
              f"{r['scar_pct_lvm_reference']:7.1f} / {r['scar_pct_lvm_prediction']:<5.1f}")
    print(f"\nDemo finished in {time.time() - t0:.0f} s. Predictions: {predictions}; report (CSV, JSON, overlays, "
          f"polar maps): {os.path.join(workdir, 'report')}; evaluation: {os.path.join(workdir, 'evaluation')}\n"
          f"A model trained for minutes on phantoms is a demonstration of the pipeline, not a clinical model.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
