#!/usr/bin/env bash
# Run ON THE GPU MACHINE (device call with carry .gpu-wheels .gpu-stubs .gpu-site .gpu-data, timeout_s 600), after
# benchmarks/gpu/prepare_bundle.sh. Writes ONE archive, $OUT/gpu_results.tar.gz (gpu_results/: gpu.txt, phases.txt,
# budget_<B>s/equal_budget.{json,md} and paired_comparison.csv per budget, per-trainer logs and evaluations,
# speed_gpu_compile_{on,off}.json).
#
# Default: the arms of ARMS, on fold FOLD, BUDGETS=100 s of charged training each, under the rule of
# src/nnunetv2_scarnet/benchmark/budget_schedule.py (compilation off for every trainer; only the training- and
# validation-step loops charged; every trainer's own poly schedule and warm-up scaled to the budget). The run order
# is rotated by fold (equal_budget.py: fold f starts with arm number f mod n), written into the archive and above
# the tables; the paired statistics take the first arm of ARMS as reference. Every phase runs under `timeout` with
# what is left of DEADLINE_S (default 575 s), so the archive is written before the device tool's 600-s limit even if
# a trainer runs long; equal_budget.json is rewritten after every trainer, so the trainers that finished come back.
#
# Fit: before each budget B the script estimates its wall time, n_arms x (B x UNCHARGED_FACTOR + ARM_FIXED_S) (+
# PREP_S for the first), from the first H200 run (2026-11-27: install 2 s; conversion and preprocessing on 16 cores
# with the first trainer's start-up ~41 s; between two trainers' trainings 34 s of final validation with mirroring
# (14-24 s), evaluation (~6 s) and the next start-up; stock's uncharged logging, checkpoints and plots ~1.3 s per
# ~10.5-s epoch). A later budget that does not fit in the time left is skipped (said in phases.txt); a first one
# that does not fit is refused before anything runs, unless FORCE=1 (the finished arms still come back).
# Three arms x 220 s do not fit one 600-s call (~920 s); three arms x 100 s: ~516 s.
#
# Knobs: ARMS (TRAINERS also read), FOLD (default 0), BUDGETS (space-separated seconds, e.g. "100 220": the second
# only if time is left; BUDGET_S also read), PHASES ("budget", "speed" or both), SPEED_TRAINERS, SPEED_COMPILE
# ("on off"), SPEED_MIN_S (150), DEADLINE_S, FORCE, PLAN_ONLY=1
# (print the plan and the estimate, run nothing); for the CPU dry run (benchmarks/gpu/cpu_dry_run.sh): DEVICE=cpu,
# INSTALL=0 (use this machine's packages), CHECK_OPTIONS (tiny epochs), RESULTS, WORK.
set -euo pipefail
START=$SECONDS
PHASES=${PHASES:-"budget"}
BUDGETS=${BUDGETS:-${BUDGET_S:-100}}
# The verdict's three arms (issue 21 §3): stock, stock's network under ScarNet's recipe (the control that isolates
# the encoder), the hybrid; the first arm is the reference of the paired statistics. The hybrid keeps its activations
# (_noCheckpoint, as in fold 0 of 2026-11-27): on the verdict's 80-141 GB GPUs memory does not bind at batch 18, and
# the default's checkpointing would charge the hybrid a recomputation that buys nothing there (same function)
ARMS=${ARMS:-${TRAINERS:-"nnUNetTrainer ScarNetTrainer_stockNetwork ScarNetTrainerLiteHybrid_noCheckpoint"}}
FOLD=${FOLD:-0}
# the speed phase's trainers (issue 22): stock, the stock-network control, the default hybrid (checkpointed), the
# hybrid without checkpointing (the first verdict's), the partly frozen and the frozen hybrids
SPEED_TRAINERS=${SPEED_TRAINERS:-"nnUNetTrainer ScarNetTrainer_stockNetwork ScarNetTrainerLiteHybrid \
ScarNetTrainerLiteHybrid_noCheckpoint ScarNetTrainerLiteHybrid_partFrozen ScarNetTrainerLiteHybrid_frozenEncoder"}
SPEED_COMPILE=${SPEED_COMPILE:-"on off"}
SPEED_MIN_S=${SPEED_MIN_S:-150}
for c in $SPEED_COMPILE; do
  [ "$c" = on ] || [ "$c" = off ] || { echo "SPEED_COMPILE: '$c' is neither on nor off" >&2; exit 2; }
done
DEADLINE_S=${DEADLINE_S:-575}
DEVICE=${DEVICE:-cuda}
INSTALL=${INSTALL:-1}
FORCE=${FORCE:-0}
PLAN_ONLY=${PLAN_ONLY:-0}
CHECK_OPTIONS=${CHECK_OPTIONS:-}
RESULTS=${RESULTS:-/tmp/gpu_results}
WORK=${WORK:-/tmp/budget}
PREP_S=45 ARM_FIXED_S=45 UNCHARGED_FACTOR=1.12  # see "Fit" above
read -r -a ARM_LIST <<< "$ARMS"
read -r -a BUDGET_LIST <<< "$BUDGETS"
for b in "${BUDGET_LIST[@]}"; do
  [[ "$b" =~ ^[0-9]+$ ]] && [ "$b" -gt 0 ] || { echo "BUDGETS: '$b' is not a whole number of seconds" >&2; exit 2; }
done
[ "${#ARM_LIST[@]}" -ge 2 ] || { echo "ARMS: at least two trainers are needed, got '$ARMS'" >&2; exit 2; }
needed() {  # estimated wall seconds of budget $1 for all arms, $2 = 1 when it also converts and preprocesses
  awk -v b="$1" -v n="${#ARM_LIST[@]}" -v p="$2" -v f="$UNCHARGED_FACTOR" -v a="$ARM_FIXED_S" -v prep="$PREP_S" \
    'BEGIN { printf "%d", n * (b * f + a) + p * prep + 0.999 }'
}
left() { local s=$(( DEADLINE_S - (SECONDS - START) )); echo $(( s > 1 ? s : 1 )); }  # timeout 0 = no limit
first_need=$(needed "${BUDGET_LIST[0]}" 1)
echo "plan: arms ${ARM_LIST[*]} (reference ${ARM_LIST[0]}; run order rotated by fold $FOLD)," \
  "budgets ${BUDGET_LIST[*]} s, first budget ~${first_need} s of the ${DEADLINE_S}-s deadline"
[ "$PLAN_ONLY" = 1 ] && exit 0
if [[ " $PHASES " == *" budget "* ]] && [ "$first_need" -gt "$DEADLINE_S" ] && [ "$FORCE" != 1 ]; then
  echo "budget ${BUDGET_LIST[0]} s with ${#ARM_LIST[@]} arms needs ~${first_need} s," \
    "more than DEADLINE_S=$DEADLINE_S: lower BUDGETS, fewer ARMS, or FORCE=1 (finished arms still come back)" >&2
  exit 2
fi
mkdir -p "$RESULTS"
[ -z "$(ls -A "$RESULTS")" ] || { echo "$RESULTS is not empty: give RESULTS a new folder" >&2; exit 1; }
finish() { tar czf "${OUT:-.}/gpu_results.tar.gz" -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")"; }
trap finish EXIT
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
  reuse=""
  for budget in "${BUDGET_LIST[@]}"; do
    need=$(needed "$budget" $([ -z "$reuse" ] && echo 1 || echo 0))
    if [ -n "$reuse" ] && [ "$need" -gt "$(left)" ]; then
      echo "budget $budget s skipped: ~$need s needed, $(left) s left" >> "$RESULTS/phases.txt"
      continue
    fi
    # shellcheck disable=SC2086  # CHECK_OPTIONS is a word list
    timeout "$(left)" python3 -m nnunetv2_scarnet.benchmark.equal_budget --cases .gpu-data/cases --work "$WORK" \
      --out "$RESULTS/budget_${budget}s" --budget-s "$budget" --fold "$FOLD" --device "$DEVICE" \
      --trainers "${ARM_LIST[@]}" $reuse $CHECK_OPTIONS 2>&1 | tee "$RESULTS/budget_${budget}s.log" \
      || echo "budget $budget s phase ended with status $?" >> "$RESULTS/phases.txt"
    echo "budget $budget s: $((SECONDS - START)) s" >> "$RESULTS/phases.txt"
    reuse="--reuse-preprocessed"
  done
fi
if [[ " $PHASES " == *" speed "* ]]; then
  [ -d "$WORK/pre" ] || timeout "$(left)" python3 -m nnunetv2_scarnet.benchmark.equal_budget --cases .gpu-data/cases \
    --work "$WORK" --out "$RESULTS/prepare" --prepare-only --device "$DEVICE" 2>&1 | tee "$RESULTS/prepare.log"
  # issue 22's speed table: compile on (nnU-Net's default on GPUs) first, then off if at least SPEED_MIN_S are left;
  # speed.py rewrites its JSON after every trainer, so a mode cut short by the deadline keeps its finished rows
  read -r -a SPEED_LIST <<< "$SPEED_TRAINERS"
  for compile in $SPEED_COMPILE; do
    if [ "$(left)" -lt "$SPEED_MIN_S" ]; then
      echo "speed, compile $compile: skipped ($(left) s left, fewer than SPEED_MIN_S=$SPEED_MIN_S)" \
        >> "$RESULTS/phases.txt"
      continue
    fi
    nnUNet_raw=$WORK/raw nnUNet_preprocessed=$WORK/pre timeout "$(left)" python3 -m nnunetv2_scarnet.benchmark.speed \
      -d 500 --device "$DEVICE" --iterations 20 --warmup 5 --inference-repeats 3 --compile "$compile" \
      --trainers "${SPEED_LIST[@]}" --out "$RESULTS/speed_gpu_compile_${compile}.json" 2>&1 \
      | tee "$RESULTS/speed_compile_${compile}.log" || echo "speed phase (compile $compile) ended with status $?" \
      >> "$RESULTS/phases.txt"
    echo "speed, compile $compile: $((SECONDS - START)) s" >> "$RESULTS/phases.txt"
  done
fi
