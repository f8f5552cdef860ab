"""Strict, pickle-free loading of MedSAM/SAM-layout and LiteMedSAM encoder weights."""
import os
import pickle

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import get_rel_pos

from nnunetv2_scarnet.network.encoders import LiteMedSAMEncoder, SamViTEncoder, VIT_CONFIGS
from nnunetv2_scarnet.network.encoders.lite_medsam import bundled_checkpoint_path
from nnunetv2_scarnet.network.pretrained_weights import (
    PretrainedWeightsError, load_encoder_weights, resize_pos_embed, resize_rel_pos)

TINY = VIT_CONFIGS["tiny_vit_test"]


def sam_layout_encoder(image_size, seed=0, **config):
    """A randomly filled ImageEncoderViT, as segment-anything/MedSAM store it (positional tables non-zero)."""
    torch.manual_seed(seed)
    enc = ImageEncoderViT(img_size=image_size, patch_size=16, embed_dim=config["embed_dim"], depth=config["depth"],
                          num_heads=config["num_heads"], out_chans=config["out_chans"], use_rel_pos=True,
                          window_size=config["window_size"], global_attn_indexes=config["global_attn_indexes"])
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(0, 0.02)
    return enc


def full_sam_checkpoint(encoder):
    """A SAM/MedSAM-style state dict: encoder under `image_encoder.`, plus prompt/mask decoder tensors."""
    sd = {f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}
    sd["mask_decoder.iou_token.weight"] = torch.zeros(1, 8)
    sd["prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 8)
    return sd


@pytest.mark.parametrize("wrap", ["bare_sam", "model", "state_dict", "module_prefix", "encoder_only"])
def test_sam_layout_variants_load_strictly(tmp_path, wrap):
    source = sam_layout_encoder(64, **TINY)
    sd = full_sam_checkpoint(source)
    if wrap == "model":
        obj = {"model": sd, "epoch": torch.tensor(3)}
    elif wrap == "state_dict":
        obj = {"state_dict": sd}
    elif wrap == "module_prefix":
        obj = {"model": {f"module.{k}": v for k, v in sd.items()}}
    elif wrap == "encoder_only":
        obj = source.state_dict()
    else:
        obj = sd
    path = tmp_path / "medsam_like.pth"
    torch.save(obj, path)
    target = SamViTEncoder(image_size=64, **TINY)
    report = load_encoder_weights(target, str(path))
    assert "loaded" in report and str(path) in report
    for key, value in source.state_dict().items():
        assert torch.equal(target.vit.state_dict()[key], value), key


def test_vit_b_1024_checkpoint_resized_to_512(tmp_path):
    """A full-size MedSAM ViT-B layout at 1024 px loads into a 512 px encoder with resized position tables."""
    config = VIT_CONFIGS["medsam_vit_b"]
    source = sam_layout_encoder(1024, seed=3, **config)
    path = tmp_path / "medsam_vit_b.pth"
    torch.save(full_sam_checkpoint(source), path)
    target = SamViTEncoder(image_size=512, **config)
    report = load_encoder_weights(target, str(path))
    assert "9 position tables resized" in report  # pos_embed + (h, w) tables of the 4 global blocks
    assert target.vit.pos_embed.shape == (1, 32, 32, 768)
    torch.testing.assert_close(target.vit.pos_embed, resize_pos_embed(source.pos_embed.detach(), (32, 32)))
    assert target.vit.blocks[2].attn.rel_pos_h.shape == (63, 64)  # global block: 2 * 32 - 1
    assert target.vit.blocks[0].attn.rel_pos_h.shape == (27, 64)  # window block: unchanged 2 * 14 - 1
    assert torch.equal(target.vit.blocks[0].attn.rel_pos_h, source.blocks[0].attn.rel_pos_h)
    # the resized tables give the very relative-position terms that segment_anything's own get_rel_pos computes
    # when it meets the 1024-px table on a 32 x 32 token grid
    for block in (2, 5, 8, 11):
        for axis in ("rel_pos_h", "rel_pos_w"):
            ours = get_rel_pos(32, 32, getattr(target.vit.blocks[block].attn, axis))
            sams = get_rel_pos(32, 32, getattr(source.blocks[block].attn, axis).detach())
            torch.testing.assert_close(ours, sams, rtol=0, atol=1e-6)
    assert torch.equal(target.vit.blocks[7].mlp.lin1.weight, source.blocks[7].mlp.lin1.weight)
    with torch.no_grad():
        features = target(torch.rand(1, 3, 512, 512))
    assert [tuple(f.shape) for f in features] == [(1, 768, 32, 32)] * 4 + [(1, 256, 32, 32)]


def test_resize_helpers_keep_identity_and_endpoints():
    table = torch.randn(27, 8)
    assert resize_rel_pos(table, 27) is table
    grown = resize_rel_pos(table, 53)
    assert grown.shape == (53, 8)
    pe = torch.randn(1, 4, 4, 8)
    assert resize_pos_embed(pe, (4, 4)) is pe
    constant = torch.ones(1, 4, 4, 8)
    torch.testing.assert_close(resize_pos_embed(constant, (8, 6)), torch.ones(1, 8, 6, 8))


def test_real_litemedsam_weights_load_strictly():
    path = bundled_checkpoint_path()
    assert os.path.isfile(path)
    encoder = LiteMedSAMEncoder()
    report = load_encoder_weights(encoder, path)
    assert "loaded 298 encoder tensors" in report
    reference = torch.load(path, map_location="cpu", weights_only=True)
    loaded = encoder.tiny_vit.state_dict()
    for key in ("patch_embed.seq.0.c.weight", "layers.3.blocks.1.attn.qkv.weight", "neck.2.weight"):
        assert torch.equal(loaded[key], reference[f"image_encoder.{key}"])
    encoder.eval()
    with torch.no_grad():
        features = encoder(torch.rand(1, 3, 256, 256))
    assert [tuple(f.shape) for f in features] == [(1, 160, 64, 64), (1, 320, 64, 64), (1, 320, 64, 64),
                                                 (1, 256, 64, 64)]
    assert all(torch.isfinite(f).all() for f in features)


def test_missing_file_names_the_setting(tmp_path):
    encoder = SamViTEncoder(image_size=64, **TINY)
    with pytest.raises(PretrainedWeightsError, match="not found.*SET_ME"):
        load_encoder_weights(encoder, str(tmp_path / "nope.pth"), hint="SET_ME")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"image_encoder.x": _Exploit()}, f)
    with pytest.raises(PretrainedWeightsError, match="weights-only"):
        load_encoder_weights(SamViTEncoder(image_size=64, **TINY), str(path))


def test_wrong_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"image_encoder.something.weight": torch.zeros(3)}, path)
    with pytest.raises(PretrainedWeightsError, match="does not match the SamViTEncoder"):
        load_encoder_weights(SamViTEncoder(image_size=64, **TINY), str(path))
    torch.save({"not": "tensors"}, tmp_path / "junk.pth")
    with pytest.raises(PretrainedWeightsError, match="state dict of tensors"):
        load_encoder_weights(SamViTEncoder(image_size=64, **TINY), str(tmp_path / "junk.pth"))
