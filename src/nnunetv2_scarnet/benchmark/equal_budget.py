"""Equal-budget accuracy protocol: stock nnU-Net vs ScarNet trainers, same data, fold and wall-clock budget.

    python -m nnunetv2_scarnet.benchmark.equal_budget --cases DIR/cases --work WORK --out OUT --budget-s 150 \
        [--fold 0] [--trainers nnUNetTrainer ScarNetTrainerLiteHybrid] [--device cuda]

1. converts the EMIDEC-style cases (patient-level, stratified splits) and preprocesses them once (stock plans);
2. trains every trainer on the same fold for the same wall-clock budget: the first epoch is timed and the
   schedule (poly learning rate included) is set to the number of whole epochs that fit the budget, so every
   trainer finishes its schedule instead of being cut off;
3. predicts the fold's validation patients (nnU-Net's own final validation, with mirroring) and evaluates them
   against the expert labels with `nnunetv2_scarnet.evaluation`;
4. writes `equal_budget.json` and `equal_budget.md` (Dice median [IQR], scar %LVM bias and CCC) to OUT.

Each trainer runs in its own process, so GPU memory is returned between runs.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List

#: stock nnU-Net against the first ScarNet of the recommended order (LiteHybrid, then Lite, then _scratch): about
#: four H100 minutes each fit one 15-minute device session
DEFAULT_TRAINERS = ["nnUNetTrainer", "ScarNetTrainerLiteHybrid"]
DATASET_ID = 500


def budgeted(trainer_class, budget_s: float):
    """The same trainer class (same name, so results land in the usual folder) whose schedule fits the budget."""

    import torch

    def run_training(self):
        self.on_train_start()
        start = time.time()
        while self.current_epoch < self.num_epochs:
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = [self.train_step(next(self.dataloader_train)) for _ in range(self.num_iterations_per_epoch)]
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val = [self.validation_step(next(self.dataloader_val)) for _ in range(self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(val)
            self.on_epoch_end()  # increments current_epoch
            if self.current_epoch == 1:
                first_epoch_s = time.time() - start
                self.num_epochs = max(1, int(budget_s // first_epoch_s))
                self.lr_scheduler.max_steps = self.num_epochs
                if hasattr(self.lr_scheduler, "warmup_steps"):  # ScarNet: warm-up scaled to the new schedule
                    self.lr_scheduler.warmup_steps = min(self.warmup_epochs, self.num_epochs // 10)
                self.print_to_log_file(f"budget {budget_s:.0f} s, first epoch {first_epoch_s:.1f} s -> "
                                       f"{self.num_epochs} epochs")
        self.training_seconds = time.time() - start
        self.on_train_end()

    return type(trainer_class.__name__, (trainer_class,), {"run_training": run_training})


def train_one(trainer_name: str, dataset: str, fold: int, budget_s: float, device: str, overrides: Dict) -> Dict:
    from batchgenerators.utilities.file_and_folder_operations import join
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_scarnet.benchmark.speed import make_trainer

    cls = budgeted(recursive_find_trainer_class_by_name(trainer_name), budget_s)
    trainer = make_trainer(cls, dataset, "nnUNetPlans", fold, device, overrides.get("batch_size"))
    if overrides.get("iterations_per_epoch"):
        trainer.num_iterations_per_epoch = overrides["iterations_per_epoch"]
    if overrides.get("val_iterations"):
        trainer.num_val_iterations_per_epoch = overrides["val_iterations"]
    trainer.run_training()
    if overrides.get("disable_mirroring"):
        trainer.inference_allowed_mirroring_axes = None
    start = time.time()
    trainer.perform_actual_validation(False)
    return {"trainer": trainer_name, "epochs": trainer.num_epochs, "iterations_per_epoch":
            trainer.num_iterations_per_epoch, "batch_size": trainer.batch_size,
            "training_seconds": trainer.training_seconds, "validation_seconds": time.time() - start,
            "validation_folder": join(trainer.output_folder, "validation")}


def run(cmd: List[str], env: Dict) -> str:
    print("$ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{done.stdout[-4000:]}")
    return done.stdout


def markdown(rows: List[Dict], budget_s: float, fold: int) -> str:
    from nnunetv2_scarnet.evaluation.overlap import format_median_iqr

    def fmt(stat):
        return format_median_iqr(stat) or "n/a"

    lines = [f"Budget {budget_s:.0f} s of training per trainer, fold {fold}.", "",
             "| trainer | epochs x iterations (batch) | train s | myocardium Dice | scar Dice | scar %LVM bias | "
             "scar %LVM CCC [95% CI] |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["evaluation"]
        c = s["scar_pct_lvm"]["concordance"]
        ccc = "n/a" if c["ccc"] is None else f"{c['ccc']:.3f}"
        if c.get("ci_low") is not None:
            ccc += f" [{c['ci_low']:.2f}-{c['ci_high']:.2f}]"
        lines.append(f"| {r['trainer']} | {r['epochs']} x {r['iterations_per_epoch']} ({r['batch_size']}) | "
                     f"{r['training_seconds']:.0f} | {fmt(s['dice_myocardium_patient'])} | "
                     f"{fmt(s['dice_scar_patient'])} | {s['scar_pct_lvm']['bland_altman']['bias']:.2f} | {ccc} |")
    return "\n".join(lines)


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

    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    raw = convert_emidec(args.cases, env["nnUNet_raw"], DATASET_ID, "EMIDECbudget", reader=args.reader,
                         overwrite=True)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", str(args.processes)],
        dict(env, nnUNet_n_proc_DA=str(args.processes)))
    if args.prepare_only:
        return 0
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
    rows = []
    for name in args.trainers:
        out = run([sys.executable, "-m", "nnunetv2_scarnet.benchmark.equal_budget", "--cases", args.cases,
                   "--work", work, "--out", args.out, "--budget-s", str(args.budget_s), "--fold", str(args.fold),
                   "--device", args.device, "--train-one", name] + child_options, env)
        with open(os.path.join(args.out, f"train_{name}.log"), "w") as f:
            f.write(out)
        row = json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
        row["evaluation"] = evaluate_folders(row["validation_folder"], reference, os.path.join(args.out, name),
                                             name=name)["summary"]
        rows.append(row)
    report = {"date": time.strftime("%Y-%m-%d"), "device": args.device, "budget_s": args.budget_s,
              "cpu_check_overrides": child_options,
              "fold": args.fold, "n_validation_patients": len(splits["val"]), "total_seconds": time.time() - t0,
              "rows": rows}
    from nnunetv2_scarnet.benchmark.speed import hardware

    report["hardware"] = hardware(args.device)
    with open(os.path.join(args.out, "equal_budget.json"), "w") as f:
        json.dump(report, f, indent=1)
    table = markdown(rows, args.budget_s, args.fold)
    with open(os.path.join(args.out, "equal_budget.md"), "w") as f:
        note = f" (protocol check with {' '.join(child_options)})" if child_options else ""
        f.write(f"{report['date']}, {report['hardware']}{note}\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
