"""Study index of a DICOM export tree for `scarnet report` at cohort scale.

Every regular file under the root (any depth, non-DICOM files mixed in; `ingestion/safe_files.py`: folder links
followed once, loops ended) is opened once, headers only (`specific_tags`, within the bounds of
`ingestion/dicom_header.py`), in a bounded process pool. A study is what it is: image files are grouped by patient
(PatientID, else PatientName) and StudyInstanceUID, then SeriesInstanceUID; in each study the LGE series is chosen
with the report's own heuristic (`inputs.score_series`, the only scorer; a study holding one series uses it, a tie
is recorded and the study fails with the listing). Each study gets an output name that is unique by construction
(`inputs.unique_names` on `inputs._safe_name(PatientID or PatientName + StudyDate)`), so patient names can never
walk out of OUT_DIR and two studies of one patient never share a folder.

Studies that cannot be told apart or identified are refused at indexing, never dropped (column `refused`, the
same reason on every row of the study; the study becomes a failure row of the cohort): one StudyInstanceUID under
two patients (copies and test exports make them), one SeriesInstanceUID in two studies, and images without
StudyInstanceUID (grouped per folder; the report's DICOM SEG must reference the study, so no UID is made up).

The index is one CSV row per series (`INDEX_FIELDS`), written atomically, with what the scan left out (and why) in
`<index>_skipped.csv` beside it (`IndexRows.skipped`); a rerun and every part read it instead of walking the tree
again, so they all see the same studies, names and choices.
"""
import csv
import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_scarnet.ingestion.dicom_header import UnreadableFile, read_header
from nnunetv2_scarnet.ingestion.dicom_series import group_series
from nnunetv2_scarnet.ingestion.safe_files import Skipped, open_regular, read_skipped, summary, write_skipped
from nnunetv2_scarnet.ingestion.safe_files import list_files as safe_list_files
from nnunetv2_scarnet.report.inputs import _safe_name, only_series_choice, score_series, unique_names

#: headers read per file (everything the grouping and the output names need; the scorer reads its own)
HEADER_TAGS = ["PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "SeriesInstanceUID",
               "SeriesDescription", "ImagePositionPatient", "ImageOrientationPatient", "Rows",
               "PerFrameFunctionalGroupsSequence", "NumberOfFrames", "Modality"]
#: modalities of non-image objects an export may hold beside the images (segmentations, reports, states)
NOT_IMAGES = {"SEG", "SR", "PR", "KO", "RTSTRUCT", "DOC", "REG"}
INDEX_FIELDS = ["study", "patient_id", "study_uid", "study_date", "series_uid", "series_description", "n_files",
                "score", "chosen", "reason", "refused", "files"]
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
    refused: str = ""                                   # why the study was refused at indexing (or "")

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
    studies: Dict[StudyKey, Dict[str, List[Tuple[str, Dict]]]] = {}
    for path, tags in headers:
        studies.setdefault(_study_key(path, tags), {}).setdefault(tags["SeriesInstanceUID"], []).append((path, tags))
    refused = study_refusals(studies)
    to_score = [(key, series_uid, [p for p, _ in items], items[0][1]["SeriesDescription"])
                for key, series in studies.items() for series_uid, items in series.items()]
    scores = dict(zip([(k, s) for k, s, _, _ in to_score],
                      _parallel(_score, [(f, d) for _, _, f, d in to_score], workers, 8)))
    keys = sorted(studies)
    first = {key: next(iter(studies[key].values()))[0][1] for key in keys}
    bases = [_safe_name("_".join(x for x in (first[k]["PatientID"] or first[k]["PatientName"] or "patient",
                                             first[k]["StudyDate"]) if x)) for k in keys]
    order = sorted(range(len(keys)), key=lambda i: (bases[i].lower(), keys[i]))
    names = unique_names(list(RESERVED_NAMES) + [bases[i] for i in order])[len(RESERVED_NAMES):]
    name_of = {keys[i]: name for i, name in zip(order, names)}
    rows = []
    for key in sorted(keys, key=lambda k: name_of[k]):
        rows += _study_rows(name_of[key], key, studies[key], scores, refused.get(key, ""))
    return IndexRows(rows, skipped)


#: a study: (patient: PatientID, else "(name) PatientName"; StudyInstanceUID; the folder when it has none)
StudyKey = Tuple[str, str, str]


def _study_key(path: str, tags: Dict[str, str]) -> StudyKey:
    """What a study is: its patient and its StudyInstanceUID. Files without the UID are grouped by folder (and
    refused, `study_refusals`)."""
    patient = tags["PatientID"] or (f"(name) {tags['PatientName']}" if tags["PatientName"] else "")
    uid = tags["StudyInstanceUID"]
    return patient, uid, "" if uid else os.path.dirname(path)


def _where(key: StudyKey, series: Dict[str, List[Tuple[str, Dict]]]) -> str:
    folder = os.path.commonpath([os.path.dirname(p) for items in series.values() for p, _ in items])
    return f"patient {key[0] or '(no PatientID)'} in {folder}"


def study_refusals(studies: Dict[StudyKey, Dict[str, List[Tuple[str, Dict]]]]) -> Dict[StudyKey, str]:
    """The reason each study that cannot be identified or told apart is refused (module doc), by study key: no
    StudyInstanceUID; one StudyInstanceUID under two patients (both refused); one SeriesInstanceUID in two
    studies (both refused)."""
    reasons: Dict[StudyKey, List[str]] = {}
    by_uid: Dict[str, List[StudyKey]] = {}
    by_series: Dict[str, List[StudyKey]] = {}
    for key, series in studies.items():
        files = sorted(p for items in series.values() for p, _ in items)
        if key[1]:
            by_uid.setdefault(key[1], []).append(key)
        else:
            reasons.setdefault(key, []).append(
                f"{files[0]}: no StudyInstanceUID (0020,000D) in the {len(files)} image file(s) of this folder; a "
                f"study is identified by it and its DICOM SEG must reference it, so none is made up (export the "
                f"study with its UIDs)")
        for series_uid in series:
            if series_uid:
                by_series.setdefault(series_uid, []).append(key)
    for uid, keys in by_uid.items():
        for key in keys if len(keys) > 1 else []:
            others = "; ".join(_where(k, studies[k]) for k in keys if k != key)
            reasons.setdefault(key, []).append(
                f"StudyInstanceUID {uid} is also the study of {others}: two patients under one study UID (a copy "
                f"or a test export) cannot be told apart; refused for both")
    for series_uid, keys in by_series.items():
        for key in keys if len(keys) > 1 else []:
            others = [k for k in keys if k != key and k[1] != key[1]]  # a shared study UID is said above
            if others:
                where = "; ".join(_where(k, studies[k]) for k in others)
                reasons.setdefault(key, []).append(
                    f"SeriesInstanceUID {series_uid} is also a series of {where} (study "
                    f"{', '.join(sorted({k[1] or '(none)' for k in others}))}): one series in two studies cannot be "
                    f"told apart; refused for both")
    return {key: "; ".join(texts) for key, texts in reasons.items()}


def _study_rows(name: str, key: StudyKey, series: Dict[str, List[Tuple[str, Dict]]], scores: Dict,
                refused: str) -> List[Dict]:
    tags = next(iter(series.values()))[0][1]
    rows = [{"study": name, "patient_id": tags["PatientID"], "study_uid": key[1], "study_date": tags["StudyDate"],
             "series_uid": s_uid, "series_description": items[0][1]["SeriesDescription"], "n_files": len(items),
             "score": "", "chosen": "no", "reason": "", "refused": refused,
             "files": json.dumps(sorted(p for p, _ in items))}
            for s_uid, items in sorted(series.items())]
    results = [scores[(key, row["series_uid"])] for row in rows]
    if len(rows) == 1:  # the only series, unless its headers say it is something else (a cine, a T1 map, ...)
        result = results[0]
        if isinstance(result, Exception):
            rows[0]["reason"] = f"the only series in the study, cannot score: {result}"
        else:
            rows[0].update(score=result.score, **only_series_choice(result, "study"))
    else:
        for row, result in zip(rows, results):
            if isinstance(result, Exception):
                row["reason"] = f"cannot score: {result}"
            else:
                row.update(score=result.score, reason="; ".join(result.reasons) or "no LGE evidence")
        if not any(isinstance(r, Exception) for r in results):
            ranked = sorted(rows, key=lambda r: -r["score"])
            if ranked[0]["score"] != ranked[1]["score"]:
                ranked[0]["chosen"] = "yes"
    if refused:
        for row in rows:
            row["chosen"] = "no"
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
        with io.TextIOWrapper(open_regular(path), encoding="utf-8", newline="") as f:  # a FIFO never blocks
            reader = csv.DictReader(f)
            if reader.fieldnames != INDEX_FIELDS:
                raise CohortIndexError(f"{path}: not a scarnet cohort index (columns {reader.fieldnames})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CohortIndexError(f"{path}: cannot read the cohort index ({exc})") from None
    identity: Dict[str, Tuple[str, str]] = {}
    for number, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise CohortIndexError(f"{path}: line {number} does not have the {len(INDEX_FIELDS)} cells of a row")
        name = row["study"]
        if name != _safe_name(name) or name.lower() in RESERVED_NAMES:
            raise CohortIndexError(f"{path}: line {number}, study name {name!r} is not a safe output folder name "
                                   f"(an index written by `scarnet cohort index` never holds one)")
        if identity.setdefault(name, (row["patient_id"], row["study_uid"])) != (row["patient_id"], row["study_uid"]):
            raise CohortIndexError(f"{path}: line {number}, study {name} is given for two patients or study UIDs")
        try:
            row["n_files"] = int(row["n_files"])
            row["score"] = int(row["score"]) if row["score"] != "" else ""
        except ValueError as exc:
            raise CohortIndexError(f"{path}: line {number}: {exc}") from None
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
    """The studies of an index, in index order, each with its chosen series (or the reason why none: the
    refusal of a study refused at indexing)."""
    out: Dict[str, Study] = {}
    for row in rows:
        study = out.setdefault(row["study"], Study(row["study"], row["study_uid"], row["patient_id"],
                                                   row["study_date"]))
        study.series.append(row)
    for study in out.values():
        study.refused = study.series[0]["refused"]
        if study.refused:
            study.reason = study.refused
            continue
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
