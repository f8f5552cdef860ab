#!/usr/bin/env bash
# CPU dry run of the GPU verdict, as far as a machine without a GPU allows (run HERE, before spending device time):
#   1. builds the bundle (prepare_bundle.sh: wheels installable for CPython 3.12 x86-64, size < 64 MiB), unless it
#      is there already (REBUILD=1 forces it);
#   2. checks that the device defaults (ARMS, FOLD and BUDGETS as given here, else the script's) fit its deadline
#      (run_on_device.sh with PLAN_ONLY=1);
#   3. runs benchmarks/gpu/run_on_device.sh unchanged but with DEVICE=cpu, this machine's packages (INSTALL=0), the
#      bundle's SimpleITK stand-ins, LiteMedSAM code and fp16 encoder first on the path, the arms of ARMS (default:
#      the device script's) on fold FOLD on the 62 bundled cases, with a 1-s budget and a tiny schedule (batch 2,
#      2 iterations per epoch: the first is start-up, the second uses up the budget, so one epoch per arm);
#   4. checks the archive (every arm, the run order rotated by FOLD, compile setting, timing and schedule rules,
#      the early-training line, paired statistics against the first arm) and that every
#      module-level import of this project's modules that any Python process of the run loaded is in the bundle,
#      the device's base image (Python 3.12, PyTorch, timm, numpy, scipy, scikit-image, matplotlib, pandas and what
#      they require), nnunetv2's own imports (stock nnU-Net ran there with the gpu-kit) or the standard library;
#      third-party imports beyond those are listed (optional imports, or the device image's extras).
# What it cannot check: CUDA itself, the device's exact package versions, and the real timing.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PLAN_ONLY=1 bash benchmarks/gpu/run_on_device.sh  # the device defaults fit the deadline (exits 2 if not)
[ "${REBUILD:-0}" = 0 ] && [ -f .gpu-site/litemedsam_encoder_fp16.pth ] && [ -d .gpu-data/cases ] \
  || bash benchmarks/gpu/prepare_bundle.sh
DRY=$(mktemp -d /tmp/scarnet_gpu_dry_run.XXXXXX)
mkdir -p "$DRY/hook" "$DRY/imports" "$DRY/out"
cat > "$DRY/hook/sitecustomize.py" <<'PY'
import atexit, os, sys


def _record_imports():
    with open(os.path.join(os.environ["SCARNET_IMPORT_LOG"], f"{os.getpid()}.txt"), "w") as f:
        f.write("\n".join(sorted(sys.modules)))


atexit.register(_record_imports)
PY
start=$SECONDS
SCARNET_IMPORT_LOG=$DRY/imports PYTHONPATH=$DRY/hook DEVICE=cpu INSTALL=0 OUT=$DRY/out RESULTS=$DRY/gpu_results \
  WORK=$DRY/work BUDGETS=1 DEADLINE_S=${DRY_DEADLINE_S:-6000} nnUNet_n_proc_DA=0 nnUNet_def_n_proc=1 \
  CHECK_OPTIONS="--processes 1 --batch-size 2 --iterations-per-epoch 2 --val-iterations 1 --disable-mirroring" \
  bash benchmarks/gpu/run_on_device.sh
echo "device script on this CPU: $((SECONDS - start)) s"
ARMS_USED=$(PLAN_ONLY=1 bash benchmarks/gpu/run_on_device.sh | sed -n 's/^plan: arms \(.*\) (reference.*/\1/p')
python3 - "$DRY" "$ARMS_USED" "${FOLD:-0}" <<'PY'
import ast, importlib.util, json, os, re, sys, tarfile
from importlib import metadata

dry, arms, fold = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
with tarfile.open(os.path.join(dry, "out", "gpu_results.tar.gz")) as tar:
    names = tar.getnames()
    tar.extractall(os.path.join(dry, "unpacked"))
root = os.path.join(dry, "unpacked", "gpu_results", "budget_1s")
report = json.load(open(os.path.join(root, "equal_budget.json")))
assert [r["trainer"] for r in report["rows"]] == arms, (arms, report["rows"])
assert report["run_order"] == arms[fold % len(arms):] + arms[:fold % len(arms)], report["run_order"]
assert all(r["compiled"] is False and r["epoch_iterations"] == [2] and r["startup_seconds"] > 0
           for r in report["rows"])
assert report["compile"].startswith("off") and "charged" in report["timing_rule"]
comparison = report["paired_comparison"]
assert comparison["reference_model"] == arms[0] and [c["model"] for c in comparison["comparisons"]] == arms[1:]
table = open(os.path.join(root, "equal_budget.md")).read()
assert "Compile: off" in table and f"Paired against {arms[0]}" in table and "Early training" in table
assert os.path.isfile(os.path.join(root, "paired_comparison.csv"))
print(f"archive: {len(names)} entries, arms {arms} in run order {report['run_order']}, paired statistics against "
      f"{arms[0]}, compile, timing and schedule rules, early-training line present")


def closure(roots):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" not in req:
                todo.append(re.split(r"[\s;\[(<>=!~]", req.strip(), maxsplit=1)[0])
    return seen


def top_level_imports(path):
    """Third-party candidates imported at module level (not inside functions or try blocks) by one source file."""
    names = set()
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


base = closure(["torch", "timm", "numpy", "scipy", "scikit-image", "matplotlib", "pandas"])
module_dists = metadata.packages_distributions()
bundle = set(open(".gpu-site/installed_top_level.txt").read().split()) | set(os.listdir(".gpu-stubs")) \
    | set(os.listdir(".gpu-site")) | {"nnunetv2_scarnet", "sitecustomize"}
imported = set()
for f in os.listdir(os.path.join(dry, "imports")):
    imported |= set(open(os.path.join(dry, "imports", f)).read().split())
# nnunetv2's own module-level imports: the gpu-kit trained stock nnU-Net on the device, so they are there
nnunet_needs = set()
for name in sorted(m for m in imported if m.startswith("nnunetv2.")):
    spec = importlib.util.find_spec(name)
    if spec and spec.origin and spec.origin.endswith(".py"):
        nnunet_needs |= top_level_imports(spec.origin)
provided = set(sys.stdlib_module_names) | bundle | nnunet_needs | {
    m for m, dists in module_dists.items() if {d.lower().replace("_", "-") for d in dists} & base}
# this project's module-level imports must be provided: the stand-ins of the bundle cover SimpleITK/imagecodecs only
ours = sorted(m for m in imported if m.startswith("nnunetv2_scarnet"))
missing = {}
for name in ours:
    spec = importlib.util.find_spec(name)
    if spec and spec.origin and spec.origin.endswith(".py"):
        for top in top_level_imports(spec.origin) - provided:
            missing.setdefault(top, []).append(name)
print(f"{len(imported)} modules imported by {len(os.listdir(os.path.join(dry, 'imports')))} processes, "
      f"{len(ours)} of this project")
others = sorted({m.split(".")[0] for m in imported} - provided - {m for m in missing} - {"__main__", "__mp_main__"})
others = [m for m in others if not m.startswith("_")]
print("imported by third-party packages here, neither declared on the device nor bundled (optional imports, or "
      f"part of the device image that the gpu-kit's stock nnU-Net run relied on): {others}")
if missing:
    sys.exit(f"this project imports modules the device lacks (neither bundled nor in its base image): {missing}")
print("every module-level import of this project's imported modules is bundled, in the device's base image, "
      "used by nnunetv2 itself, or in the standard library")
PY
echo "dry run folder: $DRY"
