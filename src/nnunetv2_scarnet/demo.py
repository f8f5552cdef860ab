"""The main job on the embedded default: phantom LGE -> nnU-Net dataset -> plan -> train ScarNet -> predict ->
`scarnet report` (HTML report per held-out phantom).

    scarnet-demo [--workdir scarnet_demo] [--trainer ScarNetTrainerLite_demo] [--seed 0]

Runs the stock nnU-Net console scripts as subprocesses, exactly as a user would on real data, and shows the
training's progress (epoch n of N, pseudo-Dice) from nnU-Net's own log lines. Everything is seeded (phantoms,
split, and the Python / NumPy / PyTorch generators of the training process, which drive nnU-Net's patch sampling
and augmentation), so that two runs on one machine print the same table. The phantom-trained model is a
demonstration of the pipeline, not a model for patients.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import nibabel as nib
import numpy as np

from nnunetv2_scarnet.data.emidec import convert_emidec
from nnunetv2_scarnet.data.phantom import write_phantom_cases
from nnunetv2_scarnet.evaluation import evaluate_folders

MARKER = ".scarnet-demo"

#: glibc malloc settings for a training process on a CPU: keep the memory a training step frees for the next step
#: (large blocks from the heap up to glibc's 32 MiB mmap ceiling, no trimming of the heap back to the kernel)
#: instead of returning it after every step and taking page faults on every new one. Measured 2026-12-06 on the
#: 2-core dev machine, 3 epochs of ScarNetTrainerLite_demo on the demo's phantoms, one after another: 152 s instead
#: of 207 s (epochs 38-42 s instead of 54-58 s; system time 9 s instead of 74 s; minor page faults 3.2 million
#: instead of 32 million). It changes no result; the process keeps its peak memory until it ends.
CPU_TRAINING_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2 ** 20), "MALLOC_TRIM_THRESHOLD_": str(16 * 2 ** 30),
                           "MALLOC_TOP_PAD_": str(256 * 2 ** 20)}


SEEDED_TRAIN = "from nnunetv2_scarnet.demo import seeded_training_entry; seeded_training_entry()"


def seeded_training_entry() -> None:
    """`nnUNetv2_train` with the Python, NumPy and PyTorch generators seeded first (argv: SEED, then the arguments
    of nnUNetv2_train). nnU-Net draws its patches and augmentations from these generators; with
    nnUNet_n_proc_DA=0 they all run in this process."""
    import random

    import torch

    seed = int(sys.argv[1])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    sys.argv = ["nnUNetv2_train"] + sys.argv[2:]
    from nnunetv2.run.run_training import run_training_entry

    run_training_entry()


class TrainingProgress:
    """Turns nnU-Net's training log lines into one console line per epoch: epoch n/N, pseudo-Dice, time."""

    def __init__(self, n_epochs: Optional[int], label_names: List[str]):
        self.n_epochs, self.label_names = n_epochs, label_names
        self.epoch, self.dice, self.validating, self.line_open = None, None, False, False

    def close(self) -> None:
        """End an epoch line that its epoch never completed (the training failed)."""
        if self.line_open:
            print(flush=True)
            self.line_open = False

    def __call__(self, line: str) -> None:
        if (m := re.search(r"Epoch (\d+)\s*$", line)):
            self.epoch = int(m.group(1))
            # shown when the epoch starts (an epoch can take minutes on a busy CPU), completed when it ends
            print(f"  epoch {self.epoch + 1}/{self.n_epochs or '?'}: training ...", end="", flush=True)
            self.line_open = True
        elif "Pseudo dice" in line:
            self.dice = [float(v) for v in re.findall(r"(?:float32\()?(\d+\.\d+|nan)", line.split("Pseudo dice")[1])]
        elif (m := re.search(r"Epoch time: ([\d.]+) s", line)) and self.epoch is not None:
            names = self.label_names if self.dice and len(self.label_names) == len(self.dice) else \
                [f"label {i + 1}" for i in range(len(self.dice or []))]
            dice = ", ".join(f"{n} {d:.2f}" for n, d in zip(names, self.dice or []))
            print(f" running pseudo-Dice {dice or 'n/a'} ({float(m.group(1)):.0f} s)", flush=True)
            self.line_open = False
        elif re.search(r": predicting \S", line) and not self.validating:
            self.validating = True
            print("  final validation of fold 0 (nnU-Net predicts its validation phantoms) ...", flush=True)


def epochs_of(trainer: str) -> Optional[int]:
    """The epoch count of one of this package's trainers (None for others)."""
    import nnunetv2_scarnet.trainers as trainers

    return getattr(getattr(trainers, trainer, None), "epochs", None)


def run(cmd: List[str], env: Dict[str, str], log_path: str, on_line: Optional[Callable[[str], None]] = None,
        shown: Optional[str] = None) -> None:
    """Run one console script, its output going to `log_path` (and each line to `on_line`); raise with the log's
    tail when it fails."""
    print(f"$ {shown or ' '.join(cmd)}", flush=True)
    start = time.time()
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   bufsize=1)
        for line in process.stdout:
            log.write(line)
            log.flush()
            if on_line:
                on_line(line)
        returncode = process.wait()
    if hasattr(on_line, "close"):
        on_line.close()
    print(f"  done in {time.time() - start:.0f} s (log: {log_path})", flush=True)
    if returncode != 0:
        with open(log_path) as log:
            tail = "".join(log.readlines()[-25:])
        raise RuntimeError(f"{cmd[0]} failed with exit code {returncode}:\n{tail}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmt1(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


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
    write_phantom_cases(os.path.join(workdir, "phantoms_train"), args.train_cases, seed=args.seed)
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

    train_env = dict(env, nnUNet_n_proc_DA="0", **CPU_TRAINING_MALLOC_ENV) if args.device == "cpu" else env
    n_epochs = epochs_of(args.trainer)
    with open(os.path.join(raw, "dataset.json")) as f:
        labels = json.load(f)["labels"]
    names = [k for k, v in sorted(labels.items(), key=lambda kv: kv[1]) if v != 0]
    print(f"[4/5] nnUNetv2_train -tr {args.trainer} ({n_epochs or '?'} epochs, seed {args.seed})", flush=True)
    train_args = [d, "2d", "0", "-tr", args.trainer, "-p", "ScarNetPlans", "-device", args.device]
    run([sys.executable, "-c", SEEDED_TRAIN, str(args.seed)] + train_args, train_env,
        os.path.join(logs, "train.log"), TrainingProgress(n_epochs, names),
        shown=f"nnUNetv2_train {' '.join(train_args)}   (seeded: {args.seed})")

    model = os.path.join(env["nnUNet_results"], os.path.basename(raw), f"{args.trainer}__ScarNetPlans__2d")
    report_dir = os.path.join(workdir, "report")
    # no mirroring here (as the demo's prediction always was): on a CPU it would quadruple the prediction time
    report_args = ["report", images_ts, "--model", model, report_dir, "--folds", "0", "--device", args.device,
                   "--disable-mirroring"]
    print("[5/5] scarnet report on the held-out phantoms (nnUNetPredictor, quantification, QC, HTML)", flush=True)
    print(f"$ scarnet {' '.join(report_args)}", flush=True)
    from nnunetv2_scarnet.cli import main as scarnet_main

    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in train_env.items() if k.startswith("nnUNet")})
    try:
        report_status = scarnet_main(report_args)
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if report_status != 0:
        raise RuntimeError(f"scarnet report failed with exit code {report_status}")
    predictions = os.path.join(workdir, "predictions")
    os.makedirs(predictions)
    for case in test_ids_renamed:
        shutil.copyfile(os.path.join(report_dir, case, "segmentation", f"{case}.nii.gz"),
                        os.path.join(predictions, f"{case}.nii.gz"))

    evaluation = evaluate_folders(predictions, labels_ts, os.path.join(workdir, "evaluation"), name=args.trainer)
    rows = [{k: c[k] for k in ("case", "dice_myocardium", "dice_scar", "scar_ml_reference", "scar_ml_prediction",
                               "scar_pct_lvm_reference", "scar_pct_lvm_prediction")} for c in evaluation["cases"]]
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump({"trainer": args.trainer, "seed": args.seed, "seconds": round(time.time() - t0, 1),
                   "cases": rows}, f, indent=2)
    print("\ncase                  Dice myo  Dice scar  scar mL true/pred  scar %LVM true/pred")
    for r in rows:
        print(f"{r['case']:<21} {_fmt(r['dice_myocardium']):>8}  {_fmt(r['dice_scar']):>9}  "
              f"{r['scar_ml_reference']:7.2f} / {r['scar_ml_prediction']:<7.2f} "
              f"{_fmt1(r['scar_pct_lvm_reference']):>7} / {_fmt1(r['scar_pct_lvm_prediction']):<5}")
    print(f"\nDemo finished in {time.time() - t0:.0f} s. HTML reports (open in a browser):")
    for case in test_ids_renamed:
        print(f"  {os.path.join(report_dir, case, case + '_report.html')}")
    print(f"Predictions: {predictions}; evaluation: {os.path.join(workdir, 'evaluation')}\n"
          f"A model trained for minutes on phantoms is a demonstration of the pipeline, not a clinical model.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
