"""Output paths: checked before anything is written, and runs never mixed in one folder.

Re-run policy for output folders (docs/reliability.md):
- a folder that scarnet writes carries the marker file `.scarnet-output`;
- a new or empty folder is used (and marked);
- a non-empty folder WITH the marker (an earlier scarnet run) is emptied just before the new run writes its first
  file, so stale per-case files of the earlier run never mix with the new ones;
- a non-empty folder WITHOUT the marker is refused: it may hold someone's files;
- a path that is a file, or that cannot be created or written, is refused.
`check_output_dir` does all refusals without touching anything (the CLI calls it before reading inputs);
`prepare_output_dir` is called by the writers after their inputs were read and checked.

A writer that may run twice at once into one folder (`scarnet report`) takes `lock_output_dir` first: an exclusive
`flock` on the folder's `.scarnet-lock` file, held until the run ends (the kernel releases it when the process
dies, so a killed run leaves no stale lock). A second run into a locked folder is refused.
"""
import errno
import os
import shutil
from typing import Iterable

#: marker file of a folder written by scarnet
MARKER = ".scarnet-output"
#: lock file of a folder a scarnet run is writing (`lock_output_dir`)
LOCK = ".scarnet-lock"


class OutputPathError(ValueError):
    """An output path cannot be used; the message names it."""


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _check_creatable(path: str, what: str) -> None:
    """`path` does not exist yet: its nearest existing ancestor must be a writable folder."""
    ancestor = _nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(ancestor):
        raise OutputPathError(f"{path}: cannot create the {what}, {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: cannot create the {what}, {ancestor} is not writable")


def check_output_dir(path: str) -> None:
    """Refuse an output folder that is a file, not writable, or non-empty without the scarnet marker."""
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{path}: output folder is not writable")
        entries = os.listdir(path)
        if entries and MARKER not in entries and set(entries) != {LOCK}:
            raise OutputPathError(f"{path}: output folder is not empty and was not written by scarnet; "
                                  f"choose a new or empty folder")
    elif os.path.lexists(path):
        raise OutputPathError(f"{path}: output folder is a file")
    else:
        _check_creatable(path, "output folder")


def prepare_output_dir(path: str, keep: Iterable[str] = ()) -> str:
    """`check_output_dir`, then create the folder, or empty the one an earlier scarnet run wrote (except the
    entries named in `keep`, e.g. the lock file); mark it."""
    check_output_dir(path)
    if os.path.isdir(path):
        for name in os.listdir(path):
            if name in set(keep):
                continue
            entry = os.path.join(path, name)
            if os.path.isdir(entry) and not os.path.islink(entry):
                shutil.rmtree(entry)
            else:
                os.remove(entry)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, MARKER), "w") as f:
        f.write("written by nnunetv2-scarnet; a new scarnet run into this folder replaces its content\n")
    return path


def discard_if_unused(path: str) -> None:
    """Remove an output folder that holds nothing but the marker (a run that failed after preparing it)."""
    if os.path.isdir(path) and set(os.listdir(path)) <= {MARKER}:
        shutil.rmtree(path)


def check_not_inside(path: str, out_dir: str) -> None:
    """An input inside the output folder would be deleted when a re-run replaces that folder's content."""
    inner, outer = os.path.realpath(path), os.path.realpath(out_dir)
    if inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep):
        raise ValueError(f"{path}: input lies inside the output folder {out_dir}, whose content a run replaces; "
                         f"choose another output folder")


def check_apart(path: str, out_dir: str) -> None:
    """An input and the output folder must not hold one another: an input inside the output folder would be
    deleted by a re-run; an output folder inside an input folder would be read back as input (and a DICOM SEG
    written into its own source series)."""
    check_not_inside(path, out_dir)
    inner, outer = os.path.realpath(out_dir), os.path.realpath(path)
    if os.path.isdir(outer) and inner.startswith(outer.rstrip(os.sep) + os.sep):
        raise ValueError(f"{out_dir}: output folder lies inside the input folder {path} (outputs inside the export "
                         f"root would be read back as input); choose an output folder outside every input")


class OutputDirLock:
    """Exclusive lock on an output folder (`LOCK` file, `fcntl.flock`); `release()` or use as a context manager."""

    def __init__(self, path: str):
        import fcntl

        check_output_dir(path)
        os.makedirs(path, exist_ok=True)
        lock_path = os.path.join(path, LOCK)
        self.file = open(lock_path, "a+")
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self.file.seek(0)
            holder = self.file.read().strip()
            self.file.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputPathError(f"{path}: cannot lock the output folder ({exc})") from None
            raise OutputPathError(f"{path}: output folder is in use by another scarnet run"
                                  f"{f' ({holder})' if holder else ''}; wait for it to finish or choose another "
                                  f"output folder") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()}\n")
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            self.file.close()  # closing the file releases the flock; the file stays (removing it would race)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def check_output_file(path: str, suffixes=None) -> None:
    """Refuse an output file path that is a folder, has none of `suffixes`, or cannot be created."""
    if os.path.isdir(path):
        raise OutputPathError(f"{path}: is a folder; give an output file name")
    if suffixes and not path.endswith(tuple(suffixes)):
        raise OutputPathError(f"{path}: output file name must end with {' or '.join(suffixes)}")
    if os.path.lexists(path):
        if not os.access(path, os.W_OK):
            raise OutputPathError(f"{path}: output file is not writable")
    else:
        _check_creatable(path, "output file")


def check_input_dir(path: str, what: str = "input folder") -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not a folder (no such {what})")
    if not os.path.isdir(path):
        raise ValueError(f"{path}: not a folder (the {what} is a file)")
