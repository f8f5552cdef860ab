#!/usr/bin/env bash
# Run ON THE GPU MACHINE (device call with carry .gpu-wheels .gpu-stubs .gpu-site .gpu-data, timeout_s 600), after
# benchmarks/gpu/prepare_bundle.sh. Writes ONE archive, $OUT/gpu_results.tar.gz (gpu_results/: gpu.txt,
# budget/equal_budget.{json,md}, budget/paired_comparison.csv, per-trainer logs and evaluations, speed_gpu.json).
#
# Default: stock nnU-Net against ScarNetTrainerLiteHybrid at BUDGET_S=220 s of training each, under the protocol of
# src/nnunetv2_scarnet/benchmark/budget_schedule.py (compilation off for every trainer; the first epoch charged
# once, the second sets the pace). Measured wall time (H200, 2026-11-27): 535 s (install
# 2 s; conversion, preprocessing on 16 cores and start-ups ~57 s; training 203 + 221 s; validation and evaluation
# 20 + 30 s). Every phase runs
# under `timeout` with what is left of DEADLINE_S (default 575 s), so the archive is written before the device
# tool's 600-s limit even if a trainer runs long; equal_budget.json is rewritten after every trainer, so the
# trainers that finished come back.
#
# Knobs: PHASES ("budget", "speed" or both), BUDGET_S, TRAINERS, FOLD (default 0), DEADLINE_S; for the CPU dry run
# (benchmarks/gpu/cpu_dry_run.sh): DEVICE=cpu, INSTALL=0 (use this machine's packages), CHECK_OPTIONS (tiny
# epochs), RESULTS. Later sessions, one pair each: TRAINERS="nnUNetTrainer ScarNetTrainerLite", then
# "nnUNetTrainer ScarNetTrainer_scratch"; the speed table on its own: PHASES=speed (~4 min).
set -euo pipefail
START=$SECONDS
PHASES=${PHASES:-"budget"}
BUDGET_S=${BUDGET_S:-220}
TRAINERS=${TRAINERS:-"nnUNetTrainer ScarNetTrainerLiteHybrid"}
FOLD=${FOLD:-0}
DEADLINE_S=${DEADLINE_S:-575}
DEVICE=${DEVICE:-cuda}
INSTALL=${INSTALL:-1}
CHECK_OPTIONS=${CHECK_OPTIONS:-}
RESULTS=${RESULTS:-/tmp/gpu_results}
WORK=${WORK:-/tmp/budget}
mkdir -p "$RESULTS"
[ -z "$(ls -A "$RESULTS")" ] || { echo "$RESULTS is not empty: give RESULTS a new folder" >&2; exit 1; }
finish() { tar czf "${OUT:-.}/gpu_results.tar.gz" -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")"; }
trap finish EXIT
left() { local s=$(( DEADLINE_S - (SECONDS - START) )); echo $(( s > 1 ? s : 1 )); }  # timeout 0 = no limit
if [ "$INSTALL" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu-wheels/*.whl
  export PYTHONPATH=$PWD/.gpu-stubs:$PWD/.gpu-site:/tmp/site PATH=/tmp/site/bin:$PATH
else  # CPU dry run: this machine's packages, but the bundle's stand-ins and encoder come first
  export PYTHONPATH=$PWD/.gpu-stubs:$PWD/.gpu-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
export SCARNET_LITEMEDSAM_CHECKPOINT=$PWD/.gpu-site/litemedsam_encoder_fp16.pth
export PYTHONUNBUFFERED=1 nnUNet_compile=f  # equal_budget sets it for every trainer; the speed phase too
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi ($DEVICE)"; } \
  > "$RESULTS/gpu.txt" 2>&1
echo "install: $((SECONDS - START)) s" > "$RESULTS/phases.txt"
if [[ " $PHASES " == *" budget "* ]]; then
  # shellcheck disable=SC2086  # TRAINERS and CHECK_OPTIONS are word lists
  timeout "$(left)" python3 -m nnunetv2_scarnet.benchmark.equal_budget --cases .gpu-data/cases --work "$WORK" \
    --out "$RESULTS/budget" --budget-s "$BUDGET_S" --fold "$FOLD" --device "$DEVICE" --trainers $TRAINERS \
    $CHECK_OPTIONS 2>&1 | tee "$RESULTS/budget.log" || echo "budget phase ended with status $?" >> "$RESULTS/phases.txt"
  echo "budget: $((SECONDS - START)) s" >> "$RESULTS/phases.txt"
fi
if [[ " $PHASES " == *" speed "* ]]; then
  [ -d "$WORK/pre" ] || timeout "$(left)" python3 -m nnunetv2_scarnet.benchmark.equal_budget --cases .gpu-data/cases \
    --work "$WORK" --out "$RESULTS/budget" --prepare-only --device "$DEVICE" 2>&1 | tee "$RESULTS/prepare.log"
  nnUNet_raw=$WORK/raw nnUNet_preprocessed=$WORK/pre timeout "$(left)" python3 -m nnunetv2_scarnet.benchmark.speed \
    -d 500 --device "$DEVICE" --iterations 20 --warmup 5 --inference-repeats 3 \
    --trainers nnUNetTrainer ScarNetTrainerLite ScarNetTrainerLiteHybrid ScarNetTrainer@512 \
    --out "$RESULTS/speed_gpu.json" 2>&1 | tee "$RESULTS/speed.log" || echo "speed phase ended with status $?" \
    >> "$RESULTS/phases.txt"
  echo "speed: $((SECONDS - START)) s" >> "$RESULTS/phases.txt"
fi
