"""`scarnet cohort merge PART_DIRS... OUT_DIR`: the parts of a cohort -> one cohort.csv and summary.html.

Every part folder must be a complete cohort part (`.scarnet-cohort` and `cohort.csv`, written last by the part's
run). The parts must be parts 0 .. N-1 of one split (each exactly once), of one study index and one model; a
study found in two parts (the index changed between runs) is refused naming both parts, and so is a study of the
index that no part reported. The merged cohort.csv has one row per study (failure rows included), sorted by
study name, with `report_html` rewritten relative to OUT_DIR.
"""
import csv
import json
import os
from typing import Dict, List, Sequence

from nnunetv2_scarnet.io_safety import LOCK, OutputDirLock, check_not_inside, check_output_dir, prepare_output_dir
from nnunetv2_scarnet.quantification.report import write_csv
from nnunetv2_scarnet.report.cohort_html import render_summary
from nnunetv2_scarnet.report.cohort_index import read_index, studies_of
from nnunetv2_scarnet.report.cohort_run import COHORT_MARKER, ROW_FIELDS


class CohortMergeError(ValueError):
    """The part folders do not make one complete cohort; the message names the folder and the problem."""


def read_part(folder: str) -> Dict:
    """A part's state (`.scarnet-cohort`) and rows (`cohort.csv`)."""
    marker, table = os.path.join(folder, COHORT_MARKER), os.path.join(folder, "cohort.csv")
    if not os.path.isfile(marker):
        raise CohortMergeError(f"{folder}: not a cohort part folder (no {COHORT_MARKER}); give the OUT_DIR of "
                               f"each `scarnet report EXPORT_ROOT ... --num-parts N --part-id K` run")
    with open(marker) as f:
        state = json.load(f)
    if not os.path.isfile(table):
        raise CohortMergeError(f"{folder}: part {state['part_id']} of {state['num_parts']} is not complete (no "
                               f"cohort.csv); rerun its command to resume it")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    return {"folder": os.path.abspath(folder), "state": state, "rows": rows}


def check_parts(parts: List[Dict]) -> None:
    """One split, one index, one model, every part once, no study twice."""
    first = parts[0]["state"]
    seen: Dict[str, str] = {}
    for part in parts:
        for row in part["rows"]:
            if row["study_uid"] in seen:
                raise CohortMergeError(
                    f"{part['folder']}: study {row['study_uid']} ({row['study']}) is also in part folder "
                    f"{seen[row['study_uid']]}: the parts were run from different study indexes (the export "
                    f"changed between runs); rerun every part from one index (--index)")
            seen[row["study_uid"]] = part["folder"]
    for part in parts[1:]:
        for key, what in (("num_parts", "number of parts"), ("index_digest", "study index"), ("model", "model")):
            if part["state"].get(key) != first.get(key):
                raise CohortMergeError(f"{part['folder']}: another {what} than {parts[0]['folder']} "
                                       f"({part['state'].get(key)} vs {first.get(key)})")
    ids = sorted(p["state"]["part_id"] for p in parts)
    if ids != list(range(first["num_parts"])):
        missing = sorted(set(range(first["num_parts"])) - set(ids))
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        raise CohortMergeError(f"{parts[0]['folder']}: the parts given are {ids} of {first['num_parts']}"
                               f"{f'; missing {missing}' if missing else ''}{f'; given twice {doubled}' if doubled else ''}")
    index = read_index(os.path.join(parts[0]["folder"], "index.csv"))
    missing = sorted({s.uid for s in studies_of(index)} - set(seen))
    if missing:
        raise CohortMergeError(f"{parts[0]['folder']}: {len(missing)} studies of the index are in no part "
                               f"(e.g. {missing[0]})")


def merge_parts(part_dirs: Sequence[str], out_dir: str) -> int:
    """Merge (module doc); returns 0 (failure rows are results, counted in the summary)."""
    out_dir = os.path.abspath(out_dir)
    check_output_dir(out_dir)
    for folder in part_dirs:
        check_not_inside(folder, out_dir)
        check_not_inside(out_dir, folder)
    parts = [read_part(folder) for folder in part_dirs]
    check_parts(parts)
    rows = []
    for part in parts:
        for row in part["rows"]:
            merged = {k: row.get(k, "") for k in ROW_FIELDS}
            if merged["report_html"]:
                merged["report_html"] = os.path.relpath(os.path.join(part["folder"], row["report_html"]), out_dir)
            rows.append(merged)
    rows.sort(key=lambda r: r["study"])
    with OutputDirLock(out_dir):
        prepare_output_dir(out_dir, keep=(LOCK,))
        write_csv(os.path.join(out_dir, "cohort.csv"), rows)
        page = render_summary(rows, parts[0]["state"]["model"], [p["folder"] for p in parts])
        with open(os.path.join(out_dir, "summary.html"), "w", encoding="utf-8") as f:
            f.write(page)
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"{len(rows)} studies ({failed} failed) from {len(parts)} part(s): {os.path.join(out_dir, 'cohort.csv')}, "
          f"{os.path.join(out_dir, 'summary.html')}")
    return 0
