"""Named encoder configurations: the only place that knows which encoder a name stands for."""
from typing import Dict

from torch import nn

from nnunetv2_scarnet.network.encoders.lite_medsam import LiteMedSAMEncoder
from nnunetv2_scarnet.network.encoders.sam_vit import SamViTEncoder

#: ViT geometries in segment-anything's layout. "tiny_vit_test" is a deliberately small, randomly initialised
#: encoder for CPU smoke tests; it has no pretrained weights.
VIT_CONFIGS: Dict[str, dict] = {
    "medsam_vit_b": dict(embed_dim=768, depth=12, num_heads=12, window_size=14, global_attn_indexes=(2, 5, 8, 11),
                         tap_blocks=(2, 5, 8, 11), out_chans=256),
    "tiny_vit_test": dict(embed_dim=32, depth=4, num_heads=2, window_size=2, global_attn_indexes=(1, 3),
                          tap_blocks=(1, 3), out_chans=32),
}
LITE_ENCODERS = ("litemedsam",)
ENCODER_NAMES = tuple(VIT_CONFIGS) + LITE_ENCODERS


def build_encoder(name: str, image_size: int) -> nn.Module:
    """Build the encoder called `name` at input resolution `image_size` (ignored by fixed-size encoders)."""
    if name in VIT_CONFIGS:
        return SamViTEncoder(image_size=image_size, **VIT_CONFIGS[name])
    if name == "litemedsam":
        if image_size != LiteMedSAMEncoder.image_size:
            raise ValueError(f"the LiteMedSAM encoder only runs at {LiteMedSAMEncoder.image_size}x"
                             f"{LiteMedSAMEncoder.image_size}, got encoder_image_size={image_size}")
        return LiteMedSAMEncoder()
    raise ValueError(f"unknown ScarNet encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")
