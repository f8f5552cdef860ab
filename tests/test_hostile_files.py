"""Hostile files in DICOM exports (issue 20, items 7, 8, 9 and 11): entries that lost patients, hung the scan or
took gigabytes of memory, and a DICOM SEG written over a hard-linked source image.

Every attack is built here by hand: folder links and link loops with `os.symlink`, a FIFO with `os.mkfifo`, a
deflated DICOM whose deflate stream is assembled from zlib blocks (a 4 KiB-per-MiB stream of zeros that inflates
to 4 GiB), a slice with a 200 MB private element stored as a sparse file, a hard link with `os.link`. The images
are a small phantom stack written as DICOM by `dicom_helpers.write_series`. Commands that could hang run under an
alarm; commands that could take gigabytes run in a subprocess under an address-space limit, and their peak
memory is compared with the same command on the same export without the attack."""
import csv
import hashlib
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import threading
import zlib
from contextlib import contextmanager
from io import BytesIO

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, MRImageStorage, generate_uid

from dicom_helpers import write_series
from nnunetv2_scarnet.cli import main as scarnet
from nnunetv2_scarnet.report.cohort_index import build_index, studies_of

#: address-space limit of the subprocesses that meet a memory attack (a scarnet CLI process maps ~0.35 GiB)
MEMORY_LIMIT = 1536 * 2 ** 20
#: the most peak memory an attack may add to the same command on the export without it
EXTRA_MEMORY_BOUND = 64 * 2 ** 20
#: runs `scarnet` commands one after another (argv lists as JSON) and reports each exit code and the peak memory
#: so far: the first command is the baseline, and a later one's peak above it is what that command added
CHILD = ("import json, resource, sys\nfrom nnunetv2_scarnet.cli import main\nfor argv in json.loads(sys.argv[1]):\n"
         "    code = main(argv)\n"
         "    print('RESULT', code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr, flush=True)\n")


class Hang(BaseException):
    """Raised in the main thread by `deadline`; a BaseException, so no `except OSError` of the code under test
    (TimeoutError is an OSError) can swallow it and carry on to the next blocking call."""


@contextmanager
def deadline(seconds):
    """Fail (Hang) instead of hanging: a timer thread sends SIGALRM to the main thread itself (a signal to the
    process may land on another thread), which interrupts a blocking open() or read()."""
    def expire(signum, frame):
        raise Hang(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    timer = threading.Timer(seconds, signal.pthread_kill, (threading.main_thread().ident, signal.SIGALRM))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGALRM, previous)


def run_limited(*commands, timeout=300):
    """Run `scarnet` commands in one subprocess limited to MEMORY_LIMIT of address space: (stdout, stderr,
    [(exit code, peak RSS in bytes so far) per command that finished])."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps([list(c) for c in commands])],
                            capture_output=True, text=True, timeout=timeout, preexec_fn=limit, env=env)
    done = [(int(line.split()[1]), int(line.split()[2]) * 1024) for line in result.stderr.splitlines()
            if line.startswith("RESULT ")]
    return result.stdout, result.stderr, done


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A 4-slice phantom stack (1.5 x 1.5 x 8 mm): a bright ring in a darker background."""
    folder = tmp_path_factory.mktemp("phantom")
    ii, jj = np.meshgrid(np.arange(24), np.arange(24), indexing="ij")
    r = np.hypot(ii - 12, jj - 12)
    plane = np.where((r > 4) & (r < 8), 300, 60).astype(np.int16)
    path = str(folder / "phantom.nii.gz")
    nib.save(nib.Nifti1Image(np.repeat(plane[..., None], 4, axis=2), np.diag([1.5, 1.5, 8.0, 1.0])), path)
    return path


def write_study(nifti, folder, patient_id):
    """One LGE study (4 slices, TI 300 ms) of patient `patient_id`; returns its StudyInstanceUID and files."""
    study_uid = generate_uid()
    paths = write_series(nifti, str(folder), study_uid=study_uid, description="LGE PSIR SAX", inversion_time=300,
                         edit=lambda ds, k: setattr(ds, "PatientID", patient_id))
    return study_uid, paths


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def hashes(paths):
    return {str(p): hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}


# ---------------------------------------------------------------- item 7: symbolic links to study folders
def test_symlinked_study_folder_is_indexed_and_loops_are_listed_as_skipped(stack, tmp_path, capsys):
    """A study folder that is a link to a folder outside the export is indexed (it was skipped silently: one
    patient fewer); link loops (to the root's parent, to the linked folder itself), a dangling link and a hidden
    file end the walk and are listed with the reason in `<index>_skipped.csv`."""
    root, outside = tmp_path / "export", tmp_path / "archive"
    a_uid, _ = write_study(stack, root / "A" / "lge", "PA")
    b_uid, b_files = write_study(stack, outside / "B" / "lge", "PB")
    os.symlink(outside / "B", root / "B")
    os.symlink(tmp_path, root / "A" / "up")              # holds the export: would list it again, and beside it
    os.symlink(outside / "B", outside / "B" / "again")   # a loop inside the linked folder
    os.symlink(tmp_path / "nowhere", root / "dangling")
    (root / ".DS_Store").write_bytes(b"\0" * 64)

    with deadline(60):
        rows = build_index(str(root), workers=1)
    studies = {s.uid: s for s in studies_of(rows)}
    assert set(studies) == {a_uid, b_uid}
    assert studies[b_uid].files == sorted(str(root / "B" / "lge" / os.path.basename(p)) for p in b_files)

    index = str(tmp_path / "index.csv")
    with deadline(60):
        assert scarnet(["cohort", "index", str(root), index, "--workers", "1"]) == 0
    assert "2 studies" in capsys.readouterr().out
    skipped = {row["path"]: row["reason"] for row in read_csv(str(tmp_path / "index_skipped.csv"))}
    assert skipped[str(root / "A" / "up")].startswith("link to a folder holding the listed root")
    assert skipped[str(root / "B" / "again")].startswith("link to a folder already listed")
    assert skipped[str(root / "dangling")] == "broken link"
    assert skipped[str(root / ".DS_Store")] == "hidden"


# ---------------------------------------------------------------- item 8: a FIFO named *.dcm
def test_fifo_named_dcm_hangs_neither_the_index_nor_the_series_listing(stack, tmp_path, capsys):
    """A FIFO among the slices (opening it blocks until someone writes) is skipped as not a regular file, with
    the reason in the index's skipped list; `cohort index`, `dicom2nifti --list` and the conversion finish."""
    root = tmp_path / "export"
    write_study(stack, root / "P1" / "lge", "P1")
    write_study(stack, root / "P2" / "lge", "P2")
    fifo = root / "P1" / "lge" / "IM9999.dcm"
    os.mkfifo(fifo)
    index = str(tmp_path / "index.csv")
    for command in (["cohort", "index", str(root), index, "--workers", "1"],
                    ["dicom2nifti", str(root / "P1" / "lge"), "--list"],
                    ["dicom2nifti", str(root / "P1" / "lge"), str(tmp_path / "p1.nii.gz")]):
        with deadline(60):
            assert scarnet(command) == 0
    out = capsys.readouterr().out
    assert "2 studies" in out and "4 files" in out and f"skipped\t{fifo} (not a regular file (FIFO))" in out
    assert {row["path"]: row["reason"] for row in read_csv(str(tmp_path / "index_skipped.csv"))} == {
        str(fifo): "not a regular file (FIFO)"}
    assert nib.load(str(tmp_path / "p1.nii.gz")).shape == (24, 24, 4)


# ---------------------------------------------------------------- item 9: deflate bomb, 200 MB private element
def _element(group, element, vr, value: bytes) -> bytes:
    """One explicit VR little endian data element with a 4-byte length (OB, UN, ...), written by hand."""
    return struct.pack("<HH2sHI", group, element, vr, 0, len(value)) + value


def deflate_bomb(nifti, path, inflated=4 * 2 ** 30 - 2):
    """A Deflated Explicit VR Little Endian slice: a real header (patient, study, series, geometry), then Pixel
    Data (OB) of `inflated` zero bytes. The deflate stream is a header block and the same full-flush block of one
    MiB of zeros repeated (valid: a full flush byte-aligns and empties the window), ended by an empty final
    block: ~4 MB on disk for 4 GiB inflated. Returns (StudyInstanceUID, offset of the deflate stream)."""
    template = write_series(nifti, os.path.join(os.path.dirname(path), ".template"), slices=[0])[0]
    source = pydicom.dcmread(template)
    header = Dataset()
    for element in source:
        if element.tag < 0x7FE00010:
            header.add(element)
    header.PatientID, header.StudyInstanceUID = "BOMB", generate_uid()
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, header)
    head = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = [head.compress(body.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, inflated)),
              head.flush(zlib.Z_FULL_FLUSH)]
    mib = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = mib.compress(bytes(2 ** 20)) + mib.flush(zlib.Z_FULL_FLUSH)
    rest = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream += [block * (inflated // 2 ** 20), rest.compress(bytes(inflated % 2 ** 20)) + rest.flush(zlib.Z_FINISH)]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, source.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    preamble = DicomBytesIO()
    preamble.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(preamble, meta, enforce_standard=True)
    with open(path, "wb") as f:
        f.write(preamble.getvalue())
        for part in stream:
            f.write(part)
    os.remove(template)
    os.rmdir(os.path.dirname(template))
    return header.StudyInstanceUID, len(preamble.getvalue())


def test_deflate_bomb_is_bounded_and_fails_its_study(stack, tmp_path):
    """A 4 MB deflated slice inflating to 4 GiB: `cohort index` finishes under a 1.5 GiB address-space limit with
    at most 64 MB more peak memory than without it (it was a MemoryError traceback; 8.5 GB without a limit), keeps
    the file in its study and lists it as unusable; `dicom2nifti` refuses its series naming the file."""
    clean, root = tmp_path / "clean", tmp_path / "export"
    write_study(stack, clean / "P1" / "lge", "P1")
    write_study(stack, root / "P1" / "lge", "P1")
    bomb = root / "BOMB" / "IM0000.dcm"
    bomb.parent.mkdir(parents=True)
    bomb_uid, offset = deflate_bomb(stack, str(bomb))
    assert os.path.getsize(bomb) < 8 * 2 ** 20
    head = open(bomb, "rb").read()[offset:offset + 2 ** 16]
    start = zlib.decompressobj(-zlib.MAX_WBITS).decompress(head, 3 * 2 ** 20)
    assert bomb_uid.encode() in start and start.endswith(bytes(2 ** 20))  # as built: a header, then zeros

    out, err, done = run_limited(["cohort", "index", str(clean), str(tmp_path / "clean.csv"), "--workers", "1"],
                                 ["cohort", "index", str(root), str(tmp_path / "index.csv"), "--workers", "1"],
                                 ["dicom2nifti", str(bomb.parent), str(tmp_path / "bomb.nii.gz")])
    assert [code for code, _ in done] == [0, 0, 2] and "Traceback" not in err, err
    baseline = done[0][1]
    assert done[2][1] - baseline < EXTRA_MEMORY_BOUND, (done, baseline)
    assert any(line.startswith("scarnet dicom2nifti: ") and str(bomb) in line and "inflates past 256 MiB" in line
               for line in err.splitlines()), err
    assert not (tmp_path / "bomb.nii.gz").exists()
    index = read_csv(str(tmp_path / "index.csv"))
    assert {row["study_uid"] for row in index} >= {bomb_uid}
    assert [row["reason"] for row in read_csv(str(tmp_path / "index_skipped.csv")) if row["path"] == str(bomb)] == [
        "unusable, its study fails when read: deflated data set inflates past 256 MiB"]


def with_large_private_element(path, size=200 * 10 ** 6):
    """Rewrite the DICOM file `path` with a private OB element (0029,1010) of `size` zero bytes before Pixel Data,
    stored sparse (a hole on disk): the bytes before it, the element's header, a hole, the rest."""
    ds = pydicom.dcmread(path)
    before, after = Dataset(), Dataset()
    for element in ds:
        (before if element.tag < 0x00290010 else after).add(element)
    before.file_meta, before.preamble = ds.file_meta, ds.preamble
    head = BytesIO()
    before.save_as(head, enforce_file_format=True)
    tail = DicomBytesIO()
    tail.is_little_endian, tail.is_implicit_VR = True, False
    write_dataset(tail, after)
    creator = struct.pack("<HH2sH", 0x0029, 0x0010, b"LO", 12) + b"SCARNET TEST"
    with open(path, "wb") as f:
        f.write(head.getvalue() + creator + struct.pack("<HH2sHI", 0x0029, 0x1010, b"OB", 0, size))
        f.seek(size, os.SEEK_CUR)
        f.write(tail.getvalue())


def test_200_mb_private_element_is_not_read_and_its_series_is_refused(stack, tmp_path):
    """A slice with a 200 MB private element (a sparse file): the series is refused naming the file and the
    8 MiB header bound, with at most 64 MB more peak memory than the clean series (it was read whole: 200 MB per
    file and process); the cohort index keeps the file in its study and lists it as unusable."""
    clean = tmp_path / "clean" / "lge"
    write_series(stack, str(clean))
    folder = tmp_path / "export" / "P1" / "lge"
    files = write_series(stack, str(folder))
    with_large_private_element(files[1])
    assert os.path.getsize(files[1]) > 200 * 10 ** 6
    assert pydicom.dcmread(files[1], defer_size=1024)[0x00291010].VR == "OB"  # a valid file, as built

    out, err, done = run_limited(["dicom2nifti", str(clean), "--list"], ["dicom2nifti", str(folder), "--list"],
                                 ["dicom2nifti", str(folder), str(tmp_path / "p1.nii.gz")])
    assert [code for code, _ in done] == [0, 0, 2] and "Traceback" not in err, out + err
    assert done[2][1] - done[0][1] < EXTRA_MEMORY_BOUND, done
    assert f"unusable: {files[1]}: header (before Pixel Data) larger than 8 MiB" in out
    assert any(line.startswith("scarnet dicom2nifti: ") and files[1] in line and "larger than 8 MiB" in line
               for line in err.splitlines()), err
    assert not (tmp_path / "p1.nii.gz").exists()

    index = str(tmp_path / "index.csv")
    assert scarnet(["cohort", "index", str(tmp_path / "export"), index, "--workers", "1"]) == 0
    assert any(files[1] in row["files"] for row in read_csv(index))
    assert {row["path"]: row["reason"] for row in read_csv(str(tmp_path / "index_skipped.csv"))} == {
        files[1]: "unusable, its study fails when read: header (before Pixel Data) larger than 8 MiB"}


# ---------------------------------------------------------------- item 11: dicomseg and hard links
def test_dicomseg_refuses_a_hard_link_to_a_source_image_and_never_writes_through_a_link(stack, tmp_path, capsys):
    """An output path that is a hard link to a source image is refused (it was overwritten: the path differs, the
    file is the same); an output that is a hard link to an unrelated file is replaced by the SEG while the other
    name keeps its content (it was written through)."""
    folder = tmp_path / "SERIES"
    sources = write_series(stack, str(folder))
    image = nib.load(stack)
    ring = (np.asarray(image.dataobj) > 100).astype(np.uint8) * 2  # myocardium on the bright ring
    label = str(tmp_path / "pred.nii.gz")
    nib.save(nib.Nifti1Image(ring, image.affine), label)
    before = hashes(sources)

    (tmp_path / "out").mkdir()
    linked = tmp_path / "out" / "seg.dcm"
    os.link(sources[2], linked)
    assert scarnet(["dicomseg", label, str(folder), str(linked)]) == 2
    err = capsys.readouterr().err
    assert str(linked) in err and "is an input" in err
    assert hashes(sources) == before

    other = tmp_path / "notes.dcm"
    other.write_bytes(b"someone else's file")
    unrelated = tmp_path / "out" / "seg2.dcm"
    os.link(other, unrelated)
    assert scarnet(["dicomseg", label, str(folder), str(unrelated)]) == 0
    assert other.read_bytes() == b"someone else's file"
    assert pydicom.dcmread(unrelated).Modality == "SEG"
    assert hashes(sources) == before
