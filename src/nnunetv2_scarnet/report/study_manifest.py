"""Checksums of a cohort study's folder, written by the part when the study completes and verified on resume and
by `scarnet cohort merge` (issue 20).

`.scarnet-manifest.json` lists the SHA-256 of every file of the study folder; it is written into the private
`.partial` folder after the report files and before the `.scarnet-report` marker, so it is renamed into place
with the study in one step. `verified_report` checks a study folder of a part: a real folder inside the part (no
link out of it), the marker, exactly the files the manifest lists (no link, FIFO or other special file among
them: opening a FIFO would wait forever) with those checksums; it returns the study's report.json. An edit of
any file without rewriting the manifest is found; the manifest is not signed, so someone who rewrites it after the
files is not (docs/reliability.md).
"""
import json
import os
import stat
from typing import Dict

from nnunetv2_scarnet.ingestion.safe_files import KINDS, open_regular, sha256_file
from nnunetv2_scarnet.report.pipeline import MARKER

MANIFEST = ".scarnet-manifest.json"


class StudyFolderError(ValueError):
    """A study folder of a part is not what its part wrote; the message names the path and what differs."""


def _sha256(path: str) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:  # replaced by a FIFO or removed since it was listed
        raise StudyFolderError(f"{path}: cannot be checked ({exc.strerror or exc})") from None


def _files(folder: str) -> Dict[str, str]:
    """{relative path: absolute path} of every entry below `folder` but the marker and the manifest; a link
    (to a file or a folder) or a special file (FIFO, socket, device) is refused."""
    out = {}
    for parent, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = os.path.join(parent, name)
            if os.path.islink(path):
                raise StudyFolderError(f"{path}: a link in a study folder (the part never writes one)")
        for name in names:
            mode = os.lstat(os.path.join(parent, name)).st_mode
            if not stat.S_ISREG(mode):
                raise StudyFolderError(f"{os.path.join(parent, name)}: not a regular file "
                                       f"({KINDS.get(stat.S_IFMT(mode), 'special file')}) in a study folder (the part "
                                       f"never writes one)")
            rel = os.path.relpath(os.path.join(parent, name), folder)
            if rel not in (MARKER, MANIFEST):
                out[rel] = os.path.join(parent, name)
    return out


def write_manifest(folder: str) -> None:
    """Write the manifest of the (not yet final) study folder `folder`."""
    manifest = {rel: _sha256(path) for rel, path in sorted(_files(folder).items())}
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump({"sha256": manifest}, f, indent=1)


def verified_report(part: str, name: str) -> Dict:
    """The report.json of study `name` of part folder `part`, after the checks of the module doc."""
    folder = os.path.join(part, name)
    if os.path.islink(folder) or os.path.dirname(os.path.realpath(folder)) != os.path.realpath(part):
        raise StudyFolderError(f"{folder}: leads outside the part folder (to {os.path.realpath(folder)}); a part's "
                               f"study folders are its own")
    if not os.path.isfile(os.path.join(folder, MARKER)):
        raise StudyFolderError(f"{folder}: not a complete study folder (no {MARKER})")
    path = os.path.join(folder, MANIFEST)
    try:
        with open_regular(path) as f:
            listed = json.loads(f.read().decode("utf-8"))["sha256"]
        assert isinstance(listed, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise StudyFolderError(f"{path}: no readable checksum manifest ({type(exc).__name__}: {exc})") from None
    present = _files(folder)
    extra, missing = sorted(set(present) - set(listed)), sorted(set(listed) - set(present))
    if extra or missing:
        raise StudyFolderError(f"{folder}: files differ from its manifest {MANIFEST} ("
                               + "; ".join(x for x in (f"not listed: {', '.join(extra)}" if extra else "",
                                                       f"missing: {', '.join(missing)}" if missing else "") if x)
                               + ")")
    for rel, file in sorted(present.items()):
        if _sha256(file) != listed[rel]:
            raise StudyFolderError(f"{file}: changed after the part wrote it (SHA-256 differs from its manifest "
                                   f"{MANIFEST})")
    report = os.path.join(folder, f"{name}_report.json")
    if f"{name}_report.json" not in present:
        raise StudyFolderError(f"{report}: missing")
    try:
        with open_regular(report) as f:
            return json.loads(f.read().decode("utf-8"))
    except OSError as exc:
        raise StudyFolderError(f"{report}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise StudyFolderError(f"{report}: not valid JSON ({exc})") from None
