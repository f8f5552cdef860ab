"""Bounded reading of a DICOM header (everything before Pixel Data), for files nobody has vetted.

- The file is opened without blocking (`O_NONBLOCK`) and must be a regular file (`fstat`), so a FIFO or device
  swapped in after the listing cannot hang the reader.
- A Part 10 file is required (`DICM` after the 128-byte preamble), as `pydicom.dcmread` without `force`.
- At most `HEADER_MAX_BYTES` of header are parsed: an element whose value would end past that bound stops the
  read, and no more than that many bytes are ever read (elements skipped by `tags` are not read). Such a file
  (e.g. a 200 MB private element) is unusable: `Header.problem` says so, and its identifiers are read once more
  with only the tags needed to place it (so its series, when it has one, is refused, never silently a slice short).
- Deflated Explicit VR Little Endian (PS3.5 A.5): pydicom inflates the whole data set in memory (a 4 MB file can
  inflate to 4 GB). Here the deflate stream is inflated piece by piece: the first `HEADER_MAX_BYTES` are kept and
  parsed, the rest only counted, and a file inflating past `INFLATED_MAX_BYTES` is unusable (`Header.problem`).
  Pixel data read later (`dicom_pixels`, `seg_sources`) comes from files that passed this check.
- Files that are not DICOM, not regular or not readable raise `UnreadableFile` with the reason.
"""
import struct
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_partial
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from nnunetv2_scarnet.ingestion.dicom_slices import DicomSeriesError
from nnunetv2_scarnet.ingestion.safe_files import NotRegularFile, open_regular

#: the most header bytes (before Pixel Data) parsed per file; real LGE headers are a few kB (classic) to a few MB
#: (Enhanced MR with per-frame functional groups)
HEADER_MAX_BYTES = 8 * 2 ** 20
#: the most a deflated data set may inflate to (header and pixels): 2.5 times a 512x512x200-frame 16-bit stack
INFLATED_MAX_BYTES = 256 * 2 ** 20
#: what places an unusable file: its kind, series and study (read with `specific_tags`, nothing else is read)
IDENTITY_TAGS = ("SOPClassUID", "SOPInstanceUID", "Modality", "PatientID", "PatientName", "StudyInstanceUID",
                 "StudyDate", "SeriesInstanceUID", "SeriesDescription", "SegmentSequence")
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
ERRORS = (InvalidDicomError, ValueError, EOFError, KeyError, TypeError, IndexError, AttributeError, OverflowError,
          struct.error, zlib.error)


class UnreadableFile(Exception):
    """A file that cannot be read as DICOM at all; the message is the reason (without the path)."""


class _PastBound(Exception):
    pass


@dataclass
class Header:
    dataset: Dataset
    problem: str = ""   # non-empty: DICOM whose header or inflated size is past the bounds, unusable (why)


class _BoundedReader:
    """A read-only view of a binary file that refuses to read more than `limit` bytes in all."""

    def __init__(self, f, limit: int):
        self.f, self.limit, self.count = f, limit, 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or self.count + size > self.limit:  # pydicom reads a deflated data set whole:
            raise _PastBound()                                         # never through this reader
        data = self.f.read(size)
        self.count += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()


def _guard(fp, end: Optional[int], state: dict):
    """A pydicom `stop_when`: stop at Pixel Data and, when `end` is given, before a value that would end past it
    (then state['past'] is set). pydicom asks before skipping an element that `specific_tags` leaves out."""
    def stop(tag, vr, length) -> bool:
        if tag in PIXEL_TAGS:
            return True
        if end is not None and length != 0xFFFFFFFF and fp.tell() + length > end:
            state["past"] = True
            return True
        return False
    return stop


def _open_regular(path: str):
    try:
        return open_regular(path)
    except NotRegularFile as exc:
        raise UnreadableFile(str(exc)) from None
    except OSError as exc:
        raise UnreadableFile(f"cannot open ({exc.strerror or exc})") from None


def _file_meta(f) -> FileMetaDataset:
    """The File Meta Information of a Part 10 file (explicit VR little endian, PS3.10 7.1); `f` is left at the
    start of the data set."""
    if f.read(132)[128:] != b"DICM":
        raise UnreadableFile("not DICOM (no DICM prefix)")
    meta = read_dataset(_BoundedReader(f, HEADER_MAX_BYTES), False, True,
                        stop_when=lambda tag, vr, length: tag.group != 2)
    return FileMetaDataset(meta)


def _inflated_prefix(f, keep: int):
    """(the first `keep` bytes of the deflate stream from the current position, whether it inflates past
    INFLATED_MAX_BYTES); never holds more than `keep` plus one 1 MiB piece."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    kept, total = bytearray(), 0
    while not inflater.eof:
        data = f.read(2 ** 20)
        if not data:
            break
        while data and not inflater.eof:
            out = inflater.decompress(data, 2 ** 20)
            total += len(out)
            if len(kept) < keep:
                kept += out[:keep - len(kept)]
            if total > INFLATED_MAX_BYTES:
                return bytes(kept), True
            data = inflater.unconsumed_tail
    return bytes(kept), False


def _parse(f, tags: Optional[Sequence[str]], deflated: Optional[bytes], meta, bounded: bool = True) -> Header:
    """One parse of the header of the open file `f`, or of `deflated`, its inflated data set. `bounded`: stop at
    a value ending past the bound (else only the reader's limit on bytes read holds, and values that `tags`
    leaves out are skipped whatever their length)."""
    specific = [Tag(t) for t in tags] if tags else None
    state = {"past": False}
    if deflated is not None:
        fp = DicomBytesIO(deflated)
        stop = _guard(fp, len(deflated) if bounded else None, state)
        ds = read_dataset(fp, False, True, stop_when=stop, specific_tags=specific)
        ds.file_meta = meta
    else:
        f.seek(0)
        fp = _BoundedReader(f, HEADER_MAX_BYTES)
        try:
            ds = read_partial(fp, stop_when=_guard(fp, HEADER_MAX_BYTES if bounded else None, state),
                              specific_tags=specific)
        except _PastBound:
            state["past"], ds = True, None
    if not state["past"]:
        return Header(ds)
    if deflated is not None and len(deflated) < HEADER_MAX_BYTES:
        return Header(ds, "deflated data set ends inside its header (truncated)")
    return Header(ds, f"header (before Pixel Data) larger than {HEADER_MAX_BYTES // 2 ** 20} MiB")


def read_header(path: str, tags: Optional[Sequence[str]] = None) -> Header:
    """The header of `path` (only `tags` when given, as pydicom's `specific_tags`), read within the bounds of the
    module doc. Raises UnreadableFile (not regular, not DICOM, unreadable); a DICOM file past the bounds is
    returned with `problem` set and a data set holding at least its `IDENTITY_TAGS` when those can be read."""
    try:
        with _open_regular(path) as f:
            meta = _file_meta(f)
            deflated, past = None, False
            if str(meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian:
                deflated, past = _inflated_prefix(f, HEADER_MAX_BYTES)
            header = _parse(f, tags, deflated, meta)
            if header.problem:  # stopped by the bound: read what places the file, skipping the rest
                wanted = list(dict.fromkeys([*IDENTITY_TAGS, *(tags or ())]))
                header.dataset = _parse(f, wanted, deflated, meta, bounded=False).dataset
            if past:
                header.problem = f"deflated data set inflates past {INFLATED_MAX_BYTES // 2 ** 20} MiB"
        if header.dataset is None:
            raise UnreadableFile(f"DICOM whose identifiers lie past the {HEADER_MAX_BYTES // 2 ** 20} MiB bound")
        return header
    except _PastBound:
        raise UnreadableFile(f"DICOM file meta larger than {HEADER_MAX_BYTES // 2 ** 20} MiB") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read ({exc.strerror or exc})") from None
    except ERRORS as exc:
        raise UnreadableFile(f"not DICOM or a damaged header ({exc})") from None


def header_of(path: str):
    """The bounded header (`read_header`) of a file that must be DICOM: DicomSeriesError naming it otherwise."""
    try:
        return read_header(path).dataset
    except UnreadableFile as exc:
        raise DicomSeriesError(f"{path}: {exc}") from None
