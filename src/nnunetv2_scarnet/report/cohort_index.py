"""Study index of a DICOM export tree for `scarnet report` at cohort scale.

Every regular file under the root (any depth, non-DICOM files mixed in; `ingestion/safe_files.py`: folder links
followed once, loops ended) is opened once, headers only (`specific_tags`, within the bounds of
`ingestion/dicom_header.py`), in a bounded process pool. Image files are grouped by
StudyInstanceUID, then SeriesInstanceUID; in each study the LGE series is chosen with the report's own heuristic
(`inputs.score_series`, the only scorer; a study holding one series uses it, a tie is recorded and the study fails
with the listing). Each study gets an output name that is unique by construction (`inputs.unique_names` on
`inputs._safe_name(PatientID or PatientName + StudyDate)`), so patient names can never walk out of OUT_DIR and
two studies of one patient never share a folder.

The index is one CSV row per series (`INDEX_FIELDS`), written atomically, with what the scan left out (and why) in
`<index>_skipped.csv` beside it (`IndexRows.skipped`); a rerun and every part read it instead of walking the tree
again, so they all see the same studies, names and choices.
"""
import csv
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_scarnet.ingestion.dicom_header import UnreadableFile, read_header
from nnunetv2_scarnet.ingestion.dicom_series import group_series
from nnunetv2_scarnet.ingestion.safe_files import Skipped, read_skipped, summary, write_skipped
from nnunetv2_scarnet.ingestion.safe_files import list_files as safe_list_files
from nnunetv2_scarnet.report.inputs import _safe_name, only_series_choice, score_series, unique_names

#: headers read per file (everything the grouping and the output names need; the scorer reads its own)
HEADER_TAGS = ["PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "SeriesInstanceUID",
               "SeriesDescription", "ImagePositionPatient", "ImageOrientationPatient", "Rows",
               "PerFrameFunctionalGroupsSequence", "NumberOfFrames", "Modality"]
#: modalities of non-image objects an export may hold beside the images (segmentations, reports, states)
NOT_IMAGES = {"SEG", "SR", "PR", "KO", "RTSTRUCT", "DOC", "REG"}
INDEX_FIELDS = ["study", "patient_id", "study_uid", "study_date", "series_uid", "series_description", "n_files",
                "score", "chosen", "reason", "files"]
#: names of cohort files in OUT_DIR that no study may take
RESERVED_NAMES = ("index.csv", "index_skipped.csv", "cohort.csv", "summary.html", "timings.csv", "run_timings.json")


class CohortIndexError(ValueError):
    """The export tree or a stored index cannot be used; the message names the path."""


class IndexRows(list):
    """The index rows (a list of dicts) and `skipped`: what the scan of the tree left out, each with the reason
    (`safe_files.Skipped`). `write_index` stores both; `read_index` reads both back."""

    def __init__(self, rows=(), skipped: Sequence[Skipped] = ()):
        super().__init__(rows)
        self.skipped = list(skipped)


def skipped_path(index_path: str) -> str:
    """Where the skipped entries of the index `index_path` are stored: `<name>_skipped.csv` beside it."""
    return f"{index_path[:-4] if index_path.endswith('.csv') else index_path}_skipped.csv"


@dataclass
class Study:
    name: str                       # output folder name (unique in the cohort)
    uid: str                        # StudyInstanceUID
    patient_id: str
    study_date: str
    series: List[Dict] = field(default_factory=list)    # index rows of its series
    chosen: Optional[Dict] = None                       # the chosen series' row; None: no usable choice
    reason: str = ""                                    # why that series, or why none

    @property
    def files(self) -> List[str]:
        return json.loads(self.chosen["files"]) if self.chosen else []

    @property
    def folder(self) -> str:
        """The folder holding all of the study's files (shown as the report's source)."""
        paths = [p for row in self.series for p in json.loads(row["files"])]
        return os.path.commonpath([os.path.dirname(p) for p in paths])


def _read_header(path: str) -> Tuple[str, Optional[Dict[str, str]], str]:
    """(path, identifiers, note) of an image file; identifiers None (and the note says why) for a file that is not
    DICOM or not readable, a non-image object (`NOT_IMAGES`, e.g. a DICOM SEG of an earlier run) or DICOM without
    image geometry. Headers are read within `dicom_header`'s bounds: a file past them keeps its identifiers (its
    study fails when read, naming the file) and the note says why."""
    try:
        header = read_header(path, HEADER_TAGS)
    except UnreadableFile as exc:
        return path, None, str(exc)
    ds = header.dataset
    if str(ds.get("Modality", "")).upper() in NOT_IMAGES:
        return path, None, f"not an image ({str(ds.get('Modality', '')).upper()} object)"
    if not header.problem and "PerFrameFunctionalGroupsSequence" not in ds and not (
            "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds and "Rows" in ds):
        return path, None, "DICOM without image geometry"
    note = f"unusable, its study fails when read: {header.problem}" if header.problem else ""
    return path, {k: str(ds.get(k, "") or "") for k in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate",
                                                        "SeriesInstanceUID", "SeriesDescription")}, note


def _read_chunk(paths: Sequence[str]) -> List[Tuple[str, Optional[Dict[str, str]], str]]:
    return [_read_header(p) for p in paths]


def _score(args: Tuple[List[str], str]):
    files, description = args
    try:
        grouped, _ = group_series(files)
        if len(grouped) != 1:
            raise ValueError(f"{len(grouped)} image series among the files of series '{description}'")
        return score_series(next(iter(grouped.values())))
    except Exception as exc:  # noqa: BLE001 - a broken series must not stop the cohort; recorded as the reason
        return exc


def list_files(root: str) -> Tuple[List[str], List[Skipped]]:
    """Every regular file under `root` (`safe_files.list_files`: links to folders followed, each real folder and file
    once), hidden files and folders excluded, in sorted walk order; and what was skipped, with the reason."""
    return safe_list_files(root, skip_hidden=True)


def _parallel(fn, items: List, workers: int, chunk: int) -> List:
    if workers <= 1 or len(items) <= chunk:
        return [fn(x) for x in items]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items, chunksize=max(1, chunk // 64)))


def build_index(root: str, workers: Optional[int] = None, chunk: int = 256) -> List[Dict]:
    """The index rows of the export tree `root` (see module doc); `workers`: header-reading processes
    (default: the CPU count, at most 8)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise CohortIndexError(f"{root}: not a folder")
    workers = workers or min(8, os.cpu_count() or 1)
    files, skipped = list_files(root)
    chunks = [files[i:i + chunk] for i in range(0, len(files), chunk)]
    read = [h for part in _parallel(_read_chunk, chunks, workers, 2) for h in part]
    headers = [(path, tags) for path, tags, _ in read if tags is not None]
    skipped += [Skipped(path, note) for path, _, note in read if note]
    if not headers:
        raise CohortIndexError(f"{root}: no DICOM image files found" + (f" (skipped: {summary(skipped)})" if skipped
                                                                       else ""))
    studies: Dict[str, Dict[str, List[Tuple[str, Dict]]]] = {}
    for path, tags in headers:
        study_key = tags["StudyInstanceUID"] or f"(no StudyInstanceUID) {os.path.dirname(path)}"
        studies.setdefault(study_key, {}).setdefault(tags["SeriesInstanceUID"], []).append((path, tags))
    to_score = [(uid, series_uid, [p for p, _ in items], items[0][1]["SeriesDescription"])
                for uid, series in studies.items() for series_uid, items in series.items()]
    scores = dict(zip([(u, s) for u, s, _, _ in to_score],
                      _parallel(_score, [(f, d) for _, _, f, d in to_score], workers, 8)))
    keys = sorted(studies)
    first = {uid: next(iter(studies[uid].values()))[0][1] for uid in keys}
    bases = [_safe_name("_".join(x for x in (first[u]["PatientID"] or first[u]["PatientName"] or "patient",
                                             first[u]["StudyDate"]) if x)) for u in keys]
    order = sorted(range(len(keys)), key=lambda i: (bases[i].lower(), keys[i]))
    names = unique_names(list(RESERVED_NAMES) + [bases[i] for i in order])[len(RESERVED_NAMES):]
    name_of = {keys[i]: name for i, name in zip(order, names)}
    rows = []
    for uid in sorted(keys, key=lambda u: name_of[u]):
        rows += _study_rows(name_of[uid], uid, studies[uid], scores)
    return IndexRows(rows, skipped)


def _study_rows(name: str, uid: str, series: Dict[str, List[Tuple[str, Dict]]], scores: Dict) -> List[Dict]:
    tags = next(iter(series.values()))[0][1]
    rows = [{"study": name, "patient_id": tags["PatientID"], "study_uid": uid, "study_date": tags["StudyDate"],
             "series_uid": s_uid, "series_description": items[0][1]["SeriesDescription"], "n_files": len(items),
             "score": "", "chosen": "no", "reason": "", "files": json.dumps(sorted(p for p, _ in items))}
            for s_uid, items in sorted(series.items())]
    results = [scores[(uid, row["series_uid"])] for row in rows]
    if len(rows) == 1:  # the only series, unless its headers say it is something else (a cine, a T1 map, ...)
        result = results[0]
        if isinstance(result, Exception):
            rows[0]["reason"] = f"the only series in the study, cannot score: {result}"
        else:
            rows[0].update(score=result.score, **only_series_choice(result, "study"))
        return rows
    broken = [(row, r) for row, r in zip(rows, results) if isinstance(r, Exception)]
    for row, result in zip(rows, results):
        if isinstance(result, Exception):
            row["reason"] = f"cannot score: {result}"
        else:
            row.update(score=result.score, reason="; ".join(result.reasons) or "no LGE evidence")
    if broken:
        return rows
    ranked = sorted(rows, key=lambda r: -r["score"])
    if ranked[0]["score"] != ranked[1]["score"]:
        ranked[0]["chosen"] = "yes"
    return rows


def write_index(rows: List[Dict], path: str) -> None:
    """Write the index atomically (a temporary file renamed over `path`), after its skipped entries
    (`skipped_path`, when `rows` has them: an `IndexRows`)."""
    if isinstance(rows, IndexRows):
        write_skipped(rows.skipped, skipped_path(path))
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_index(path: str) -> IndexRows:
    """The index at `path`, with the skipped entries stored beside it (none when that file is absent)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != INDEX_FIELDS:
                raise CohortIndexError(f"{path}: not a scarnet cohort index (columns {reader.fieldnames})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CohortIndexError(f"{path}: cannot read the cohort index ({exc})") from None
    for row in rows:
        row["n_files"] = int(row["n_files"])
        row["score"] = int(row["score"]) if row["score"] != "" else ""
    try:
        skipped = read_skipped(skipped_path(path)) if os.path.isfile(skipped_path(path)) else []
    except ValueError as exc:
        raise CohortIndexError(str(exc)) from None
    return IndexRows(rows, skipped)


def index_digest(rows: List[Dict]) -> str:
    """SHA-256 of the index content (studies, series, choices, files): equal indexes, equal digests."""
    text = json.dumps([[str(r[k]) for k in INDEX_FIELDS] for r in rows])
    return hashlib.sha256(text.encode()).hexdigest()


def studies_of(rows: List[Dict]) -> List[Study]:
    """The studies of an index, in index order, each with its chosen series (or the reason why none)."""
    out: Dict[str, Study] = {}
    for row in rows:
        study = out.setdefault(row["study"], Study(row["study"], row["study_uid"], row["patient_id"],
                                                   row["study_date"]))
        study.series.append(row)
    for study in out.values():
        chosen = [r for r in study.series if r["chosen"] == "yes"]
        if chosen:
            study.chosen = chosen[0]
            study.reason = f"series {chosen[0]['series_uid']} ({chosen[0]['series_description'] or 'no description'})" \
                           f": {chosen[0]['reason']}"
        else:
            listing = "; ".join(f"{r['series_uid']} ({r['series_description'] or 'no description'}, {r['n_files']} "
                                f"files, score {r['score']}: {r['reason']})" for r in study.series)
            study.reason = f"cannot tell which of {len(study.series)} series is the LGE stack: {listing}"
    return list(out.values())
