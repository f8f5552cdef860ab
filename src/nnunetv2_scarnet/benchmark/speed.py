"""Training and inference speed of ScarNet trainers vs stock nnU-Net on the same preprocessed data and device.

    scarnet-benchmark -d 501 [-p nnUNetPlans] [--device cuda] [--trainers nnUNetTrainer ScarNetTrainerLite
                      ScarNetTrainer@256 ScarNetTrainer@512] [--batch-size 2] [--iterations 10] [--rounds 3]
                      [--compile on|off] [--no-predict] [--out results.json]

Each trainer runs in its own process (so peak memory is its own): its network is built from the plans exactly as
`nnUNetv2_train` builds it, batches come from nnU-Net's own data loader (prefetched, so augmentation time is not
counted), and `train_step` is timed after warm-up iterations (which absorb torch.compile, if enabled); the
median step time is reported (with a host sync around each step on CUDA). Peak memory: CUDA memory allocated
(torch.cuda.max_memory_allocated) over the training steps, or on a CPU the process's peak resident set. Arithmetic:
FLOPs of one training step (forward and backward, per image times the batch) and of one inference forward per
patch, counted by FlopCounterMode with the exact count for grouped convolutions (flops.py). Inference times
nnU-Net's sliding-window prediction of one preprocessed stack (median of the repeats), with and without mirroring,
scaled to a 10-slice stack. `ScarNetTrainer@S` is the ViT-B encoder at resolution S, randomly initialised (weights
do not change speed). Ratios are to the first trainer listed (stock nnUNetTrainer by default); with `--rounds N`
the whole list is measured N times, interleaved, and each ratio is the median of the N same-round ratios (robust to
load from other processes on a shared machine). `--compile on|off` sets nnU-Net's `nnUNet_compile` for every
trainer (nnU-Net itself never compiles on a CPU).
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
    from nnunetv2_scarnet.network.architectures.precision import cpu_has_native_bf16

    bf16 = "native bfloat16" if cpu_has_native_bf16() else "no native bfloat16"
    return f"{model}, {torch.get_num_threads()} threads, {bf16} (torch {torch.__version__})"


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


def plain_network(trainer):
    """The trainer's network without the torch.compile / DDP wrappers."""
    from nnunetv2_scarnet.trainers.scarnet_trainer import unwrap

    return unwrap(trainer.network)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def measure_one(spec: str, dataset: str, plans_name: str, device: str, batch_size: Optional[int], iterations: int,
                warmup: int, inference_repeats: int, predict: bool = True) -> Dict:
    """Measure one trainer in this process."""
    import torch

    from nnunetv2_scarnet.benchmark.activation_memory import saved_activation_bytes
    from nnunetv2_scarnet.benchmark.flops import network_flops

    trainer = make_trainer(resolve_trainer(spec), dataset, plans_name, 0, device, batch_size)
    trainer.initialize()
    trainer.set_deep_supervision_enabled(True)
    patch = trainer.configuration_manager.patch_size
    flops = network_flops(plain_network(trainer), patch, trainer.num_input_channels)
    activations = saved_activation_bytes(plain_network(trainer), patch, trainer.num_input_channels)
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
    result = {"trainer": spec, "batch_size": trainer.batch_size, "patch_size": patch,
              "compiled": bool(trainer._do_i_compile()),
              "train_gflops_per_step": flops["train_step_gflops"] * trainer.batch_size,
              "train_gflops_per_image": flops["train_step_gflops"], "forward_gflops_per_patch": flops["forward_gflops"],
              "activation_gib_per_step": activations * trainer.batch_size / 2 ** 30,
              "train_s_per_iteration": seconds, "train_iterations_per_s": 1 / seconds,
              "train_samples_per_s": trainer.batch_size / seconds, "train_step_times_s": step_times,
              "peak_memory_gib": (torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else
                                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20),
              "peak_memory_kind": "CUDA allocated" if device == "cuda" else "process peak RSS"}
    if predict:
        result.update(measure_prediction(trainer, device, inference_repeats))
    return result


def prediction_case(trainer):
    """The first validation stack of fold 0 (preprocessed) as a float tensor, and its identifier."""
    import torch

    case = sorted(trainer.get_tr_and_val_datasets()[1].identifiers)[0]
    data = trainer.dataset_class(trainer.preprocessed_dataset_folder, [case]).load_case(case)[0]
    return torch.from_numpy(data[:]).float(), case


def make_predictor(trainer, device: str, mirroring: bool):
    """nnU-Net's predictor on the trainer's network (eval mode, no deep supervision), as nnUNetv2_predict runs it."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                                perform_everything_on_device=device == "cuda", device=torch.device(device),
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, type(trainer).__name__,
                                    trainer.inference_allowed_mirroring_axes)
    return predictor


def measure_prediction(trainer, device: str, inference_repeats: int) -> Dict:
    """nnU-Net's sliding-window prediction of the first validation stack, without and with mirroring."""
    image, case = prediction_case(trainer)
    result = {}
    for mirroring in (False, True):
        predictor = make_predictor(trainer, device, mirroring)
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


#: measured quantity -> name of its ratio to the reference trainer
RATIO_KEYS = {"train_s_per_iteration": "ratio_step_time", "train_samples_per_s": "ratio_samples_per_s",
              "train_gflops_per_step": "ratio_train_gflops", "forward_gflops_per_patch": "ratio_forward_gflops",
              "peak_memory_gib": "ratio_peak_memory", "activation_gib_per_step": "ratio_activation_memory",
              "predict_s_per_10_slices_no_mirroring": "ratio_predict_no_mirroring",
              "predict_s_per_10_slices_mirroring": "ratio_predict_mirroring"}


def add_ratios(rows: List[Dict]) -> None:
    """Ratios to the first row (the reference, stock nnU-Net) of every measured quantity in RATIO_KEYS."""
    ref = rows[0]
    for row in rows:
        for key, ratio in RATIO_KEYS.items():
            if key in row and key in ref:
                row[ratio] = row[key] / ref[key]


def combine_rounds(rounds: List[List[Dict]]) -> List[Dict]:
    """One row per trainer from several interleaved rounds (each round: every trainer once, reference first):
    the median of each measured quantity, and of each same-round ratio to the reference."""
    for rows in rounds:
        add_ratios(rows)
    combined = []
    for index, first in enumerate(rounds[0]):
        row = dict(first)
        per_round = [rows[index] for rows in rounds]
        for key in list(RATIO_KEYS) + list(RATIO_KEYS.values()):
            if key in first:
                row[key] = float(statistics.median(r[key] for r in per_round))
        row["rounds"] = len(rounds)
        row["ratio_step_time_per_round"] = [r["ratio_step_time"] for r in per_round]
        combined.append(row)
    return combined


def _cell(row: Dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else "-"


def markdown_table(rows: List[Dict]) -> str:
    lines = ["| trainer | batch | GFLOPs/step (fwd+bwd) | FLOPs vs stock | s/iter | step vs stock | peak GiB | "
             "peak vs stock | activations GiB (float32) | forward GFLOPs/patch | predict s/10 slices (no mirror / "
             "mirror) | predict vs stock (no mirror / mirror) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        predict = (f"{_cell(r, 'predict_s_per_10_slices_no_mirroring', '.2f')} / "
                   f"{_cell(r, 'predict_s_per_10_slices_mirroring', '.2f')}")
        predict_ratio = (f"{_cell(r, 'ratio_predict_no_mirroring', '.2f')}x / "
                         f"{_cell(r, 'ratio_predict_mirroring', '.2f')}x")
        lines.append(f"| {r['trainer']} | {r['batch_size']} | {r['train_gflops_per_step']:.0f} | "
                     f"{r['ratio_train_gflops']:.2f}x | {r['train_s_per_iteration']:.3f} | "
                     f"{r['ratio_step_time']:.2f}x | {r['peak_memory_gib']:.2f} | {r['ratio_peak_memory']:.2f}x | "
                     f"{r['activation_gib_per_step']:.2f} | {r['forward_gflops_per_patch']:.1f} | {predict} | "
                     f"{predict_ratio} |")
    return "\n".join(lines)


def run_child(spec: str, dataset: str, args, env: Dict) -> Dict:
    """Measure one trainer in a fresh process (its own peak memory) and return its result row."""
    cmd = [sys.executable, "-m", "nnunetv2_scarnet.benchmark.speed", "--one", "-d", dataset, "-p", args.plans,
           "--device", args.device, "--trainers", spec, "--iterations", str(args.iterations),
           "--warmup", str(args.warmup), "--inference-repeats", str(args.inference_repeats)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.no_predict:
        cmd.append("--no-predict")
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"benchmark of {spec} failed:\n{done.stdout[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


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
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the whole trainer list this many times, interleaved (medians of same-round "
                             "ratios)")
    parser.add_argument("--compile", choices=["inherit", "on", "off"], default="inherit",
                        help="nnUNet_compile for every trainer (inherit: as in this environment)")
    parser.add_argument("--no-predict", action="store_true", help="measure training (and FLOPs) only")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process: one trainer
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.iterations < 1:
        parser.error("--rounds and --iterations must be at least 1")

    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    dataset = maybe_convert_to_dataset_name(args.dataset)
    if args.one:
        print("RESULT " + json.dumps(measure_one(args.trainers[0], dataset, args.plans, args.device, args.batch_size,
                                                 args.iterations, args.warmup, args.inference_repeats,
                                                 predict=not args.no_predict)))
        return 0
    rounds = []
    load_before = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    env = dict(os.environ)
    if args.compile != "inherit":
        env["nnUNet_compile"] = "t" if args.compile == "on" else "f"

    def report_of(rows: List[Dict], complete: bool) -> Dict:
        return {"date": time.strftime("%Y-%m-%d"), "hardware": hardware(args.device), "device": args.device,
                "dataset": dataset, "plans": args.plans, "iterations": args.iterations, "warmup": args.warmup,
                "rounds": args.rounds, "compile": env.get("nnUNet_compile", "default"), "complete": complete,
                "load_average_1_5_15min": {"start": load_before,
                                           "end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
                "rows": rows}

    def write(report: Dict) -> None:
        """The results so far (after every trainer, so that a run cut short by a time limit keeps them)."""
        if args.out:
            with open(args.out + ".part", "w") as f:
                json.dump(report, f, indent=1)
            os.replace(args.out + ".part", args.out)

    with tempfile.TemporaryDirectory() as results:
        env["nnUNet_results"] = results
        for index in range(args.rounds):
            rows = []
            for spec in args.trainers:
                print(f"measuring {spec} (round {index + 1} of {args.rounds}) ...", flush=True)
                rows.append(run_child(spec, dataset, args, env))
                so_far = rounds or [rows]  # the complete rounds, else this one so far (copied: ratios are added)
                write(report_of(combine_rounds([[dict(r) for r in rnd] for rnd in so_far]), complete=False))
            rounds.append(rows)
    report = report_of(combine_rounds(rounds), complete=True)
    print(f"\n{report['hardware']}, {dataset}, plans {args.plans}, load average {report['load_average_1_5_15min']}\n")
    print(markdown_table(report["rows"]))
    write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
