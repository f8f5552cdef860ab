#!/usr/bin/env bash
# Run ON THE GPU MACHINE (device call with carry .gpu-wheels .gpu-stubs .gpu-site .gpu-data), after
# benchmarks/gpu/prepare_bundle.sh. Writes ONE archive, $OUT/gpu_results.tar.gz, with the speed benchmark and
# the equal-budget accuracy tables. PHASES selects "speed", "budget" or both; BUDGET_S is the training budget per
# trainer; TRAINERS the trainers compared. The default, stock nnU-Net against ScarNetTrainerLiteHybrid at 220 s
# each (stock nnU-Net needs ~3.5 H100-minutes before it learns any scar), fits one 600-s device command:
# ~60 s install and preprocessing, 2 x (220 s + ~40 s start-up and validation). Next sessions: TRAINERS=
# "nnUNetTrainer ScarNetTrainerLite", then "nnUNetTrainer ScarNetTrainer_scratch" (recommended order), and the
# speed phase on its own (PHASES=speed, ~4 min).
set -euo pipefail
PHASES=${PHASES:-"budget"}
BUDGET_S=${BUDGET_S:-220}
TRAINERS=${TRAINERS:-"nnUNetTrainer ScarNetTrainerLiteHybrid"}
RESULTS=/tmp/gpu_results
mkdir -p "$RESULTS"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu-wheels/*.whl
export PYTHONPATH=$PWD/.gpu-stubs:$PWD/.gpu-site:/tmp/site PATH=/tmp/site/bin:$PATH
export SCARNET_LITEMEDSAM_CHECKPOINT=$PWD/.gpu-site/litemedsam_encoder_fp16.pth
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RESULTS/gpu.txt" || true
finish() { tar czf "${OUT:-.}/gpu_results.tar.gz" -C /tmp gpu_results; }
trap finish EXIT
if [[ " $PHASES " == *" budget "* ]]; then
  python3 -m nnunetv2_scarnet.benchmark.equal_budget --cases .gpu-data/cases --work /tmp/budget --out "$RESULTS/budget" \
    --budget-s "$BUDGET_S" --fold 0 --device cuda --trainers $TRAINERS 2>&1 | tee "$RESULTS/budget.log"
fi
if [[ " $PHASES " == *" speed "* ]]; then
  [ -d /tmp/budget/pre ] || python3 -m nnunetv2_scarnet.benchmark.equal_budget --cases .gpu-data/cases \
    --work /tmp/budget --out "$RESULTS/budget" --prepare-only --device cuda 2>&1 | tee "$RESULTS/prepare.log"
  nnUNet_raw=/tmp/budget/raw nnUNet_preprocessed=/tmp/budget/pre python3 -m nnunetv2_scarnet.benchmark.speed \
    -d 500 --device cuda --iterations 20 --warmup 5 --inference-repeats 3 \
    --trainers nnUNetTrainer ScarNetTrainerLite ScarNetTrainerLiteHybrid ScarNetTrainer@512 \
    --out "$RESULTS/speed_gpu.json" 2>&1 | tee "$RESULTS/speed.log"
fi
