"""`scarnet cohort merge PART_DIRS... OUT_DIR`: the parts of a cohort -> one cohort.csv and summary.html.

Nothing a part folder says is taken on trust (issue 20); every check below refuses the merge with one line
naming the file and what is wrong, before OUT_DIR is touched:

- each folder is given once and is a complete part: `.scarnet-cohort` a JSON object with every key of a part
  (`cohort_run.read_state`), `cohort.csv` a UTF-8 table with exactly the columns `ROW_FIELDS`, and `index.csv`
  whose digest is the one the part was run with;
- the parts are parts 0 .. N-1 of one split (a part number given twice is named as such), of one study index
  and of one run identity (`run_identity.py`: checkpoint, plans and label-map hashes, prediction options,
  versions; a difference is named key by key) and model (trainer, plans, configuration, folds; not the folder's
  path, which may differ between machines);
- every row of a part's cohort.csv is a study of the index that belongs to that part, once, and every study of
  the index that belongs to it has a row;
- a reported study's folder is verified (`study_manifest.verified_report`: a real folder inside the part, files
  matching the checksum manifest the part wrote when the study completed), its report.json was written with the
  part's run identity and is of the study the index names; a failure row has no complete study folder;
- each row of cohort.csv equals the row made from the index and the study's report.json (so an edited number,
  flag or link is found).

The merged cohort.csv is made from the index and the reports (the failure rows' errors from cohort.csv): one row
per study, sorted by study name, `report_html` relative to OUT_DIR, pointing into the verified study folder.
"""
import csv
import os
from typing import Dict, List, Sequence

from nnunetv2_scarnet.io_safety import LOCK, OutputDirLock, check_not_inside, check_output_dir, prepare_output_dir
from nnunetv2_scarnet.report.cohort_html import render_summary
from nnunetv2_scarnet.report.cohort_index import CohortIndexError, index_digest, read_index, studies_of
from nnunetv2_scarnet.report.cohort_run import (COHORT_MARKER, ROW_FIELDS, checked_report, part_of, read_state,
                                                study_is_complete, study_row, write_rows)
from nnunetv2_scarnet.report.run_identity import describe, differences, flat_rows
from nnunetv2_scarnet.report.study_manifest import StudyFolderError


class CohortMergeError(ValueError):
    """The part folders do not make one complete cohort; the message names the folder and the problem."""


def read_table(path: str) -> List[Dict]:
    """A part's cohort.csv: UTF-8 CSV with exactly the columns `ROW_FIELDS`, every row complete."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CohortMergeError(f"{path}: not a cohort table ({type(exc).__name__}: {exc})") from None
    if fields != ROW_FIELDS:
        missing = [k for k in ROW_FIELDS if k not in fields]
        extra = [k for k in fields if k not in ROW_FIELDS]
        raise CohortMergeError(f"{path}: not the columns of a cohort table" + "".join(
            f"; {what}: {', '.join(map(str, keys))}" for what, keys in (("missing", missing), ("unexpected", extra))
            if keys) + ("" if missing or extra else "; columns in another order"))
    for number, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise CohortMergeError(f"{path}: line {number} does not have the {len(ROW_FIELDS)} cells of a row")
    return rows


def read_part(folder: str) -> Dict:
    """A part's state (`.scarnet-cohort`), rows (`cohort.csv`) and index (`index.csv`), each checked."""
    folder = os.path.abspath(folder)
    marker, table = os.path.join(folder, COHORT_MARKER), os.path.join(folder, "cohort.csv")
    if not os.path.isfile(marker):
        raise CohortMergeError(f"{folder}: not a cohort part folder (no {COHORT_MARKER}); give the OUT_DIR of "
                               f"each `scarnet report EXPORT_ROOT ... --num-parts N --part-id K` run")
    state = read_state(folder, CohortMergeError)
    if not os.path.isfile(table):
        raise CohortMergeError(f"{folder}: part {state['part_id']} of {state['num_parts']} is not complete (no "
                               f"cohort.csv); rerun its command to resume it")
    rows = read_table(table)
    index_path = os.path.join(folder, "index.csv")
    try:
        index = read_index(index_path)
    except (CohortIndexError, KeyError, ValueError) as exc:
        raise CohortMergeError(f"{index_path}: not the part's study index ({exc})") from None
    if index_digest(index) != state["index_digest"]:
        raise CohortMergeError(f"{index_path}: not the index the part was run with (its digest differs from the "
                               f"one in {COHORT_MARKER}); it was changed after the run")
    return {"folder": folder, "state": state, "rows": rows, "index": index}


def _model_names(state: Dict) -> Dict:
    return {k: v for k, v in state["model"].items() if k != "model_folder"}


def check_parts(parts: List[Dict]) -> None:
    """One split, one index, one run identity and model, every part once."""
    first = parts[0]
    for part in parts[1:]:
        for key, what in (("num_parts", "number of parts"), ("index_digest", "study index")):
            if part["state"][key] != first["state"][key]:
                raise CohortMergeError(f"{part['folder']}: another {what} than {first['folder']} "
                                       f"({part['state'][key]} vs {first['state'][key]})")
        diffs = differences(first["state"]["run_identity"], part["state"]["run_identity"])
        if diffs:
            names = (f"part {first['state']['part_id']}", f"part {part['state']['part_id']}")
            raise CohortMergeError(f"{part['folder']}: run with another model or options than {first['folder']}; one "
                                   f"cohort is one model: {describe(diffs, *names)}")
        if _model_names(part["state"]) != _model_names(first["state"]):
            raise CohortMergeError(f"{part['folder']}: another model than {first['folder']} "
                                   f"({_model_names(part['state'])} vs {_model_names(first['state'])})")
    n, seen = first["state"]["num_parts"], {}
    for part in parts:
        k = part["state"]["part_id"]
        if k in seen:
            raise CohortMergeError(f"{part['folder']}: part {k} of {n} given twice (also {seen[k]}); give each part "
                                   f"once")
        seen[k] = part["folder"]
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise CohortMergeError(f"{first['folder']}: the parts given are {sorted(seen)} of {n}; missing {missing}")


def part_rows(part: Dict, out_dir: str) -> List[Dict]:
    """The merged rows of one part, each checked against the index, the study folder and cohort.csv."""
    folder, state = part["folder"], part["state"]
    n, k, identity = state["num_parts"], state["part_id"], state["run_identity"]
    table = os.path.join(folder, "cohort.csv")
    by_name = {s.name: s for s in studies_of(part["index"])}
    listed: Dict[str, Dict] = {}
    for number, row in enumerate(part["rows"], start=2):
        name = row["study"]
        if name not in by_name:
            raise CohortMergeError(f"{table}: line {number}, study {name!r} is not in the cohort's index")
        if part_of(by_name[name].uid, n) != k:
            raise CohortMergeError(f"{table}: line {number}, study {name} belongs to part "
                                   f"{part_of(by_name[name].uid, n)} of {n}, not to this part {k}")
        if name in listed:
            raise CohortMergeError(f"{table}: study {name} has two rows")
        listed[name] = row
    missing = sorted(s.name for s in by_name.values() if part_of(s.uid, n) == k and s.name not in listed)
    if missing:
        raise CohortMergeError(f"{table}: {len(missing)} studies of the index that belong to part {k} have no row "
                               f"(e.g. {missing[0]})")
    out = []
    for name, row in sorted(listed.items()):
        study = by_name[name]
        if row["status"] == "ok":
            try:
                merged = study_row(study, k, None, checked_report(folder, study, identity))
            except StudyFolderError as exc:
                raise CohortMergeError(str(exc)) from None
            source = f"{name}/{name}_report.json"
        elif row["status"] == "failed":
            if study_is_complete(folder, name):
                raise CohortMergeError(f"{table}: study {name} is a failure row, but {os.path.join(folder, name)} "
                                       f"holds its complete report")
            merged, source = study_row(study, k, row["error"] or "(no error given)"), "the index"
        else:
            raise CohortMergeError(f"{table}: study {name}: status {row['status']!r} is neither ok nor failed")
        for column in ROW_FIELDS:
            expected = "" if merged[column] is None else str(merged[column])
            if row[column] != expected:
                raise CohortMergeError(f"{table}: study {name}, column {column}: {row[column]!r} in the table, "
                                       f"{expected!r} from {source}; the table was changed after the run")
        if merged["report_html"]:
            merged["report_html"] = os.path.relpath(os.path.join(folder, name, f"{name}_report.html"), out_dir)
        out.append(merged)
    return out


def merge_parts(part_dirs: Sequence[str], out_dir: str) -> int:
    """Merge (module doc); returns 0 (failure rows are results, counted in the summary)."""
    out_dir = os.path.abspath(out_dir)
    check_output_dir(out_dir)
    given: Dict[str, str] = {}
    for folder in part_dirs:
        check_not_inside(folder, out_dir)
        check_not_inside(out_dir, folder)
        real = os.path.realpath(folder)
        if real in given:
            raise CohortMergeError(f"{os.path.abspath(folder)}: given twice (also as {given[real]}); give each "
                                   f"part folder once")
        given[real] = os.path.abspath(folder)
    parts = [read_part(folder) for folder in part_dirs]
    check_parts(parts)
    rows = sorted((row for part in parts for row in part_rows(part, out_dir)), key=lambda r: r["study"])
    state = parts[0]["state"]
    with OutputDirLock(out_dir):
        prepare_output_dir(out_dir, keep=(LOCK,))
        write_rows(os.path.join(out_dir, "cohort.csv"), rows)
        page = render_summary(rows, {**state["model"], **flat_rows(state["run_identity"])},
                              [p["folder"] for p in parts])
        with open(os.path.join(out_dir, "summary.html"), "w", encoding="utf-8") as f:
            f.write(page)
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"{len(rows)} studies ({failed} failed) from {len(parts)} part(s): {os.path.join(out_dir, 'cohort.csv')}, "
          f"{os.path.join(out_dir, 'summary.html')}")
    return 0
