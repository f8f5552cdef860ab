"""Speed ratios to stock nnU-Net on a shared, loaded machine: every trainer in one process, measured in turns.

    python -m nnunetv2_scarnet.benchmark.interleaved -d 500 --trainers nnUNetTrainer ScarNetTrainerLiteHybrid \\
        ScarNetTrainerLiteHybrid%all [--batch-size 2] [--repeats 5] [--threads 1] [--no-mirroring] [--out x.json]

`scarnet-benchmark` measures trainers one after another, each in its own process: right for peak memory and on an
idle machine, misleading when other processes come and go. Here every trainer is built in one process (as
`nnUNetv2_train` builds it) and each repeat times one training step of every trainer in turn (the same batch from
stock nnU-Net's loader for all), then one inference forward of one patch (eval mode, batch 1, no autograd: one
sliding-window tile), then nnU-Net's sliding-window prediction of one validation stack without (and with)
mirroring. A ratio to the reference (the first trainer, stock nnU-Net) is taken within each repeat, and the
reported ratio is the median over repeats, of wall-clock and of process CPU time. FLOPs per training image and per
patch come from flops.py, activation memory from activation_memory.py. `TRAINER%P` measures TRAINER with
SCARNET_CPU_BF16=P (CPU inference precision: 0, encoder or all); `TRAINER%int8` with the encoder's Linear layers
dynamically quantised to int8 and everything else float32 (int8_encoder.py; forward and prediction only).
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple


def _timed(fn: Callable[[], object]) -> Tuple[float, float]:
    """Wall-clock and process CPU seconds of fn() (CPU time counts only while this process computes: far less
    sensitive to other processes on a shared machine than wall-clock time)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


@contextlib.contextmanager
def cpu_precision(spec: str):
    """`TRAINER%P` runs TRAINER's calls with SCARNET_CPU_BF16=P (0, encoder or all); a plain name changes nothing."""
    from nnunetv2_scarnet.network.architectures.precision import CPU_BF16_ENV

    if "%" not in spec:
        yield
        return
    previous = os.environ.get(CPU_BF16_ENV)
    os.environ[CPU_BF16_ENV] = spec.split("%", 1)[1]
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CPU_BF16_ENV)
        else:
            os.environ[CPU_BF16_ENV] = previous


def median_ratio(times: Dict[str, List[float]], name: str, reference: str) -> float:
    """Median over repeats of time(name) / time(reference) in the same repeat."""
    return float(statistics.median(a / b for a, b in zip(times[name], times[reference])))


def measure(specs: List[str], dataset: str, plans: str, batch_size, repeats: int, train: bool, predict: bool,
            mirroring: bool) -> Dict:
    import torch

    from nnunetv2_scarnet.benchmark.activation_memory import saved_activation_bytes
    from nnunetv2_scarnet.benchmark.flops import network_flops
    from nnunetv2_scarnet.benchmark.speed import (make_predictor, make_trainer, plain_network, prediction_case,
                                                  resolve_trainer)

    from nnunetv2_scarnet.benchmark.int8_encoder import INT8, Int8Encoders

    if train and any(spec.endswith("%" + INT8) for spec in specs):
        raise ValueError(f"TRAINER%{INT8} measures inference only: add --no-train")
    trainers, built, counts = {}, {}, {}
    for spec in specs:  # TRAINER%P specs of one TRAINER share its trainer (one network in memory)
        name = spec.split("%")[0]
        if name not in built:
            built[name] = make_trainer(resolve_trainer(name), dataset, plans, 0, "cpu", batch_size)
            built[name].initialize()
            built[name].set_deep_supervision_enabled(True)
            network = plain_network(built[name])
            counts[name] = network_flops(network, built[name].configuration_manager.patch_size,
                                         built[name].num_input_channels)
            if train:
                counts[name]["activation_gib_per_image"] = saved_activation_bytes(
                    network, built[name].configuration_manager.patch_size, built[name].num_input_channels) / 2 ** 30
        trainers[spec] = built[name]
    reference = trainers[specs[0]]
    patch = reference.configuration_manager.patch_size
    rows = {spec: {"trainer": spec, "batch_size": t.batch_size, "patch_size": patch, **counts[spec.split("%")[0]]}
            for spec, t in trainers.items()}
    kinds = (["train_step"] if train else []) + (["forward"] if predict else []) + (
        ["predict_no_mirroring"] if predict else []) + (["predict_mirroring"] if predict and mirroring else [])
    times = {f"{kind}{clock}": {spec: [] for spec in specs} for kind in kinds for clock in ("", "_cpu")}

    int8_encoders = Int8Encoders()

    def mode(spec: str):
        """The precision `spec` names, for the duration of a block."""
        if spec.endswith("%" + INT8):
            return int8_encoders.swapped_in(plain_network(trainers[spec]))
        return cpu_precision(spec)

    def record(kind: str, spec: str, fn: Callable[[], object]) -> None:
        with mode(spec):
            wall, cpu = _timed(fn)
        times[kind][spec].append(wall)
        times[kind + "_cpu"][spec].append(cpu)

    if train:
        loader, _ = reference.get_dataloaders()
        batches = [next(loader) for _ in range(repeats + 1)]
        for spec, trainer in trainers.items():
            trainer.network.train()
            trainer.train_step(batches[0])  # warm-up
        for batch in batches[1:]:
            for spec, trainer in trainers.items():
                record("train_step", spec, lambda: trainer.train_step(batch))
    if predict:
        image, case = prediction_case(reference)
        patch_input = torch.randn(1, reference.num_input_channels, *patch)
        predictors = {}
        for spec, trainer in trainers.items():
            predictors[spec] = {m: make_predictor(trainer, "cpu", m) for m in ([False, True] if mirroring else
                                                                              [False])}
            with torch.no_grad(), mode(spec):
                trainer.network(patch_input)  # warm-up
                predictors[spec][False].predict_sliding_window_return_logits(image)
        for _ in range(repeats):
            for spec, trainer in trainers.items():
                with torch.no_grad():
                    record("forward", spec, lambda: trainer.network(patch_input))
                record("predict_no_mirroring", spec,
                       lambda: predictors[spec][False].predict_sliding_window_return_logits(image))
                if mirroring:
                    record("predict_mirroring", spec,
                           lambda: predictors[spec][True].predict_sliding_window_return_logits(image))
        for row in rows.values():
            row.update(predict_case=case, predict_case_slices=int(image.shape[1]))
    for spec, row in rows.items():
        for kind in times:
            row[f"{kind}_s"] = float(statistics.median(times[kind][spec]))
            row[f"ratio_{kind}"] = median_ratio(times[kind], spec, specs[0])
            row[f"{kind}_times_s"] = times[kind][spec]
        ref = rows[specs[0]]
        row["ratio_train_flops"] = row["train_step_gflops"] / ref["train_step_gflops"]
        row["ratio_forward_flops"] = row["forward_gflops"] / ref["forward_gflops"]
    return {"rows": [rows[s] for s in specs], "repeats": repeats}


def _ratios(row: Dict, kind: str) -> str:
    """'wall / CPU' ratios of one measured kind, or '-'."""
    if f"ratio_{kind}" not in row:
        return "-"
    return f"{row[f'ratio_{kind}']:.2f}x / {row[f'ratio_{kind}_cpu']:.2f}x"


def markdown_table(rows: List[Dict]) -> str:
    lines = ["| trainer | train GFLOPs/image (fwd+bwd) | FLOPs vs stock | step vs stock (wall / CPU) | "
             "activations GiB/image | forward GFLOPs/patch | FLOPs vs stock | forward vs stock (wall / CPU) | "
             "predict vs stock, no mirroring (wall / CPU) | with mirroring (wall / CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        activations = f"{r['activation_gib_per_image']:.3f}" if "activation_gib_per_image" in r else "-"
        lines.append(f"| {r['trainer']} | {r['train_step_gflops']:.1f} | {r['ratio_train_flops']:.2f}x | "
                     f"{_ratios(r, 'train_step')} | {activations} | {r['forward_gflops']:.1f} | "
                     f"{r['ratio_forward_flops']:.2f}x | {_ratios(r, 'forward')} | "
                     f"{_ratios(r, 'predict_no_mirroring')} | {_ratios(r, 'predict_mirroring')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("-p", "--plans", default="nnUNetPlans")
    parser.add_argument("--trainers", nargs="+", required=True, help="the first one is the reference")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-predict", action="store_true")
    parser.add_argument("--no-mirroring", action="store_true", help="skip the prediction with mirroring")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as results:
        os.environ["nnUNet_results"] = results  # before nnunetv2.paths is imported: trainers write logs there
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

        from nnunetv2_scarnet.benchmark.speed import hardware

        dataset = maybe_convert_to_dataset_name(args.dataset)
        report = measure(args.trainers, dataset, args.plans, args.batch_size, args.repeats, not args.no_train,
                         not args.no_predict, not args.no_mirroring)
    report.update(date=time.strftime("%Y-%m-%d"), hardware=hardware("cpu"), dataset=dataset, plans=args.plans,
                  load_average_1_5_15min={"start": load_before, "end": list(os.getloadavg())})
    print(f"\n{report['hardware']}, {dataset}, load average {report['load_average_1_5_15min']}\n")
    print(markdown_table(report["rows"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
