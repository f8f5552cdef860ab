"""Training and inference speed of ScarNet trainers vs stock nnU-Net on the same preprocessed data and device.

    scarnet-benchmark -d 501 [-p nnUNetPlans] [--device cuda] [--trainers nnUNetTrainer ScarNetTrainerLite
                      ScarNetTrainer@256 ScarNetTrainer@512] [--batch-size 2] [--iterations 10] [--out results.json]

Each trainer runs in its own process (so peak memory is its own): its network is built from the plans exactly as
`nnUNetv2_train` builds it, batches come from nnU-Net's own data loader (prefetched, so augmentation time is not
counted), and `train_step` is timed after warm-up iterations (which absorb torch.compile, if enabled); the
median step time is reported (with a host sync around each step on CUDA). Inference times nnU-Net's
sliding-window prediction of one preprocessed stack (median of the repeats), with and without mirroring, scaled to
a 10-slice stack. `ScarNetTrainer@S` is the ViT-B encoder at resolution S, randomly initialised (weights do not
change speed). Ratios are to the first trainer listed (stock nnUNetTrainer by default).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

DEFAULT_TRAINERS = ["nnUNetTrainer", "ScarNetTrainerLite", "ScarNetTrainerLiteHybrid", "ScarNetTrainer@256",
                    "ScarNetTrainer@512"]


def hardware(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    model = platform.processor() or "CPU"
    if os.path.isfile("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def resolve_trainer(spec: str):
    """Trainer class for a name, or for `ScarNetTrainer@S` a scratch ViT-B variant at resolution S."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    if "@" in spec:
        from nnunetv2_scarnet.trainers import ScarNetTrainer_scratch

        base, size = spec.split("@")
        if base != "ScarNetTrainer":
            raise ValueError(f"{spec}: only ScarNetTrainer@S is supported")
        return type(f"ScarNetTrainer_scratch_S{size}", (ScarNetTrainer_scratch,), {"encoder_image_size": int(size)})
    return recursive_find_trainer_class_by_name(spec)


def make_trainer(trainer_class, dataset: str, plans_name: str, fold: int, device: str,
                 batch_size: Optional[int] = None):
    """Instantiate a trainer the way nnUNetv2_train does (2d configuration), optionally with another batch size."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import join, load_json
    from nnunetv2.paths import nnUNet_preprocessed

    plans = load_json(join(nnUNet_preprocessed, dataset, f"{plans_name}.json"))
    plans["continue_training"] = False
    if batch_size:
        plans["configurations"]["2d"]["batch_size"] = batch_size
    dataset_json = load_json(join(nnUNet_preprocessed, dataset, "dataset.json"))
    return trainer_class(plans, "2d", fold, dataset_json, torch.device(device))


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def measure_one(spec: str, dataset: str, plans_name: str, device: str, batch_size: Optional[int], iterations: int,
                warmup: int, inference_repeats: int) -> Dict:
    """Measure one trainer in this process."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    trainer = make_trainer(resolve_trainer(spec), dataset, plans_name, 0, device, batch_size)
    trainer.initialize()
    trainer.set_deep_supervision_enabled(True)
    loader, _ = trainer.get_dataloaders()
    batches = [next(loader) for _ in range(warmup + iterations)]
    trainer.network.train()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for batch in batches[:warmup]:
        trainer.train_step(batch)
    _sync(device)
    step_times = []
    for batch in batches[warmup:]:
        start = time.perf_counter()
        trainer.train_step(batch)
        _sync(device)
        step_times.append(time.perf_counter() - start)
    seconds = float(statistics.median(step_times))  # median: robust to interference from other processes
    result = {"trainer": spec, "batch_size": trainer.batch_size, "patch_size": trainer.configuration_manager.patch_size,
              "train_s_per_iteration": seconds, "train_iterations_per_s": 1 / seconds,
              "train_samples_per_s": trainer.batch_size / seconds,
              "peak_memory_gib": (torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else
                                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20),
              "peak_memory_kind": "CUDA allocated" if device == "cuda" else "process peak RSS"}

    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    case = sorted(trainer.get_tr_and_val_datasets()[1].identifiers)[0]
    data = trainer.dataset_class(trainer.preprocessed_dataset_folder, [case]).load_case(case)[0]
    image = torch.from_numpy(data[:]).float()
    for mirroring in (False, True):
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                                    perform_everything_on_device=device == "cuda", device=torch.device(device),
                                    verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager, None,
                                        trainer.dataset_json, type(trainer).__name__,
                                        trainer.inference_allowed_mirroring_axes)
        predictor.predict_sliding_window_return_logits(image)  # warm-up
        times = []
        for _ in range(inference_repeats):
            _sync(device)
            start = time.perf_counter()
            predictor.predict_sliding_window_return_logits(image)
            _sync(device)
            times.append(time.perf_counter() - start)
        per_stack = float(statistics.median(times))
        key = "mirroring" if mirroring else "no_mirroring"
        result[f"predict_s_per_10_slices_{key}"] = per_stack * 10 / image.shape[1]
    result["predict_case"] = case
    result["predict_case_slices"] = int(image.shape[1])
    return result


def add_ratios(rows: List[Dict]) -> None:
    """Ratios to the first row (the reference, stock nnU-Net): step time and prediction time."""
    ref = rows[0]
    for row in rows:
        row["ratio_step_time"] = row["train_s_per_iteration"] / ref["train_s_per_iteration"]
        row["ratio_samples_per_s"] = row["train_samples_per_s"] / ref["train_samples_per_s"]
        for key in ("no_mirroring", "mirroring"):
            row[f"ratio_predict_{key}"] = (row[f"predict_s_per_10_slices_{key}"]
                                           / ref[f"predict_s_per_10_slices_{key}"])


def markdown_table(rows: List[Dict]) -> str:
    lines = ["| trainer | batch | s/iter | samples/s | step vs stock | peak GiB | predict s/10 slices (no mirror / mirror)"
             " | predict vs stock (no mirror / mirror) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['trainer']} | {r['batch_size']} | {r['train_s_per_iteration']:.3f} | "
                     f"{r['train_samples_per_s']:.1f} | {r['ratio_step_time']:.2f}x | {r['peak_memory_gib']:.2f} | "
                     f"{r['predict_s_per_10_slices_no_mirroring']:.2f} / {r['predict_s_per_10_slices_mirroring']:.2f}"
                     f" | {r['ratio_predict_no_mirroring']:.2f}x / {r['ratio_predict_mirroring']:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (preprocessed, 2d)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--trainers", nargs="+", default=DEFAULT_TRAINERS)
    parser.add_argument("--batch-size", type=int, help="override the plans' batch size for every trainer")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--inference-repeats", type=int, default=2)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process: one trainer
    args = parser.parse_args(argv)

    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    dataset = maybe_convert_to_dataset_name(args.dataset)
    if args.one:
        print("RESULT " + json.dumps(measure_one(args.trainers[0], dataset, args.plans, args.device, args.batch_size,
                                                 args.iterations, args.warmup, args.inference_repeats)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as results:
        env = dict(os.environ, nnUNet_results=results)
        for spec in args.trainers:
            cmd = [sys.executable, "-m", "nnunetv2_scarnet.benchmark.speed", "--one", "-d", dataset, "-p", args.plans,
                   "--device", args.device, "--trainers", spec, "--iterations", str(args.iterations),
                   "--warmup", str(args.warmup), "--inference-repeats", str(args.inference_repeats)]
            if args.batch_size:
                cmd += ["--batch-size", str(args.batch_size)]
            print(f"measuring {spec} ...", flush=True)
            done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                raise SystemExit(f"benchmark of {spec} failed:\n{done.stdout[-3000:]}")
            rows.append(json.loads(lines[-1][len("RESULT "):]))
    add_ratios(rows)
    report = {"date": time.strftime("%Y-%m-%d"), "hardware": hardware(args.device), "device": args.device,
              "dataset": dataset, "plans": args.plans, "iterations": args.iterations, "warmup": args.warmup,
              "compile": os.environ.get("nnUNet_compile", "default"), "rows": rows}
    print(f"\n{report['hardware']}, {dataset}, plans {args.plans}\n")
    print(markdown_table(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
