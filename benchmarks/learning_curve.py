"""CPU learning curves (issue 14 §6): stock nnU-Net and ScarNet trainers for the same iterations, batches and seed.

    python benchmarks/learning_curve.py --cases /work/shared/data/emidec_dev/cases --work /tmp/curve \
        --out docs/results/learning_curve [--trainers nnUNetTrainer ScarNetTrainerLiteHybrid ...] \
        [--epochs 8 --iterations 25 --val-batches 10 --batch-size 2 --seed 12345]

1. converts the EMIDEC cases with the patient-level splits of `scarnet-convert-emidec` and runs the real
   `nnUNetv2_plan_and_preprocess` (2d, stock plans) once (kept in WORK and reused while the cases are the same);
2. trains each trainer through the real `nnUNetv2_train ... -tr LearningCurve_<trainer>` on fold 0, CPU,
   nnUNet_n_proc_DA=0: same number of epochs x iterations at the same batch size, the same training batches (own
   seeded random stream) and the same fixed validation batches (see curve_trainers/learning_curve_trainers.py;
   nnU-Net finds those benchmark-only trainers through nnUNet_extTrainer, set for these runs only). A finished run
   with the same settings is reused unless --retrain;
3. writes OUT.json (raw: every step and epoch), OUT.md (table per validation point) and OUT.png (curves over
   samples seen and over training seconds).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET_ID = 500
DATASET = f"Dataset{DATASET_ID:03d}_EMIDECcurve"
CURVE_PREFIX = "LearningCurve_"
#: stock; ScarNet's recipe on stock's network; the Lite hybrid; its encoder random; the hybrid with stock's recipe
DEFAULT_ARMS = ("nnUNetTrainer", "ScarNetTrainer_stockNetwork", "ScarNetTrainerLiteHybrid",
                "ScarNetTrainerLiteHybrid_scratch", "ScarNetTrainerLiteHybrid_stockRecipe")
#: the benchmark-only curve trainers, outside the installed package: nnU-Net finds them through nnUNet_extTrainer
CURVE_TRAINERS = os.path.join(REPO, "benchmarks", "curve_trainers")


def curve_folder(work: str, trainer: str, fold: int) -> str:
    return os.path.join(work, "results", DATASET, f"{CURVE_PREFIX}{trainer}__nnUNetPlans__2d", f"fold_{fold}")


def same_settings(curve: Dict, settings: Dict) -> bool:
    """Whether a recorded run used these curve settings (epochs, iterations, validation batches, batch, seed)."""
    return curve.get("complete") is True and curve.get("settings") == settings


def batches_agree(curves: List[Dict]) -> Dict:
    """Whether every run trained on the same batches (over the steps all runs reached) and validated on the same
    batches, by fingerprint."""
    steps = min(len(c["steps"]) for c in curves)
    train = [[s["batch"] for s in c["steps"][:steps]] for c in curves]
    val = [c["validation_batches"] for c in curves]
    return {"same_training_batches": all(t == train[0] for t in train), "compared_steps": steps,
            "same_validation_batches": all(v == val[0] for v in val)}


def trainer_label(curve: Dict) -> str:
    """The base trainer's name, marked when its run stopped before the end of the schedule."""
    planned = curve["settings"]["curve_epochs"]
    if curve["complete"]:
        return curve["base_trainer"]
    return f"{curve['base_trainer']} (stopped after {len(curve['epochs'])} of {planned} epochs)"


def markdown_table(curves: List[Dict]) -> str:
    """One row per trainer and validation point: samples seen, train-step seconds, losses, pseudo-Dice per class."""
    classes = curves[0]["classes"]
    head = (["trainer", "epoch", "samples seen", "train-step s", "own loss", "nnU-Net Dice+CE loss"]
            + [f"pseudo-Dice {c}" for c in classes] + ["mean pseudo-Dice"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for curve in curves:
        for e in curve["epochs"]:
            cells = ([trainer_label(curve), str(e["epoch"] + 1), str(e["samples_seen"]),
                      f"{e['train_step_seconds']:.0f}", f"{e['loss']:.3f}", f"{e['reference_loss']:.3f}"]
                     + [f"{d:.3f}" for d in e["pseudo_dice"]] + [f"{e['mean_fg_dice']:.3f}"])
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loss_table(curves: List[Dict], block: int) -> str:
    """Mean nnU-Net Dice+CE training loss per block of `block` steps, one column per trainer (every finished step,
    so runs stopped mid-epoch count too)."""
    batch = curves[0]["batch_size"]
    blocks = max(len(c["steps"]) for c in curves) // block
    lines = ["| samples | " + " | ".join(trainer_label(c) for c in curves) + " |", "|" + "---|" * (len(curves) + 1)]
    for b in range(blocks):
        cells = []
        for c in curves:
            values = [s["reference_loss"] for s in c["steps"][b * block:(b + 1) * block]]
            cells.append(f"{sum(values) / len(values):.3f}" if len(values) == block else "")
        lines.append(f"| {b * block * batch + 1}-{(b + 1) * block * batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def running_mean(values: List[float], window: int) -> List[float]:
    """Mean of the last `window` values at each position (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(curves: List[Dict], path: str, title: str) -> None:
    """PNG: reference loss per step (running mean over one epoch) and pseudo-Dice per class over samples seen, and
    mean pseudo-Dice over train-step seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = curves[0]["classes"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for curve in curves:
        name = trainer_label(curve)
        batch = curve["batch_size"]
        samples = [(i + 1) * batch for i in range(len(curve["steps"]))]
        window = curve["settings"]["curve_iterations"]
        axes[0, 0].plot(samples, running_mean([s["reference_loss"] for s in curve["steps"]], window), label=name)
        axes[0, 1].plot(samples, running_mean([s["loss"] for s in curve["steps"]], window), label=name)
        seen = [e["samples_seen"] for e in curve["epochs"]]
        for k, ax in enumerate([axes[0, 2], axes[1, 0], axes[1, 1]][:len(classes)]):
            ax.plot(seen, [e["pseudo_dice"][k] for e in curve["epochs"]], marker="o", label=name)
        axes[1, 2].plot([e["train_step_seconds"] for e in curve["epochs"]],
                        [e["mean_fg_dice"] for e in curve["epochs"]], marker="o", label=name)
    axes[0, 0].set_title("nnU-Net Dice+CE (full res.), training")
    axes[0, 1].set_title("own training loss (differs per trainer)")
    for k, ax in enumerate([axes[0, 2], axes[1, 0], axes[1, 1]][:len(classes)]):
        ax.set_title(f"validation pseudo-Dice: {classes[k]}")
        ax.set_ylim(0, 1)
    axes[1, 2].set_title("mean validation pseudo-Dice")
    axes[1, 2].set_xlabel("train_step seconds (CPU)")
    axes[1, 2].set_ylim(0, 1)
    for ax in axes.flat:
        if ax is not axes[1, 2]:
            ax.set_xlabel("training samples seen")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(cmd: List[str], env: Dict, log_path: str) -> None:
    """Run a command with its output in `log_path`; stop with the log's tail when it fails."""
    print("$ " + " ".join(cmd), flush=True)
    with open(log_path, "w") as log:
        code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        with open(log_path) as log:
            raise SystemExit(f"{cmd[0]} failed ({code}), log {log_path}:\n{log.read()[-4000:]}")


def prepare(cases_dir: str, cases: List[str], work: str, processes: int, env: Dict, logs: str) -> None:
    """Convert and preprocess once; redone only when the case list differs from the prepared one."""
    from nnunetv2_scarnet.data.emidec import convert_emidec, list_cases

    chosen = list_cases(cases_dir, cases)
    marker = os.path.join(work, "prepared.json")
    if os.path.isfile(marker) and json.load(open(marker)) == {"cases_dir": cases_dir, "cases": chosen}:
        print(f"reusing the preprocessed {DATASET} in {work}", flush=True)
        return
    convert_emidec(cases_dir, env["nnUNet_raw"], DATASET_ID, "EMIDECcurve", cases=chosen, overwrite=True)
    shutil.rmtree(os.path.join(env["nnUNet_preprocessed"], DATASET), ignore_errors=True)
    # not nnUNet_n_proc_DA=0 here: stock nnU-Net 2.8.1's planner fails with it (README)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", str(processes)],
        dict(env, nnUNet_n_proc_DA=str(processes)), os.path.join(logs, "plan_and_preprocess.log"))
    with open(marker, "w") as f:
        json.dump({"cases_dir": cases_dir, "cases": chosen}, f)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", required=True, help="EMIDEC-style folder: <case>/image.nii.gz, label.nii.gz")
    parser.add_argument("--case-ids", nargs="+", help="only these cases (default: all)")
    parser.add_argument("--work", required=True, help="nnU-Net raw/preprocessed/results and logs go here")
    parser.add_argument("--out", required=True, help="output path without extension (.json, .md, .png)")
    parser.add_argument("--trainers", nargs="+", default=list(DEFAULT_ARMS))
    parser.add_argument("--epochs", type=int, default=10, help="validation points")
    parser.add_argument("--iterations", type=int, default=15, help="training iterations per epoch")
    parser.add_argument("--val-batches", type=int, default=5, help="fixed validation batches")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="for preprocessing only")
    parser.add_argument("--threads", type=int, help="torch CPU threads per training (default: nnU-Net's, one per "
                                                    "core); 1 on a CPU shared with other jobs")
    parser.add_argument("--retrain", action="store_true", help="train even where a finished run can be reused")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the runs in WORK as they are (a run stopped early is reported up "
                             "to its last epoch, and marked)")
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work)
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    env = dict(os.environ, nnUNet_raw=os.path.join(work, "raw"), nnUNet_preprocessed=os.path.join(work, "pre"),
               nnUNet_results=os.path.join(work, "results"))
    env.pop("nnUNet_extTrainer", None)
    if not args.report_only:
        prepare(os.path.abspath(args.cases), args.case_ids, work, args.processes, env, logs)

    settings = {"curve_epochs": args.epochs, "curve_iterations": args.iterations,
                "curve_val_batches": args.val_batches, "curve_batch_size": args.batch_size, "curve_seed": args.seed}
    train_env = dict(env, nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1", nnUNet_compile="false",
                     nnUNet_extTrainer=CURVE_TRAINERS,
                     SCARNET_CURVE_EPOCHS=str(args.epochs), SCARNET_CURVE_ITERATIONS=str(args.iterations),
                     SCARNET_CURVE_VAL_BATCHES=str(args.val_batches), SCARNET_CURVE_BATCH_SIZE=str(args.batch_size),
                     SCARNET_CURVE_SEED=str(args.seed))
    if args.threads is not None:
        train_env["SCARNET_CURVE_THREADS"] = str(args.threads)
    curves = []
    for trainer in args.trainers:
        folder = curve_folder(work, trainer, args.fold)
        path = os.path.join(folder, "learning_curve.json")
        if args.report_only:
            if not os.path.isfile(path):
                raise SystemExit(f"{path}: no run of {trainer} to report")
        elif not args.retrain and os.path.isfile(path) and same_settings(json.load(open(path)), settings):
            print(f"reusing the finished run of {trainer}: {path}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            start = time.time()
            run(["nnUNetv2_train", str(DATASET_ID), "2d", str(args.fold), "-tr", CURVE_PREFIX + trainer,
                 "-device", "cpu", "--disable_checkpointing"], train_env, os.path.join(logs, f"train_{trainer}.log"))
            print(f"{trainer}: {time.time() - start:.0f} s", flush=True)
        curve = json.load(open(path))
        if curve.get("settings") != settings or not curve["steps"]:
            raise SystemExit(f"{path}: that run used other settings ({curve.get('settings')}) or has no step")
        if not curve["complete"] and not args.report_only:
            raise SystemExit(f"{path}: the run did not finish")
        curves.append(curve)

    from nnunetv2_scarnet.benchmark.speed import hardware

    splits = json.load(open(os.path.join(env["nnUNet_preprocessed"], DATASET, "splits_final.json")))[args.fold]
    agreement = batches_agree(curves)
    if not (agreement["same_training_batches"] and agreement["same_validation_batches"]):
        print(f"WARNING: the trainers did not see the same batches: {agreement}", flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "hardware": hardware("cpu"), "dataset": DATASET, "fold": args.fold,
              "n_training_patients": len(splits["train"]), "n_validation_patients": len(splits["val"]),
              "command": "python benchmarks/learning_curve.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "settings": settings, **agreement, "curves": curves}
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=1)
    table = markdown_table(curves)
    reached = "; ".join(f"{c['base_trainer']}: {len(c['steps'])} steps, {len(c['epochs'])} validations"
                        for c in curves)
    table = (f"Runs: {reached}.\n\nValidation points:\n\n{table}\n\nnnU-Net Dice+CE training loss (full resolution), "
             f"mean per {args.iterations} steps:\n\n{loss_table(curves, args.iterations)}")
    with open(args.out + ".md", "w") as f:
        f.write(f"{report['date']}, {report['hardware']}; {DATASET} fold {args.fold} ({len(splits['train'])} "
                f"training / {len(splits['val'])} validation patients); {args.epochs} x {args.iterations} iterations "
                f"at batch {args.batch_size}, {args.val_batches} fixed validation batches; same training batches "
                f"(first {agreement['compared_steps']} steps): {agreement['same_training_batches']}, same "
                f"validation batches: "
                f"{agreement['same_validation_batches']}\n\n{table}\n")
    plot_curves(curves, args.out + ".png", f"{DATASET} fold {args.fold}, batch {args.batch_size}, CPU, "
                                           f"{report['date']}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
