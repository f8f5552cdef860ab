"""The pinned catalogue of pretrained encoder sources `scarnet weights fetch` knows.

Every value here was read from the publishers' pages (see README, "MedSAM ViT-B weights"); none is guessed. Where a
publisher gives no SHA-256 we pin what can be pinned (the hub revision) and verify against the hub's own checksum.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face model repository at a fixed commit."""
    repo: str
    revision: str  # full 40-hex commit id
    filename: str

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/{self.revision}/{self.filename}"


@dataclass(frozen=True)
class WeightSource:
    """One downloadable encoder.

    Args:
        name: what the user types (`scarnet weights fetch NAME`).
        title: one line for `scarnet weights list`.
        url: where the file is downloaded from (for hub files: the pinned-revision resolve URL).
        filename: the published file name (for manual downloads).
        licence, licence_url, homepage: the terms the weights are published under, and where they are stated.
        layout: "sam" (segment-anything checkpoint, `image_encoder.` keys) or "transformers_sam" (`SamModel`).
        env_var: environment variable that overrides the cache for trainers; it names a SAM-layout file such as
            `env_example`.
        sha256: pinned SHA-256 of the published file, when the publisher's value is known.
        name_hash: (algorithm, hex prefix) carried by the published file name (SAM's `sam_vit_b_01ec64.pth`).
        size: published size in bytes, when known.
        hub: the hub file (repo, revision), when the file lives on the Hugging Face hub.
        encoder, image_size: the registry encoder and the native resolution the converted file must load into.
    """
    name: str
    title: str
    url: str
    filename: str
    licence: str
    licence_url: str
    homepage: str
    layout: str
    env_var: str
    env_example: str
    sha256: Optional[str] = None
    name_hash: Optional[Tuple[str, str]] = None
    size: Optional[int] = None
    hub: Optional[HubFile] = None
    encoder: str = "medsam_vit_b"
    image_size: int = 1024

    @property
    def cache_filename(self) -> str:
        """Name of the converted encoder file in the cache."""
        return f"{self.name}_image_encoder.pth"


MEDSAM_HUB = HubFile(repo="wanglab/medsam-vit-base", revision="de8488bca37bb1d4fb190f612c516126d739ce3b",
                     filename="pytorch_model.bin")

#: name -> source. `medsam` is the paper's encoder; `sam` the natural-image control of the pretraining ablation.
SOURCES: Dict[str, WeightSource] = {
    "medsam": WeightSource(
        name="medsam",
        title="MedSAM ViT-B (medical images), the MedSAM authors' Hugging Face release",
        url=MEDSAM_HUB.url,
        filename="pytorch_model.bin",
        licence="Apache-2.0",
        licence_url="https://huggingface.co/wanglab/medsam-vit-base",
        homepage="https://github.com/bowang-lab/MedSAM",
        layout="transformers_sam",
        env_var="SCARNET_MEDSAM_CHECKPOINT",
        env_example="medsam_vit_b.pth",
        hub=MEDSAM_HUB,
    ),
    "sam": WeightSource(
        name="sam",
        title="SAM ViT-B (natural images), Meta's official checkpoint",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        filename="sam_vit_b_01ec64.pth",
        licence="Apache-2.0",
        licence_url="https://github.com/facebookresearch/segment-anything/blob/main/LICENSE",
        homepage="https://github.com/facebookresearch/segment-anything#model-checkpoints",
        layout="sam",
        env_var="SCARNET_SAM_CHECKPOINT",
        env_example="sam_vit_b_01ec64.pth",
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        name_hash=("md5", "01ec64"),
        size=375042383,
    ),
}


def get_source(name: str) -> WeightSource:
    """The catalogue entry called `name`; ValueError listing the known names otherwise."""
    if name not in SOURCES:
        raise ValueError(f"unknown encoder weights {name!r}; known: {', '.join(SOURCES)}")
    return SOURCES[name]
