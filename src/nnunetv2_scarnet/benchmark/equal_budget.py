"""Equal-budget accuracy protocol: stock nnU-Net vs ScarNet trainers, same data, fold and time budget.

    python -m nnunetv2_scarnet.benchmark.equal_budget --cases DIR/cases --work WORK --out OUT --budget-s 100 \
        [--fold 1] [--trainers nnUNetTrainer ScarNetTrainerLiteHybrid] [--device cuda]

1. converts the EMIDEC-style cases (patient-level, stratified splits) and preprocesses them once (stock plans);
2. trains every trainer on the same fold for the same budget of charged time, under one rule for all
   (`budget_schedule.py`): compilation off (nnUNet_compile=f); only the training- and validation-step loops are
   charged (set-up, the first step, logging, checkpoints and plots are not); the epochs after the first are
   refitted to the time left; every trainer's own poly schedule (and warm-up) is scaled to the budget;
3. runs the trainers in an order rotated by the fold (fold f starts with the (f mod n)-th trainer named), so no
   trainer always runs first; the order is written into the archive and above the tables;
4. predicts the fold's validation patients (nnU-Net's own final validation, with mirroring) and evaluates them
   against the expert labels with `nnunetv2_scarnet.evaluation`;
5. compares every trainer with the first one named (whatever its place in the run order) on the same validation
   patients (`evaluation.paired_comparison`: Wilcoxon signed-rank p of per-patient differences, paired bootstrap
   95% CIs of the difference in median scar Dice and in scar %LVM CCC);
6. writes `equal_budget.json` and `equal_budget.md` to OUT, after every trainer (a run cut short keeps the
   trainers that finished), headed by what the budget measures: early training, in nnU-Net's 1000 epochs.

Each trainer runs in its own process, so GPU memory is returned between runs.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_scarnet.benchmark.budget_schedule import (COMPILE_RULE, NNUNET_EPOCHS, NNUNET_ITERATIONS_PER_EPOCH,
                                                        SCHEDULE_RULE, TIMING_RULE, budgeted, check_compile_setting,
                                                        trainer_env)

#: the verdict's arms (benchmarks/gpu/run_on_device.sh): stock, stock's network under ScarNet's recipe, the Lite
#: hybrid keeping its activations (on the verdict's GPUs checkpointing would only charge it a recomputation)
DEFAULT_TRAINERS = ["nnUNetTrainer", "ScarNetTrainer_stockNetwork", "ScarNetTrainerLiteHybrid_noCheckpoint"]
DATASET_ID = 500
ORDER_RULE = ("rotated by fold: fold f starts with trainer number (f mod n) of the list and keeps the list's "
              "cyclic order; the paired statistics always take the list's first trainer as reference")


def run_order(trainers: Sequence[str], fold: int) -> List[str]:
    """The trainers in the order they run for `fold`: the list rotated left by fold mod n (a Latin square over n
    folds: every trainer runs once in every place)."""
    shift = fold % len(trainers)
    return list(trainers[shift:]) + list(trainers[:shift])


def early_training_note(rows: List[Dict], budget_s: float) -> str:
    """What the budget measures, in nnU-Net's default training (1000 epochs of 250 iterations) for every trainer."""
    parts = []
    for row in rows:
        iterations = sum(row.get("epoch_iterations") or [])
        parts.append(f"{row['trainer']} {iterations / NNUNET_ITERATIONS_PER_EPOCH:.1f} epochs ({iterations} "
                     f"iterations)")
    return (f"Early training, not convergence: {budget_s:.0f} s of charged time per trainer; in nnU-Net's "
            f"{NNUNET_EPOCHS} epochs of {NNUNET_ITERATIONS_PER_EPOCH} iterations: {'; '.join(parts) or 'n/a'}.")


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
    return {"trainer": trainer_name, "epochs": len(trainer.epoch_iterations),
            "iterations_per_epoch": trainer.num_iterations_per_epoch, "epoch_iterations": trainer.epoch_iterations,
            "batch_size": trainer.batch_size, "training_seconds": trainer.training_seconds,
            "epoch_seconds": trainer.epoch_seconds, "startup_seconds": trainer.startup_seconds,
            "wall_training_seconds": trainer.wall_training_seconds, "budget_epochs": trainer.budget_epochs,
            "lr_schedule": trainer.lr_schedule, "compiled": compiled, "validation_seconds": time.time() - start,
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
    parser.add_argument("--budget-s", type=float, default=100.0, help="charged seconds of training per trainer")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--trainers", nargs="+", default=DEFAULT_TRAINERS,
                        help="the first is the reference of the paired statistics; the run order rotates by fold")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reader", default="NibabelIO", choices=["NibabelIO", "SimpleITKIO"])
    parser.add_argument("--prepare-only", action="store_true", help="convert and preprocess, train nothing")
    parser.add_argument("--reuse-preprocessed", action="store_true",
                        help="use WORK's converted and preprocessed dataset (a second budget in the same session)")
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

    from nnunetv2_scarnet.evaluation import evaluate_folders
    from nnunetv2_scarnet.evaluation.paired_comparison import compare_models
    from nnunetv2_scarnet.io_safety import check_output_dir, prepare_output_dir

    if not args.prepare_only:
        check_output_dir(args.out)
        check_trainers(args.trainers)
    t0 = time.time()
    raw = prepare_dataset(args, env, dataset)
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

    order = run_order(args.trainers, args.fold)
    report = {"date": time.strftime("%Y-%m-%d"), "device": args.device, "hardware": hardware(args.device),
              "budget_s": args.budget_s, "compile": COMPILE_RULE, "timing_rule": TIMING_RULE,
              "schedule_rule": SCHEDULE_RULE, "order_rule": ORDER_RULE, "trainers": list(args.trainers),
              "run_order": order, "cpu_check_overrides": child_options, "fold": args.fold,
              "n_validation_patients": len(splits["val"]), "rows": [], "paired_comparison": None}
    finished = {}  # trainer -> (row, evaluation result)
    for position, name in enumerate(order, 1):
        cmd, child_env = trainer_command(name, child_args, env)
        out = run(cmd, child_env, os.path.join(args.out, f"train_{name}.log"))
        row = json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
        result = evaluate_folders(row["validation_folder"], reference, os.path.join(args.out, name), name=name,
                                  pictures=False)
        row.update(run_position=position, evaluation=result["summary"])
        finished[name] = (row, result)
        listed = [finished[n] for n in args.trainers if n in finished]  # the reference first, whenever it ran
        report["rows"] = [r for r, _ in listed]
        if args.trainers[0] in finished and len(listed) > 1:
            report["paired_comparison"] = compare_models([res for _, res in listed], seed=args.seed)
        report["total_seconds"] = time.time() - t0
        write_report(report, args.out)  # after every trainer: a run cut short keeps the finished ones
    print(open(os.path.join(args.out, "equal_budget.md")).read())
    return 0


def check_trainers(names: Sequence[str]) -> None:
    """Refuse, before any conversion or training, trainer names nnU-Net cannot find (or a name given twice)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    if len(set(names)) != len(names):
        raise SystemExit(f"equal budget: a trainer is named twice in {list(names)}")
    for name in names:
        try:
            recursive_find_trainer_class_by_name(name)
        except (RuntimeError, AssertionError) as error:
            raise SystemExit(f"equal budget: trainer {name!r} cannot be used: {error}")


def prepare_dataset(args, env: Dict[str, str], dataset: str) -> str:
    """Convert and preprocess the cases (or, with --reuse-preprocessed, check that WORK holds them); the raw folder."""
    raw = os.path.join(env["nnUNet_raw"], dataset)
    if args.reuse_preprocessed:
        needed = [os.path.join(raw, "splits_final.json"), os.path.join(env["nnUNet_preprocessed"], dataset,
                                                                        "nnUNetPlans.json")]
        missing = [p for p in needed if not os.path.isfile(p)]
        if missing:
            raise SystemExit(f"--reuse-preprocessed: {', '.join(missing)} missing; run once without it first")
        return raw
    from nnunetv2_scarnet.data.emidec import convert_emidec

    raw = convert_emidec(args.cases, env["nnUNet_raw"], DATASET_ID, "EMIDECbudget", reader=args.reader,
                         overwrite=True)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", str(args.processes)],
        dict(env, nnUNet_n_proc_DA=str(args.processes)))
    return raw


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
    try:
        table = markdown(report["rows"], comparison, report["budget_s"], report["fold"])
    except Exception as error:  # keep the run going: every number is in equal_budget.json, written above
        print(f"equal_budget.md: the tables could not be formatted ({error!r}); equal_budget.json is complete, "
              f"rebuild them with rewrite_tables({out!r})", file=sys.stderr)
        table = f"(tables not formatted: {error!r}; every number is in equal_budget.json: rewrite_tables(OUT))"
    overrides = report["cpu_check_overrides"]
    note = f" (protocol check with {' '.join(overrides)})" if overrides else ""
    order = ", ".join(f"{i}. {name}" for i, name in enumerate(report["run_order"], 1))
    with open(os.path.join(out, "equal_budget.md"), "w") as f:
        f.write(f"{report['date']}, {report['hardware']}{note}\n\n"
                f"{early_training_note(report['rows'], report['budget_s'])} Run order, fold {report['fold']} "
                f"({report['order_rule']}): {order}. Schedule: {report['schedule_rule']}.\n\n{table}\n")


def rewrite_tables(out: str) -> None:
    """Rewrite equal_budget.md and paired_comparison.csv of OUT from its equal_budget.json (after a table fix)."""
    with open(os.path.join(out, "equal_budget.json")) as f:
        write_report(json.load(f), out)


if __name__ == "__main__":
    sys.exit(main())
