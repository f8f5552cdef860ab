"""The files of a DICOM folder or export tree, listed so that no entry can hang, loop or vanish silently.

- Only regular files are listed (`os.stat` after following links, `S_ISREG`): a FIFO, socket or device named
  `*.dcm` is skipped (opening a FIFO blocks until someone writes to it).
- Symbolic links to folders are followed wherever they lead (a research cohort is often a folder of links into an
  archive), each real folder once, identified by (st_dev, st_ino): a link loop ends, and a folder reached twice
  (directly and through a link, or through two links) is listed once. Real folders are walked first and links
  afterwards, so a folder reachable both ways keeps its real path. A link to a folder holding the walked root
  (`..`, `/`) is never followed: it would list the root again and everything beside it.
- A file reached twice (a link or a hard link to a file already listed) is listed once.
- Everything left out is returned with the reason (`Skipped`); nothing is dropped without one.

Files that a run reads back (a part's index, a study folder's files under checksum) are opened with
`open_regular`, and hashed with `sha256_file` (the one SHA-256 file hasher of the package): a FIFO or device
swapped in for a file is refused instead of blocking the reader.
"""
import csv
import hashlib
import os
import stat
from collections import Counter
from dataclasses import dataclass
from typing import List, Tuple

#: what `S_IFMT` says a non-regular, non-folder entry is
KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device"}
SKIPPED_FIELDS = ["path", "reason"]


class NotRegularFile(OSError):
    """A path that names a FIFO, socket, device or folder where a file is expected; the message says which."""


def open_regular(path: str):
    """`path` opened for binary reading without blocking on a FIFO or device (`O_NONBLOCK`), refused
    (NotRegularFile) unless it is a regular file; other OSErrors as `os.open` raises them."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "folder" if stat.S_ISDIR(mode) else KINDS.get(stat.S_IFMT(mode), "special file")
        raise NotRegularFile(f"not a regular file ({kind})")
    return os.fdopen(fd, "rb")


def sha256_file(path: str, block: int = 1 << 20) -> str:
    """SHA-256 (hex) of the regular file `path` (`open_regular`), read in blocks."""
    digest = hashlib.sha256()
    with open_regular(path) as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


def _contains(folder: str, path: str) -> bool:
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def list_files(root: str, skip_hidden: bool = False) -> Tuple[List[str], List[Skipped]]:
    """(regular files under `root`, entries skipped with the reason), in sorted walk order (module doc).
    `skip_hidden`: names starting with '.' are skipped (and listed as skipped) instead of read."""
    files: List[str] = []
    skipped: List[Skipped] = []
    top = os.stat(root)
    folders = {(top.st_dev, top.st_ino): root}
    seen_files = {}
    links: List[Tuple[str, os.stat_result]] = []

    def walk(start: str) -> None:
        stack = [start]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                skipped.append(Skipped(folder, f"cannot list the folder ({exc.strerror or exc})"))
                continue
            subfolders = []
            for entry in entries:
                if skip_hidden and entry.name.startswith("."):
                    skipped.append(Skipped(entry.path, "hidden"))
                    continue
                try:
                    st = entry.stat()  # follows links
                except OSError as exc:
                    reason = "broken link" if entry.is_symlink() else f"cannot stat ({exc.strerror or exc})"
                    skipped.append(Skipped(entry.path, reason))
                    continue
                key = (st.st_dev, st.st_ino)
                if stat.S_ISDIR(st.st_mode):
                    if entry.is_symlink():
                        links.append((entry.path, st))
                    elif key in folders:  # a bind mount of a folder already listed
                        skipped.append(Skipped(entry.path, f"same folder as {folders[key]}"))
                    else:
                        folders[key] = entry.path
                        subfolders.append(entry.path)
                elif stat.S_ISREG(st.st_mode):
                    if key in seen_files:
                        skipped.append(Skipped(entry.path, f"same file as {seen_files[key]}"))
                    else:
                        seen_files[key] = entry.path
                        files.append(entry.path)
                else:
                    kind = KINDS.get(stat.S_IFMT(st.st_mode), "special file")
                    skipped.append(Skipped(entry.path, f"not a regular file ({kind})"))
            stack.extend(reversed(subfolders))

    walk(root)
    while links:  # breadth-first over the links found; a followed folder may hold more links
        link, st = links.pop(0)
        key = (st.st_dev, st.st_ino)
        if key in folders:
            skipped.append(Skipped(link, f"link to a folder already listed ({folders[key]})"))
        elif _contains(link, root):
            skipped.append(Skipped(link, "link to a folder holding the listed root (a loop)"))
        else:
            folders[key] = link
            walk(link)
    return files, skipped


def write_skipped(entries: List[Skipped], path: str) -> None:
    """The skipped entries as CSV (`SKIPPED_FIELDS`), written atomically (a temporary file renamed)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(SKIPPED_FIELDS)
        writer.writerows([e.path, e.reason] for e in entries)
    os.replace(tmp, path)


def read_skipped(path: str) -> List[Skipped]:
    """What `write_skipped` wrote; ValueError naming the file when it is something else."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != SKIPPED_FIELDS:
                raise ValueError(f"{path}: not a list of skipped files (columns {reader.fieldnames})")
            return [Skipped(row["path"], row["reason"]) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read the list of skipped files ({exc})") from None


def summary(entries: List[Skipped]) -> str:
    """How many entries were skipped for each kind of reason (paths and details left out), most frequent first."""
    counts = Counter(e.reason.split(" (")[0].split(" as ")[0].split(":")[0] for e in entries)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
