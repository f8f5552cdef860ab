"""Key conversion to segment-anything's image-encoder layout (`image_encoder.` + ImageEncoderViT names).

transformers' `SamModel` / `SamVisionModel` store the same ViT under other names (`vision_encoder.layers.3.
layer_norm1` for SAM's `image_encoder.blocks.3.norm1`, ...). The conversion is a pure renaming of tensors: no
transformers import, no value changes. Unknown vision-encoder keys are an error, never silently dropped.
"""
import re
from typing import Dict

import torch

SAM_PREFIX = "image_encoder."
#: transformers vision-encoder name -> segment-anything ImageEncoderViT name (after the container prefix)
_RULES = (
    (r"pos_embed", r"pos_embed"),
    (r"patch_embed\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"layers\.(\d+)\.layer_norm1\.(weight|bias)", r"blocks.\1.norm1.\2"),
    (r"layers\.(\d+)\.layer_norm2\.(weight|bias)", r"blocks.\1.norm2.\2"),
    (r"layers\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)", r"blocks.\1.attn.\2.\3"),
    (r"layers\.(\d+)\.attn\.(rel_pos_h|rel_pos_w)", r"blocks.\1.attn.\2"),
    (r"layers\.(\d+)\.mlp\.(lin1|lin2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"neck\.conv1\.weight", r"neck.0.weight"),
    (r"neck\.layer_norm1\.(weight|bias)", r"neck.1.\1"),
    (r"neck\.conv2\.weight", r"neck.2.weight"),
    (r"neck\.layer_norm2\.(weight|bias)", r"neck.3.\1"),
)
_COMPILED = tuple((re.compile(pattern + r"$"), repl) for pattern, repl in _RULES)
#: prefixes under which transformers keeps the vision encoder (SamModel and SamVisionModel: `vision_encoder.`)
_VISION_PREFIXES = ("vision_encoder.", "model.vision_encoder.")


class ConversionError(ValueError):
    """A state dict cannot be converted to the SAM image-encoder layout."""


def _rename(key: str, full_key: str, label: str) -> str:
    for pattern, repl in _COMPILED:
        if pattern.match(key):
            return pattern.sub(repl, key)
    raise ConversionError(f"{label}: unexpected transformers SAM vision-encoder tensor {full_key!r}")


def transformers_sam_to_sam(state_dict: Dict[str, torch.Tensor], label: str = "state dict") -> Dict[str, torch.Tensor]:
    """Vision-encoder tensors of a transformers SamModel/SamVisionModel state dict, renamed to `image_encoder.*`.

    Prompt encoder, mask decoder and shared positional embedding tensors are left out.
    """
    out = {}
    for key, value in state_dict.items():
        prefix = next((p for p in _VISION_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            continue
        out[SAM_PREFIX + _rename(key[len(prefix):], key, label)] = value
    if not out:
        raise ConversionError(f"{label} has no transformers SAM vision-encoder tensors (keys `vision_encoder.*`)")
    return out


def sam_image_encoder(state_dict: Dict[str, torch.Tensor], label: str = "state dict") -> Dict[str, torch.Tensor]:
    """The `image_encoder.*` tensors of a segment-anything checkpoint (prompt encoder and mask decoder left out)."""
    out = {k: v for k, v in state_dict.items() if k.startswith(SAM_PREFIX)}
    if not out:
        raise ConversionError(f"{label} has no segment-anything `image_encoder.*` tensors")
    return out


def to_sam_encoder(state_dict: Dict[str, torch.Tensor], layout: str, label: str = "state dict"
                   ) -> Dict[str, torch.Tensor]:
    """Convert a checkpoint of `layout` ("sam" or "transformers_sam") to SAM image-encoder tensors."""
    if layout == "sam":
        return sam_image_encoder(state_dict, label)
    if layout == "transformers_sam":
        return transformers_sam_to_sam(state_dict, label)
    raise ValueError(f"unknown checkpoint layout {layout!r}")
