"""Equal-budget accuracy protocol: stock nnU-Net vs ScarNet trainers, same data, fold and wall-clock budget.

    python -m nnunetv2_scarnet.benchmark.equal_budget --cases DIR/cases --work WORK --out OUT --budget-s 150 \
        [--fold 0] [--trainers nnUNetTrainer ScarNetTrainerLiteHybrid] [--device cuda]

1. converts the EMIDEC-style cases (patient-level, stratified splits) and preprocesses them once (stock plans);
2. trains every trainer on the same fold for the same wall-clock budget, under one rule for all
   (`budget_schedule.py`): compilation off (nnUNet_compile=f), the first epoch's one-off costs charged once and the
   second epoch setting the pace; the schedule (poly learning rate included) is set to the number of whole epochs
   that fit, so every trainer finishes its schedule instead of being cut off;
3. predicts the fold's validation patients (nnU-Net's own final validation, with mirroring) and evaluates them
   against the expert labels with `nnunetv2_scarnet.evaluation`;
4. compares every trainer with the first one on the same validation patients (`evaluation.paired_comparison`:
   Wilcoxon signed-rank p of per-patient differences, paired bootstrap 95% CIs of the difference in median scar
   Dice and in scar %LVM CCC);
5. writes `equal_budget.json` and `equal_budget.md` to OUT, after every trainer (a run cut short keeps the
   trainers that finished).

Each trainer runs in its own process, so GPU memory is returned between runs.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from nnunetv2_scarnet.benchmark.budget_schedule import (COMPILE_RULE, TIMING_RULE, budgeted, check_compile_setting,
                                                        trainer_env)

#: stock nnU-Net against the first ScarNet of the recommended order (LiteHybrid, then Lite, then _scratch): about
#: four H100 minutes each fit one 15-minute device session
DEFAULT_TRAINERS = ["nnUNetTrainer", "ScarNetTrainerLiteHybrid"]
DATASET_ID = 500


def train_one(trainer_name: str, dataset: str, fold: int, budget_s: float, device: str, overrides: Dict) -> Dict:
    from batchgenerators.utilities.file_and_folder_operations import join
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_scarnet.benchmark.speed import make_trainer

    cls = budgeted(recursive_find_trainer_class_by_name(trainer_name), budget_s)
    trainer = make_trainer(cls, dataset, "nnUNetPlans", fold, device, overrides.get("batch_size"))
    compiled = check_compile_setting(trainer, os.environ)
    if overrides.get("iterations_per_epoch"):
        trainer.num_iterations_per_epoch = overrides["iterations_per_epoch"]
    if overrides.get("val_iterations"):
        trainer.num_val_iterations_per_epoch = overrides["val_iterations"]
    trainer.run_training()
    if overrides.get("disable_mirroring"):
        trainer.inference_allowed_mirroring_axes = None
    start = time.time()
    trainer.perform_actual_validation(False)
    return {"trainer": trainer_name, "epochs": trainer.num_epochs, "iterations_first_two_epochs":
            trainer.iterations_first_epochs, "iterations_per_epoch": trainer.num_iterations_per_epoch,
            "epoch_iterations": trainer.epoch_iterations,
            "batch_size": trainer.batch_size,
            "training_seconds": trainer.training_seconds, "epoch_seconds": trainer.epoch_seconds,
            "compiled": compiled, "validation_seconds": time.time() - start,
            "validation_folder": join(trainer.output_folder, "validation")}


def run(cmd: List[str], env: Dict, log_path: Optional[str] = None) -> str:
    """Run `cmd`; its output goes to `log_path` as it comes (a run cut short keeps its log) and is returned."""
    print("$ " + " ".join(cmd), flush=True)
    if log_path is None:
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = done.stdout
    else:
        with open(log_path, "w") as log:
            done = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        output = open(log_path).read()
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{output[-4000:]}")
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", required=True, help="EMIDEC-style folder: <case>/image.nii.gz, label.nii.gz")
    parser.add_argument("--work", required=True, help="nnU-Net raw/preprocessed/results go here")
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget-s", type=float, default=150.0)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--trainers", nargs="+", default=DEFAULT_TRAINERS)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reader", default="NibabelIO", choices=["NibabelIO", "SimpleITKIO"])
    parser.add_argument("--prepare-only", action="store_true", help="convert and preprocess, train nothing")
    # for checking the protocol on a CPU with a tiny budget; leave unset for the real measurement
    parser.add_argument("--batch-size", type=int, help="override the plans' batch size (CPU check only)")
    parser.add_argument("--iterations-per-epoch", type=int, help="instead of nnU-Net's 250 (CPU check only)")
    parser.add_argument("--val-iterations", type=int, help="instead of nnU-Net's 50 (CPU check only)")
    parser.add_argument("--disable-mirroring", action="store_true", help="final validation without mirroring")
    parser.add_argument("--seed", type=int, default=0, help="seed of the paired bootstrap")
    parser.add_argument("--train-one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work)
    env = dict(os.environ, nnUNet_raw=os.path.join(work, "raw"), nnUNet_preprocessed=os.path.join(work, "pre"),
               nnUNet_results=os.path.join(work, "results"))
    dataset = f"Dataset{DATASET_ID:03d}_EMIDECbudget"
    if args.train_one:
        os.environ.update(env)
        overrides = {"batch_size": args.batch_size, "iterations_per_epoch": args.iterations_per_epoch,
                     "val_iterations": args.val_iterations, "disable_mirroring": args.disable_mirroring}
        print("RESULT " + json.dumps(train_one(args.train_one, dataset, args.fold, args.budget_s, args.device,
                                               overrides)))
        return 0

    from nnunetv2_scarnet.data.emidec import convert_emidec
    from nnunetv2_scarnet.evaluation import evaluate_folders
    from nnunetv2_scarnet.evaluation.paired_comparison import compare_models
    from nnunetv2_scarnet.io_safety import check_output_dir, prepare_output_dir

    if not args.prepare_only:
        check_output_dir(args.out)
    t0 = time.time()
    raw = convert_emidec(args.cases, env["nnUNet_raw"], DATASET_ID, "EMIDECbudget", reader=args.reader,
                         overwrite=True)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", str(args.processes)],
        dict(env, nnUNet_n_proc_DA=str(args.processes)))
    if args.prepare_only:
        return 0
    prepare_output_dir(args.out)
    splits = json.load(open(os.path.join(raw, "splits_final.json")))[args.fold]
    reference = os.path.join(work, "reference_fold")
    os.makedirs(reference, exist_ok=True)
    for case in splits["val"]:
        link = os.path.join(reference, f"{case}.nii.gz")
        if not os.path.exists(link):
            os.symlink(os.path.join(raw, "labelsTr", f"{case}.nii.gz"), link)
    child_options = []
    for flag, value in (("--batch-size", args.batch_size), ("--iterations-per-epoch", args.iterations_per_epoch),
                        ("--val-iterations", args.val_iterations)):
        if value:
            child_options += [flag, str(value)]
    if args.disable_mirroring:
        child_options.append("--disable-mirroring")
    child_args = ["--cases", args.cases, "--work", work, "--out", args.out, "--budget-s", str(args.budget_s),
                  "--fold", str(args.fold), "--device", args.device] + child_options
    from nnunetv2_scarnet.benchmark.speed import hardware

    report = {"date": time.strftime("%Y-%m-%d"), "device": args.device, "hardware": hardware(args.device),
              "budget_s": args.budget_s, "compile": COMPILE_RULE, "timing_rule": TIMING_RULE,
              "cpu_check_overrides": child_options, "fold": args.fold, "n_validation_patients": len(splits["val"]),
              "rows": [], "paired_comparison": None}
    results = []
    for name in args.trainers:
        cmd, child_env = trainer_command(name, child_args, env)
        out = run(cmd, child_env, os.path.join(args.out, f"train_{name}.log"))
        row = json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
        results.append(evaluate_folders(row["validation_folder"], reference, os.path.join(args.out, name), name=name,
                                        pictures=False))
        row["evaluation"] = results[-1]["summary"]
        report["rows"].append(row)
        if len(results) > 1:
            report["paired_comparison"] = compare_models(results, seed=args.seed)
        report["total_seconds"] = time.time() - t0
        write_report(report, args.out)  # after every trainer: a run cut short keeps the finished ones
    print(open(os.path.join(args.out, "equal_budget.md")).read())
    return 0


def trainer_command(name: str, child_args: List[str], env: Dict[str, str]) -> Tuple[List[str], Dict[str, str]]:
    """The command and environment of one trainer's process: the same for every trainer but the name."""
    return ([sys.executable, "-m", "nnunetv2_scarnet.benchmark.equal_budget", *child_args, "--train-one", name],
            trainer_env(env))


def write_report(report: Dict, out: str) -> None:
    """equal_budget.json, equal_budget.md and paired_comparison.csv (when two trainers or more finished)."""
    from nnunetv2_scarnet.benchmark.budget_table import markdown
    from nnunetv2_scarnet.evaluation.paired_comparison import comparison_table_rows
    from nnunetv2_scarnet.quantification.report import write_csv

    with open(os.path.join(out, "equal_budget.json"), "w") as f:
        json.dump(report, f, indent=1)
    comparison = report["paired_comparison"]
    if comparison:
        write_csv(os.path.join(out, "paired_comparison.csv"), comparison_table_rows(comparison))
    table = markdown(report["rows"], comparison, report["budget_s"], report["fold"])
    overrides = report["cpu_check_overrides"]
    note = f" (protocol check with {' '.join(overrides)})" if overrides else ""
    with open(os.path.join(out, "equal_budget.md"), "w") as f:
        f.write(f"{report['date']}, {report['hardware']}{note}\n\n{table}\n")


if __name__ == "__main__":
    sys.exit(main())
