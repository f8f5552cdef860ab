"""`fetch` and `verify`: download a catalogue source, verify it, convert it, and store it in the cache.

Order of operations (nothing half-written on failure): download to `<cache>/downloads/*.part` -> checksums ->
conversion to `image_encoder.*` tensors -> `.tmp` file strictly loaded into the registry encoder the trainers build
-> manifest -> atomic rename into the cache -> the raw download is deleted.
"""
import datetime
import json
import os
import re
from typing import List, Optional, Union

import torch

from nnunetv2_scarnet.weights.cache import cache_path, manifest_path, read_manifest, weights_dir
from nnunetv2_scarnet.weights.convert import to_sam_encoder
from nnunetv2_scarnet.weights.download import Checksum, DownloadError, download, hub_metadata, verify_file
from nnunetv2_scarnet.weights.sources import WeightSource, get_source


def manual_hint(source: WeightSource) -> str:
    """The manual alternative, for errors that leave the user without the file."""
    return (f"Without internet access here: download {source.url} by another route (see {source.homepage}) and run "
            f"`scarnet weights fetch {source.name} --file PATH`, or set {source.env_var}=/path/to/"
            f"{source.env_example}")


def _remove(*paths: str) -> None:
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def expected_checksums(source: WeightSource, sha256: Optional[str], online: bool, timeout: float) -> List[Checksum]:
    """Everything the file can be verified against: pinned, given by the user, file name, hub."""
    checks = []
    if source.sha256:
        checks.append(Checksum("sha256", source.sha256, origin="pinned"))
    if sha256:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
            raise ValueError(f"--sha256 must be 64 hexadecimal digits, got {sha256!r}")
        checks.append(Checksum("sha256", sha256.lower(), origin="given (--sha256)"))
    if source.name_hash:
        algorithm, prefix = source.name_hash
        checks.append(Checksum(algorithm, prefix, prefix=True, origin=f"file-name ({source.filename})"))
    if source.hub is not None and online:
        meta = hub_metadata(source.url, timeout, manual_hint(source))
        if meta.commit and meta.commit != source.hub.revision:
            raise DownloadError(f"{source.url}: the hub resolved revision {meta.commit}, not the pinned "
                                f"{source.hub.revision}")
        checks.append(Checksum("sha256", meta.sha256, origin="hub's (X-Linked-Etag)"))
    if not any(c.algorithm == "sha256" and not c.prefix for c in checks):
        page = (f"https://huggingface.co/{source.hub.repo}/blob/{source.hub.revision}/{source.hub.filename}"
                if source.hub else source.homepage)
        raise ValueError(f"no SHA-256 is pinned for {source.name!r}; pass --sha256 with the value published on "
                         f"{page}")
    return checks


def convert_and_store(source: WeightSource, raw: str, digests: dict, origin: str) -> str:
    """Convert the verified file `raw`, check that it loads into the encoder, and move it into the cache."""
    from nnunetv2_scarnet.network.encoders import build_encoder
    from nnunetv2_scarnet.network.pretrained_weights import load_encoder_weights, read_checkpoint

    dest = cache_path(source)
    tmp, manifest_tmp = dest + ".tmp", manifest_path(source) + ".tmp"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        tensors = to_sam_encoder(read_checkpoint(raw), source.layout, raw)
        torch.save(tensors, tmp)
        report = load_encoder_weights(build_encoder(source.encoder, source.image_size), tmp).replace(tmp, dest)
        converted = verify_file(tmp, (), tmp)["sha256"]
        manifest = {"name": source.name, "source_url": origin, "source_sha256": digests["sha256"],
                    "source_md5": digests.get("md5"), "layout": source.layout, "licence": source.licence,
                    "encoder": source.encoder, "n_tensors": len(tensors), "sha256": converted,
                    "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "check": report}
        with open(manifest_tmp, "w") as f:
            json.dump(manifest, f, indent=1)
        os.replace(tmp, dest)
        os.replace(manifest_tmp, manifest_path(source))
    finally:
        _remove(tmp, manifest_tmp)
    return dest


def fetch(source: Union[str, WeightSource], file: Optional[str] = None, sha256: Optional[str] = None,
          force: bool = False, progress: bool = True, timeout: float = 30.0) -> str:
    """Put the converted encoder of `source` in the cache (downloading it unless `file` is given); returns its path."""
    source = get_source(source) if isinstance(source, str) else source
    dest = cache_path(source)
    if os.path.isfile(dest) and not force:
        return dest
    checks = expected_checksums(source, sha256, online=file is None, timeout=timeout)
    if file is not None:
        if not os.path.isfile(file):
            raise FileNotFoundError(f"--file {file!r} does not exist")
        digests = verify_file(file, checks, file)
        return convert_and_store(source, file, digests, os.path.abspath(file))
    downloads = os.path.join(weights_dir(), "downloads")
    raw = os.path.join(downloads, f"{source.name}-{source.filename}")
    try:
        digests = download(source.url, raw, checks, timeout=timeout, progress=progress, hint=manual_hint(source))
        try:
            return convert_and_store(source, raw, digests, source.url)
        finally:
            _remove(raw)
    finally:
        if os.path.isdir(downloads) and not os.listdir(downloads):  # a .part file stays for resuming
            os.rmdir(downloads)


def verify(source: Union[str, WeightSource]) -> str:
    """Re-check a cached encoder: its SHA-256 against the manifest, and a strict load into the encoder."""
    from nnunetv2_scarnet.network.encoders import build_encoder
    from nnunetv2_scarnet.network.pretrained_weights import load_encoder_weights

    source = get_source(source) if isinstance(source, str) else source
    path = cache_path(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{source.name} is not in the cache {weights_dir()}; run "
                                f"`scarnet weights fetch {source.name}`")
    manifest = read_manifest(source)
    verify_file(path, [Checksum("sha256", manifest["sha256"], origin="manifest's")], path)
    report = load_encoder_weights(build_encoder(source.encoder, source.image_size), path)
    return f"{path}: SHA-256 matches its manifest (source {manifest['source_url']}); {report}"
