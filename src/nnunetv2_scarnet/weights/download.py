"""Resumable, verified HTTP downloads with the standard library.

A download streams into `<dest>.part`, continuing an interrupted one with an HTTP Range request, hashes what it
writes, and renames the file to `dest` only when every expected checksum matches. A mismatch deletes the partial
file; an unreachable host raises one line naming the URL.
"""
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

USER_AGENT = "nnunetv2-scarnet-weights/1"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be downloaded (host unreachable, HTTP error, truncated transfer)."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected checksum."""


@dataclass(frozen=True)
class Checksum:
    """An expected digest: the full hex value, or only its leading characters (`prefix=True`)."""
    algorithm: str  # a hashlib name: "sha256", "md5"
    value: str
    prefix: bool = False
    origin: str = "pinned"  # where the value comes from, for the error message

    def matches(self, digest: str) -> bool:
        value = self.value.lower()
        return digest.startswith(value) if self.prefix else digest == value


@dataclass(frozen=True)
class HubMetadata:
    """What the Hugging Face hub reports for a resolve URL before redirecting to its storage."""
    sha256: str
    size: Optional[int]
    commit: Optional[str]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _open(request: urllib.request.Request, timeout: float, follow_redirects: bool = True):
    opener = (urllib.request.build_opener() if follow_redirects
              else urllib.request.build_opener(_NoRedirect()))
    return opener.open(request, timeout=timeout)


def _unreachable(url: str, exc: Exception, hint: str) -> DownloadError:
    reason = getattr(exc, "reason", None) or exc
    return DownloadError(f"cannot download {url}: {reason}. {hint}".strip())


def hub_metadata(url: str, timeout: float = 30.0, hint: str = "") -> HubMetadata:
    """HEAD a hub resolve URL without following its redirect and read the file's SHA-256 (LFS ETag) and commit."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT,
                                                                  "Accept-Encoding": "identity"})
    try:
        with _open(request, timeout, follow_redirects=False) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:
        if exc.code >= 400:
            raise DownloadError(f"{url}: the hub answered HTTP {exc.code} {exc.reason}. {hint}".strip()) from None
        headers = exc.headers  # the 30x redirect to the storage backend carries the metadata
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(url, exc, hint) from None
    etag = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").strip()
    etag = etag[2:] if etag.startswith("W/") else etag
    etag = etag.strip('"').lower()
    if not re.fullmatch(r"[0-9a-f]{64}", etag):
        raise DownloadError(f"{url}: the hub reported no SHA-256 for the file (ETag {etag!r}), so it cannot be "
                            f"verified. {hint}".strip())
    size = headers.get("X-Linked-Size") or headers.get("Content-Length")
    return HubMetadata(sha256=etag, size=int(size) if size and size.isdigit() else None,
                       commit=headers.get("X-Repo-Commit"))


def _hash_existing(path: str, hashes: Dict[str, "hashlib._Hash"]) -> int:
    done = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            for h in hashes.values():
                h.update(block)
            done += len(block)
    return done


def _progress(total: Optional[int], initial: int, label: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                disable=None if enabled else True, leave=True)


def verify_file(path: str, checksums: Sequence[Checksum], label: str) -> Dict[str, str]:
    """Hash `path` and compare with `checksums`; ChecksumError naming `label` on a mismatch."""
    hashes = {c.algorithm: hashlib.new(c.algorithm) for c in checksums}
    hashes.setdefault("sha256", hashlib.sha256())
    _hash_existing(path, hashes)
    digests = {name: h.hexdigest() for name, h in hashes.items()}
    _check(digests, checksums, label)
    return digests


def _check(digests: Dict[str, str], checksums: Sequence[Checksum], label: str) -> None:
    for c in checksums:
        if not c.matches(digests[c.algorithm]):
            what = "prefix " if c.prefix else ""
            raise ChecksumError(f"{label}: {c.algorithm} {digests[c.algorithm]} does not match the {c.origin} "
                                f"{c.algorithm} {what}{c.value}")


def download(url: str, dest: str, checksums: Sequence[Checksum] = (), timeout: float = 30.0,
             progress: bool = True, hint: str = "") -> Dict[str, str]:
    """Download `url` to `dest` (resuming `dest`.part), verify it, rename it into place; returns its hex digests.

    `hint` is appended to errors that leave the user without the file (e.g. how to download it by hand).
    """
    part = dest + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    hashes = {c.algorithm: hashlib.new(c.algorithm) for c in checksums}
    hashes.setdefault("sha256", hashlib.sha256())
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _open(request, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the partial file is already complete
            response = None
        else:
            raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}. {hint}".strip()) from None
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(url, exc, hint) from None

    if response is None:
        _hash_existing(part, hashes)
    else:
        with response:
            resumed = have and response.status == 206
            if resumed:
                start = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
                if not start or int(start.group(1)) != have:
                    raise DownloadError(f"cannot resume {url}: the server sent range "
                                        f"{response.headers.get('Content-Range')!r} for a request from byte {have}")
                _hash_existing(part, hashes)
            else:
                have = 0  # the server ignored the Range header: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            received = have
            try:
                with open(part, "ab" if resumed else "wb") as f, \
                        _progress(total, have, os.path.basename(dest), progress) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        f.write(block)
                        for h in hashes.values():
                            h.update(block)
                        received += len(block)
                        bar.update(len(block))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise DownloadError(f"download of {url} interrupted after {received} bytes ({exc}); run the same "
                                    f"command again to resume from {part}") from None
            if total is not None and received != total:
                raise DownloadError(f"download of {url} stopped after {received} of {total} bytes; run the same "
                                    f"command again to resume from {part}")
    digests = {name: h.hexdigest() for name, h in hashes.items()}
    try:
        _check(digests, checksums, url)
    except ChecksumError as exc:
        os.remove(part)
        raise ChecksumError(f"{exc}; the download was deleted, nothing entered the cache") from None
    os.replace(part, dest)
    return digests
