"""Loading pretrained encoder weights (MedSAM/SAM layout, LiteMedSAM) safely and strictly.

Files are read with `torch.load(weights_only=True)`: no pickled code is ever executed. Accepted layouts:
a bare state dict, `{"model": sd}` or `{"state_dict": sd}` wrappers, `module.` prefixes (DataParallel/DDP), and
full SAM/MedSAM checkpoints whose encoder tensors carry the `image_encoder.` prefix. Position tables are resized
when the encoder runs at another resolution than the checkpoint's.
"""
import os
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_PREFIX = "image_encoder."


class PretrainedWeightsError(RuntimeError):
    """A pretrained-weights file is missing, unreadable or does not fit the encoder."""


def read_checkpoint(path: str, hint: str = "") -> Dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat state dict of tensors (wrappers and `module.` prefixes removed)."""
    if not path or not os.path.isfile(path):
        raise PretrainedWeightsError(f"pretrained weights file not found: {path!r}. {hint}".strip())
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or pickled-code files
        raise PretrainedWeightsError(
            f"cannot read pretrained weights {path!r} as a weights-only PyTorch checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). {hint}".strip()) from None
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedWeightsError(f"{path!r} does not hold a state dict of tensors. {hint}".strip())
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def select_encoder_tensors(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Keep the image-encoder tensors of a full SAM/MedSAM checkpoint; a bare encoder state dict passes through."""
    if any(k.startswith(ENCODER_PREFIX) for k in state_dict):
        return {k[len(ENCODER_PREFIX):]: v for k, v in state_dict.items() if k.startswith(ENCODER_PREFIX)}
    return dict(state_dict)


def resize_pos_embed(pos_embed: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a SAM absolute position embedding (1, H, W, C) to (1, grid[0], grid[1], C)."""
    if tuple(pos_embed.shape[1:3]) == tuple(grid):
        return pos_embed
    resized = F.interpolate(pos_embed.permute(0, 3, 1, 2).float(), size=grid, mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1).to(pos_embed.dtype)


def resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """Linear resize of a relative-position table (L, C) to (length, C)."""
    if table.shape[0] == length:
        return table
    resized = F.interpolate(table.float().t()[None], size=length, mode="linear", align_corners=False)
    return resized[0].t().to(table.dtype)


def adapt_to_module(tensors: Dict[str, torch.Tensor], module: nn.Module) -> Tuple[Dict[str, torch.Tensor], int]:
    """Resize position tables whose length differs from the module's (encoder at another resolution).

    Returns the adapted dict and how many tensors were resized. Other shape mismatches are left for the strict load
    to report.
    """
    target = module.state_dict()
    adapted, resized = {}, 0
    for key, value in tensors.items():
        want = target.get(key)
        if want is not None and want.shape != value.shape:
            if key == "pos_embed" and value.ndim == 4:
                value, resized = resize_pos_embed(value, tuple(want.shape[1:3])), resized + 1
            elif key.endswith(("rel_pos_h", "rel_pos_w")) and value.ndim == 2 and value.shape[1] == want.shape[1]:
                value, resized = resize_rel_pos(value, want.shape[0]), resized + 1
        adapted[key] = value
    return adapted, resized


def load_encoder_weights(encoder: nn.Module, path: str, hint: str = "") -> str:
    """Strictly load the encoder tensors of checkpoint `path` into `encoder.pretrained_module()`.

    Returns a one-line report; raises PretrainedWeightsError naming the file when anything does not fit.
    """
    module = encoder.pretrained_module()
    tensors = select_encoder_tensors(read_checkpoint(path, hint))
    tensors, resized = adapt_to_module(tensors, module)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise PretrainedWeightsError(
            f"{path!r} does not match the {type(encoder).__name__} encoder: {detail[:600]}. {hint}".strip()) from None
    return (f"loaded {len(tensors)} encoder tensors from {path} into {type(encoder).__name__} "
            f"({resized} position tables resized to {getattr(encoder, 'image_size', '?')} px)")
