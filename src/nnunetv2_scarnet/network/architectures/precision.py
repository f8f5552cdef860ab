"""Numeric precision of the pretrained encoder.

The encoder (about 90% of ScarNet's compute) runs in bfloat16 where that is both safe and fast:
- CUDA, under nnU-Net's float16 autocast, on GPUs with native bfloat16 (compute capability 8.0+): ViT attention
  logits overflow float16 more easily than convolutions, and bfloat16 has float32's range;
- on CPUs with native bfloat16 instructions (AVX512-BF16 or AMX), where it roughly halves the encoder's time: at
  inference, and in training for the frozen part of the encoder (no gradient flows through it).
Everything else (stem, projections, decoder, losses) keeps the precision the caller chose.

CPU inference precision, SCARNET_CPU_BF16 (read at each forward; only on CPUs with native bfloat16):
- "encoder" (or "1", the default): the encoder under bfloat16 autocast, the rest float32;
- "all": the whole network in bfloat16, weights included (low_precision.py), the output cast back to float32;
- "0": float32 everywhere (exact).

The hardware queries are constants for torch.compile (the CPU flags are read at import, the CUDA query is an
`assume_constant_result`): dynamo cannot trace a file read, and reading /proc/cpuinfo inside the forward broke the
graph of every compiled CPU inference forward twice.
"""
import os
from typing import Optional

import torch

CPU_BF16_ENV = "SCARNET_CPU_BF16"
#: the tolerance the default CPU precision ("encoder") is held to, against float32, per patient and structure
#: (myocardium, scar, blood pool): a Dice of the two predictions of at least `dice` where float32's structure has at
#: least `dice_min_ml` (below that a Dice counts a handful of voxels), and volumes that differ by at most
#: `volume_fraction` of float32's or `volume_ml`, whichever is larger (about 25 EMIDEC voxels: a few boundary voxels
#: of a small scar are more than 3% of it). Measured on 13 real patients with a CPU-trained hybrid: all within it
#: (docs/benchmarks.md, "CPU inference"); the suite checks it with LiteMedSAM's trained mask decoder on ScarNet's
#: encoder (tests/test_cpu_precision_agreement.py)
CPU_BF16_TOLERANCE = {"dice": 0.95, "dice_min_ml": 1.0, "volume_fraction": 0.03, "volume_ml": 0.5}
#: SCARNET_CPU_BF16 value -> CPU inference precision
CPU_PRECISIONS = {"0": "float32", "1": "encoder", "encoder": "encoder", "all": "all"}


def _cpu_flags_have_native_bf16() -> bool:
    """True when /proc/cpuinfo lists avx512_bf16 or amx_bf16 (Linux); False where it cannot be told."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


#: read once at import, outside any traced code
_CPU_NATIVE_BF16 = _cpu_flags_have_native_bf16()


def cpu_has_native_bf16() -> bool:
    """True on CPUs with native bfloat16 instructions (AVX512-BF16 or AMX; read from /proc/cpuinfo at import)."""
    return _CPU_NATIVE_BF16


@torch.compiler.assume_constant_result
def cuda_has_native_bf16(device=None) -> bool:
    """True on GPUs with bfloat16 tensor cores (compute capability 8.0+: A100, H100, RTX 30xx and later).

    `torch.cuda.is_bf16_supported()` also answers True on V100/T4, where bfloat16 is emulated and slow; those take
    nnU-Net's float16 + GradScaler path instead.
    """
    return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8


def cpu_inference_precision() -> str:
    """"float32", "encoder" or "all" (see the module docstring); "float32" on CPUs without native bfloat16."""
    value = os.environ.get(CPU_BF16_ENV, "1").strip().lower()
    if value not in CPU_PRECISIONS:
        raise ValueError(f"{CPU_BF16_ENV}={value!r}: use 0 (float32), encoder (the default) or all")
    return CPU_PRECISIONS[value] if cpu_has_native_bf16() else "float32"


def encoder_autocast_dtype(image: torch.Tensor, training: bool, frozen: bool = False) -> Optional[torch.dtype]:
    """The autocast dtype for the encoder (or for its `frozen` part), or None to run it in the caller's precision."""
    if image.is_cuda:
        if (torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.float16
                and cuda_has_native_bf16(image.device)):
            return torch.bfloat16
        return None
    if (image.device.type == "cpu" and image.dtype == torch.float32 and (frozen or not training)
            and not torch.is_autocast_enabled("cpu") and cpu_inference_precision() != "float32"):
        return torch.bfloat16
    return None
