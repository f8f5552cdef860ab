"""Cohorts (issue 16): study index of an export tree, parts, resume after a kill, merge and the cohort summary,
and bad input at cohort scale (unreadable study, one patient with two studies, unsafe or colliding patient names).

The export tree is written here: small phantom LGE stacks (a myocardial ring with a bright scar sector, placed in
world coordinates) as DICOM series via `dicom_helpers.write_series`, with cine series, non-DICOM files and hidden
files mixed in, at several depths. The model is the cheap random-weight nnU-Net folder of test_report_safety
(`build_model_folder`): predictions are poor, the pipeline (conversion, nnUNetPredictor, quantification, DICOM SEG,
HTML) is real."""
import csv
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicom_helpers import set_tags, write_series
from test_report_safety import build_model_folder

from nnunetv2_scarnet.cli import main
from nnunetv2_scarnet.report.cohort_index import build_index, read_index, studies_of, write_index
from nnunetv2_scarnet.report.cohort_run import part_of


def phantom(path, shape=(48, 48, 4), spacing=(1.5, 1.5, 8.0)):
    """A short-axis LGE-like stack: blood pool, myocardial ring (r 8-12 mm), a bright 60-degree scar sector."""
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    r = np.hypot((ii - shape[0] / 2) * spacing[0], (jj - shape[1] / 2) * spacing[1])
    angle = np.degrees(np.arctan2(jj - shape[1] / 2, ii - shape[0] / 2)) % 360
    plane = np.full(shape[:2], 50.0)
    plane[r < 8] = 400
    plane[(r >= 8) & (r < 12)] = 80
    plane[(r >= 8) & (r < 12) & (angle < 60)] = 600
    data = np.repeat(plane[..., None], shape[2], axis=2).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), path)
    return path


def write_study(root, folder, nifti, patient_id, study_date, name=None, cine=True):
    """One study: an LGE series (4 slices, TI 300 ms) and, with `cine`, a single-slice cine series, both under
    `root/folder` (the cine one level deeper). Returns (StudyInstanceUID, LGE SeriesInstanceUID, LGE files)."""
    study_uid = pydicom.uid.generate_uid()
    lge = write_series(nifti, os.path.join(root, folder, "lge"), study_uid=study_uid, description="LGE PSIR SAX",
                       inversion_time=300)
    paths = list(lge)
    if cine:
        paths += write_series(nifti, os.path.join(root, folder, "more", "cine"), study_uid=study_uid,
                              description="CINE SAX", slices=[1], names=[None, "cine.dcm"])
    set_tags(paths, PatientID=patient_id, PatientName=name or f"{patient_id}^Test", StudyDate=study_date)
    return study_uid, str(pydicom.dcmread(lge[0]).SeriesInstanceUID), lge


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("cheap") / "nnUNetTrainer__nnUNetPlans__2d")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """An export tree: 5 studies at depths 1-3 (two of patient P1, names to sanitise, one unreadable), README and
    hidden files. Returns (root, {label: (study_uid, lge_series_uid)})."""
    tmp = tmp_path_factory.mktemp("export")
    nifti = phantom(str(tmp / "phantom.nii.gz"))
    root = str(tmp / "export")
    studies = {
        "p1_first": write_study(root, "site_a/P1/2020", nifti, "P1", "20200101"),
        "p1_second": write_study(root, "site_a/P1/2021", nifti, "P1", "20210101"),
        "traversal": write_study(root, "site_b/x", nifti, "../../etc", "", name="../../etc"),
        "space": write_study(root, "site_b/y/deeper/still", nifti, "P 2", "20220202", cine=False),
        "slash": write_study(root, "z", nifti, "P/2", "20220202", cine=False),
    }
    broken_uid, broken_series, broken_files = write_study(root, "site_c/broken", nifti, "BROKEN", "20230303")
    for path in broken_files:  # header intact, pixel data cut short: readable index, unreadable image
        ds = pydicom.dcmread(path)
        ds.PixelData = ds.PixelData[:100]
        ds.save_as(path)
    studies["broken"] = (broken_uid, broken_series, broken_files)
    with open(os.path.join(root, "README.txt"), "w") as f:
        f.write("export notes, not DICOM\n")
    with open(os.path.join(root, "site_a", "P1", "DICOMDIR.txt"), "wb") as f:
        f.write(b"\0" * 300)
    os.makedirs(os.path.join(root, ".hidden"))
    shutil.copy(studies["p1_first"][2][0], os.path.join(root, ".hidden", "copy.dcm"))  # hidden: not indexed
    return root, {k: v[:2] for k, v in studies.items()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A smaller export for the runs: P1's two studies, the `../../etc` study and the unreadable one."""
    tmp = tmp_path_factory.mktemp("cohort")
    nifti = phantom(str(tmp / "phantom.nii.gz"))
    root = str(tmp / "export")
    studies = {"p1_first": write_study(root, "a/P1/2020", nifti, "P1", "20200101"),
               "p1_second": write_study(root, "a/P1/2021", nifti, "P1", "20210101", cine=False),
               "traversal": write_study(root, "b", nifti, "../../etc", "20190101", name="../../etc", cine=False)}
    broken = write_study(root, "c/deep/er", nifti, "BROKEN", "20230303", cine=False)
    for path in broken[2]:
        ds = pydicom.dcmread(path)
        ds.PixelData = ds.PixelData[:100]
        ds.save_as(path)
    studies["broken"] = broken
    with open(os.path.join(root, "notes.txt"), "w") as f:
        f.write("not DICOM\n")
    return root, {k: v[:2] for k, v in studies.items()}


def report_args(root, model, out, *extra):
    return ["report", root, "--model", model, out, "--device", "cpu", "--disable-mirroring", *extra]


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def reference(cohort, model, tmp_path_factory):
    """An uninterrupted single-part run of `cohort`."""
    out = str(tmp_path_factory.mktemp("reference") / "out")
    assert main(report_args(cohort[0], model, out)) == 1  # the unreadable study fails, the others are reported
    return out


# ---------------------------------------------------------------- 1. the index
def test_index_of_an_export_tree(export, tmp_path):
    """Every study written is found at any depth, non-DICOM and hidden files are ignored, the LGE series (not the
    cine) is chosen with a reason, the index on disk reads back equal, and a second scan gives the same index."""
    root, written = export
    rows = build_index(root, workers=2, chunk=4)  # chunk 4: the process pool really runs
    studies = {s.uid: s for s in studies_of(rows)}
    assert set(studies) == {uid for uid, _ in written.values()}
    for label, (uid, lge_uid) in written.items():
        study = studies[uid]
        assert study.chosen is not None and study.chosen["series_uid"] == lge_uid, label
        assert all(p.startswith(root + os.sep) and "/." not in p for p in study.files)
    with_cine = studies[written["p1_first"][0]]
    assert len(with_cine.series) == 2 and "says LGE" in with_cine.reason and "inversion time 300 ms" in \
        with_cine.reason
    assert "the only series in the study (" in studies[written["space"][0]].reason
    assert sum(len(json.loads(r["files"])) for r in rows) == 6 * 4 + 4  # 4 LGE slices each, 4 cine files
    path = str(tmp_path / "index.csv")
    write_index(rows, path)
    assert read_index(path) == rows == build_index(root, workers=1)


def test_a_study_whose_only_series_is_not_lge_is_never_quantified(tmp_path):
    """A study holding only a cine stack (an export of a patient scanned without LGE): its one series is scored
    like any other and, its name saying cine, not taken as the LGE stack; the study gets a reason, not a choice.
    The same rule refuses a one-series patient folder, and --series-uid still forces it."""
    from nnunetv2_scarnet.report.inputs import ReportInputError, choose_lge_series

    nifti = phantom(str(tmp_path / "phantom.nii.gz"))
    root = str(tmp_path / "export")
    cine_uid = pydicom.uid.generate_uid()
    cine = write_series(nifti, os.path.join(root, "cine_only"), study_uid=cine_uid, description="CINE SAX")
    write_study(root, "with_lge", nifti, "P2", "20200101", cine=False)
    studies = {s.uid: s for s in studies_of(build_index(root, workers=1))}
    assert studies[cine_uid].chosen is None
    assert "not an LGE stack" in studies[cine_uid].reason and "another sequence" in studies[cine_uid].reason
    assert [s.chosen is not None for s in studies.values()].count(True) == 1
    with pytest.raises(ReportInputError, match="not an LGE stack.*--series-uid"):
        choose_lge_series(os.path.join(root, "cine_only"))
    series_uid = str(pydicom.dcmread(cine[0]).SeriesInstanceUID)
    assert choose_lge_series(os.path.join(root, "cine_only"), [series_uid]).uid == series_uid
    # a name saying LGE keeps a lone series even when its score is negative ("T2prep" also names another
    # sequence: +3 - 5 + 1 slice positions = -1)
    lone = write_series(nifti, str(tmp_path / "lone_lge"), description="LGE T2prep")
    lone_choice = choose_lge_series(str(tmp_path / "lone_lge"))
    assert lone_choice.score < 0 and lone_choice.uid == str(pydicom.dcmread(lone[0]).SeriesInstanceUID)
    # an anonymised series mixing two inversion times (a TI scout by its headers) is refused as the only series,
    # unless the user picks its images (--inversion-time / --image-type)
    mixed = write_series(nifti, str(tmp_path / "mixed"), description="", inversion_time=300)
    write_series(nifti, str(tmp_path / "mixed"), series_uid=str(pydicom.dcmread(mixed[0]).SeriesInstanceUID),
                 description="", inversion_time=350, names=[f"TI350_{k}.dcm" for k in range(4)])
    with pytest.raises(ReportInputError, match="not an LGE stack.*TI scout"):
        choose_lge_series(str(tmp_path / "mixed"))
    assert choose_lge_series(str(tmp_path / "mixed"), images_chosen=True).uid == \
        str(pydicom.dcmread(mixed[0]).SeriesInstanceUID)


def test_study_names_are_safe_and_unique(export, tmp_path):
    """One patient's two studies get two folders; `../../etc` stays inside OUT_DIR; `P 2` and `P/2` (equal after
    sanitising) and names of cohort files never collide."""
    root, written = export
    names = {s.uid: s.name for s in studies_of(build_index(root, workers=1))}
    out = os.path.realpath(str(tmp_path / "out"))
    for name in names.values():
        target = os.path.realpath(os.path.join(out, name))
        assert os.path.dirname(target) == out and os.sep not in name and name not in (".", "..")
    assert len({n.lower() for n in names.values()}) == len(names) == 6
    assert names[written["p1_first"][0]] != names[written["p1_second"][0]]
    assert names[written["space"][0]] != names[written["slash"][0]]
    assert not {n.lower() for n in names.values()} & {"index.csv", "cohort.csv", "summary.html"}


# ---------------------------------------------------------------- 2. parts
def test_part_assignment_is_stable(export, tmp_path):
    """Each study is in exactly one of N parts, the documented rule (SHA-256 of StudyInstanceUID modulo N, computed
    here with hashlib), and keeps its part when the tree is walked in another order or other studies are removed."""
    root, written = export
    full = studies_of(build_index(root, workers=1))
    for n in (1, 2, 3, 7):
        parts = [{s.uid for s in full if part_of(s.uid, n) == k} for k in range(n)]
        assert sum(len(p) for p in parts) == len(full) and set().union(*parts) == {s.uid for s in full}
        for s in full:
            assert part_of(s.uid, n) == int(hashlib.sha256(s.uid.encode("ascii")).hexdigest(), 16) % n
    other = str(tmp_path / "other")
    shutil.copytree(os.path.join(root, "site_b"), os.path.join(other, "0_first"))  # walked first now
    shutil.copytree(os.path.join(root, "z"), os.path.join(other, "zz"))
    subset = studies_of(build_index(other, workers=1))
    assert len(subset) == 3
    for study in subset:
        assert [part_of(study.uid, 3)] == [part_of(s.uid, 3) for s in full if s.uid == study.uid]


# ---------------------------------------------------------------- runs: bad input, parts, merge
def test_single_run_reports_every_study_apart(reference, cohort):
    """The unreadable study is a failure row and the others are reported; P1's two studies have their own
    folders and reports; `../../etc` is written inside OUT_DIR; the index and the completion markers are there."""
    root, written = cohort
    rows = {r["study_uid"]: r for r in read_rows(os.path.join(reference, "cohort.csv"))}
    assert set(rows) == {uid for uid, _ in written.values()}
    broken = rows[written["broken"][0]]
    assert broken["status"] == "failed" and "pixel data" in broken["error"] and "IM0000.dcm" in broken["error"]
    for label in ("p1_first", "p1_second", "traversal"):
        row = rows[written[label][0]]
        assert row["status"] == "ok" and row["series_uid"] == written[label][1], label
        report = json.load(open(os.path.join(reference, row["report_html"].replace(".html", ".json"))))
        assert report["identifiers"]["StudyInstanceUID"] == row["study_uid"]
        assert report["identifiers"]["SeriesInstanceUID"] == written[label][1]
        assert os.path.realpath(os.path.join(reference, row["report_html"])).startswith(os.path.realpath(reference))
    assert rows[written["p1_first"][0]]["study"] != rows[written["p1_second"][0]]["study"]
    assert sorted(os.listdir(reference)) == sorted(
        [".scarnet-cohort", ".scarnet-lock", ".scarnet-output", "cohort.csv", "index.csv", "index_skipped.csv",
         "run_timings.json", "timings.csv"] + [r["study"] for r in rows.values() if r["status"] == "ok"])
    # the per-stage seconds of every study this run did: all four stages for a reported study, none after the
    # stage that failed for the unreadable one
    timings = {r["study"]: r for r in read_rows(os.path.join(reference, "timings.csv"))}
    assert set(timings) == {r["study"] for r in rows.values()}
    stages = ("reading_s", "prediction_s", "quantification_s", "writing_s")
    for name, row in timings.items():
        ok = {r["study"]: r for r in rows.values()}[name]["status"] == "ok"
        assert row["status"] == ("ok" if ok else "failed")
        assert all((float(row[k]) >= 0) if ok else row[k] == "" for k in stages), row
    run = json.load(open(os.path.join(reference, "run_timings.json")))
    assert run["index_s"] > 0 and run["index_from"] == "scan" and run["model_loading_s"] > 0
    assert not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(reference)), "etc"))


def comparable(rows):
    """Rows without the part number (a split changes it), sorted by study."""
    return sorted(({k: v for k, v in r.items() if k != "part"} for r in rows), key=lambda r: r["study"])


def test_parts_merge_to_the_single_run(reference, cohort, model, tmp_path):
    """Two parts (two runs, each loading the model once) merged: the merged cohort.csv equals the single run's,
    row for row; the summary links every report; merging refuses a missing part and a study in two parts."""
    root, _ = cohort
    parts = [str(tmp_path / f"part{k}") for k in range(2)]
    for k, part in enumerate(parts):
        main(report_args(root, model, part, "--num-parts", "2", "--part-id", str(k)))
    sizes = [len(read_rows(os.path.join(p, "cohort.csv"))) for p in parts]
    assert sum(sizes) == 4 and all(r["part"] == str(k) for k, p in enumerate(parts)
                                   for r in read_rows(os.path.join(p, "cohort.csv")))
    merged, single = str(tmp_path / "merged"), str(tmp_path / "single")
    assert main(["cohort", "merge", *parts, merged]) == 0
    assert main(["cohort", "merge", reference, single]) == 0
    merged_rows, single_rows = read_rows(os.path.join(merged, "cohort.csv")), read_rows(
        os.path.join(single, "cohort.csv"))
    for rows, out in ((merged_rows, merged), (single_rows, single)):
        for row in rows:  # links resolve from the merged folder; then compared by the report they name
            assert not row["report_html"] or os.path.isfile(os.path.join(out, row["report_html"]))
            row["report_html"] = os.path.basename(row["report_html"])
    assert comparable(merged_rows) == comparable(single_rows)
    page = open(os.path.join(merged, "summary.html")).read()
    links = re.findall(r"href='([^']+)'", page)
    assert sorted(set(links)) == sorted(os.path.relpath(os.path.join(p, r["study"], r["study"] + "_report.html"),
                                                        merged) for p in parts
                                        for r in read_rows(os.path.join(p, "cohort.csv")) if r["status"] == "ok")
    assert "cannot decode the pixel data" in page and "nnUNetTrainer" in page and page.count("<img ") == 3


def test_merge_refuses_incomplete_or_overlapping_parts(reference, tmp_path, capsys):
    """A part given twice (a copy beside it), a part without cohort.csv (killed) are refused with one line."""
    copy = str(tmp_path / "copy")
    shutil.copytree(reference, copy)
    assert main(["cohort", "merge", reference, copy, str(tmp_path / "m1")]) == 2
    err = capsys.readouterr().err
    assert "part 0 of 1 given twice" in err and "different study indexes" not in err
    state = json.load(open(os.path.join(copy, ".scarnet-cohort")))
    state.update(num_parts=2)
    json.dump(state, open(os.path.join(copy, ".scarnet-cohort"), "w"))
    os.remove(os.path.join(copy, "cohort.csv"))
    assert main(["cohort", "merge", copy, str(tmp_path / "m2")]) == 2
    assert "part 0 of 2 is not complete" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "m1") and not os.path.exists(tmp_path / "m2")


def test_summary_in_chromium(reference, tmp_path):
    """The summary renders in headless Chromium with its three histograms: their coloured bars (thousands of
    saturated pixels) are absent from the same page without its images."""
    from test_report import coloured_pixels, screenshot

    out = str(tmp_path / "merged")
    assert main(["cohort", "merge", reference, out]) == 0
    page = os.path.join(out, "summary.html")
    stripped = str(tmp_path / "stripped.html")
    with open(stripped, "w") as f:
        f.write(re.sub(r"<img [^>]*>", "", open(page).read()))
    with_images, without = screenshot(page, str(tmp_path / "a.png")), screenshot(stripped, str(tmp_path / "b.png"))
    assert coloured_pixels(with_images) > coloured_pixels(without) + 3 * 1000


def test_orientation_review_is_a_column_and_is_counted(tmp_path):
    """Issue 23: a study whose orientation needs review (P001, P076, N012 read this way) was listed as 'without a
    flag'. Three hand-written report.json: one ok without flags, one 'needs review' written before the review was
    a QC flag (its qc_flags empty), one 'not determined'. Their cohort rows carry the state and the reasons in
    columns of their own, the review is counted as a QC flag, and the summary counts 1 study of each state and
    1 without any flag; the merge's verification rebuilds the same columns from report.json."""
    from nnunetv2_scarnet.report.cohort_html import render_summary
    from nnunetv2_scarnet.report.cohort_index import Study
    from nnunetv2_scarnet.report.cohort_run import ROW_FIELDS, study_row, write_rows

    def report(state, **orientation):
        return {"volumes": {"myocardium_ml": 100.0, "scar_ml": 10.0}, "qc_flags": [],
                "orientation": {"state": state, **orientation}, "aha_status": state}
    reports = {"A_ok": report("ok"),
               "B_review": report("needs review", review_reasons=["septum 66 deg from the standard display's"]),
               "C_undetermined": report("not determined", not_determined=["slice order"])}
    rows = [study_row(Study(name, f"1.2.{k}", name, "20200101", chosen={"series_uid": f"1.3.{k}"}), 0, None,
                      reports[name]) for k, name in enumerate(sorted(reports))]
    by_name = {r["study"]: r for r in rows}
    assert "orientation_state" in ROW_FIELDS and "review" in ROW_FIELDS
    assert [by_name[n]["orientation_state"] for n in sorted(reports)] == ["ok", "needs review", "not determined"]
    assert by_name["A_ok"]["review"] == "" and by_name["A_ok"]["n_qc_flags"] == 0
    assert by_name["B_review"]["review"] == "septum 66 deg from the standard display's"
    assert by_name["B_review"]["qc_flags"] == "orientation_review" and by_name["B_review"]["n_qc_flags"] == 1
    assert by_name["C_undetermined"]["review"] == "slice order"
    assert by_name["C_undetermined"]["qc_flags"] == "orientation_not_determined"
    write_rows(str(tmp_path / "cohort.csv"), rows)
    assert [r["review"] for r in read_rows(str(tmp_path / "cohort.csv"))] == ["", by_name["B_review"]["review"],
                                                                               "slice order"]
    page = render_summary(rows, {}, ["part"])
    counts = dict(re.findall(r"<tr><td>([^<]+)</td><td class='num'>(\d+)</td></tr>", page))
    assert counts["orientation ok"] == counts["orientation needs review"] == \
        counts["orientation not determined"] == "1"
    assert counts["reported without any QC flag or orientation review"] == "1"
    assert "1 reported studies without a flag" in page


# ---------------------------------------------------------------- 3. resume
def run_and_kill(args, out, delay):
    """`scarnet` in a subprocess, SIGKILLed `delay` seconds after it took OUT_DIR's lock (its work began: the
    startup time of a loaded machine does not matter), unless it finished first."""
    process = subprocess.Popen([sys.executable, "-m", "nnunetv2_scarnet.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    lock, deadline = os.path.join(out, ".scarnet-lock"), time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if os.path.isfile(lock) and open(lock).read().strip() == f"process {process.pid}":
            break
        time.sleep(0.05)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def complete_studies(out):
    if not os.path.isdir(out):
        return {}
    return {n: os.stat(os.path.join(out, n)).st_ino for n in os.listdir(out)
            if os.path.isfile(os.path.join(out, n, ".scarnet-report"))}


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_csv(reference, cohort, model, tmp_path):
    """Runs SIGKILLed at seeded random moments, then rerun with the same arguments: the studies completed before
    are kept (same folders), cut-off ones are redone, and cohort.csv equals the uninterrupted run's row for row."""
    out = str(tmp_path / "out")
    args = report_args(cohort[0], model, out)
    rng = random.Random(16)
    kept, states = {}, []
    for delay in (rng.uniform(3.0, 14.0) for _ in range(3)):
        run_and_kill(args, out, delay)
        done = complete_studies(out)
        assert all(done.get(name) == inode for name, inode in kept.items())  # resumed runs keep finished studies
        kept = done
        states.append((round(delay, 1), len(done), len([n for n in os.listdir(out) if n.endswith(".partial")])
                       if os.path.isdir(out) else None))
    print("kills (delay s, complete studies, partial folders):", states)
    assert main(args) == 1  # resume: the unreadable study fails again
    assert read_rows(os.path.join(out, "cohort.csv")) == read_rows(os.path.join(reference, "cohort.csv"))
    after = complete_studies(out)
    assert all(after[name] == inode for name, inode in kept.items())  # complete studies were not redone
    assert not [n for n in os.listdir(out) if n.endswith(".partial")]


def test_overwrite_redoes_everything_and_resume_refuses_another_part(reference, cohort, model, tmp_path, capsys):
    """--overwrite replaces every study folder; a rerun into a part folder with another --part-id is refused."""
    out = str(tmp_path / "out")
    shutil.copytree(reference, out)
    before = complete_studies(out)
    assert main(report_args(cohort[0], model, out, "--num-parts", "2", "--part-id", "1")) == 2
    assert "another number of parts" in capsys.readouterr().err
    assert complete_studies(out) == before
    assert main(report_args(cohort[0], model, out, "--overwrite")) == 1
    after = complete_studies(out)
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    assert read_rows(os.path.join(out, "cohort.csv")) == read_rows(os.path.join(reference, "cohort.csv"))


def test_seg_objects_in_the_export_and_out_dir_inside_it(reference, cohort, model, tmp_path, capsys):
    """A DICOM SEG lying in a study folder (an export with earlier results) is not a series of the study; an
    OUT_DIR inside the export root (its own outputs would be indexed) is refused before anything is written."""
    root, written = cohort
    export = str(tmp_path / "export")
    shutil.copytree(root, export)
    row = [r for r in read_rows(os.path.join(reference, "cohort.csv")) if r["status"] == "ok"][0]
    seg = os.path.join(reference, row["study"], f"{row['study']}_seg.dcm")
    assert pydicom.dcmread(seg).StudyInstanceUID == row["study_uid"]
    shutil.copy(seg, os.path.join(export, "a", "seg.dcm"))
    study = [s for s in studies_of(build_index(export, workers=1)) if s.uid == row["study_uid"]][0]
    assert len(study.series) == 1 + (row["study_uid"] == written["p1_first"][0])  # LGE (+ cine), never the SEG
    assert main(report_args(export, model, os.path.join(export, "out"))) == 2
    assert "inside the export root" in capsys.readouterr().err and not os.path.exists(os.path.join(export, "out"))


def test_cohort_refuses_one_series_options(cohort, model, tmp_path, capsys):
    """--inversion-time / --image-type pick images of one series: refused for a cohort (several patients), with
    nothing written."""
    out = str(tmp_path / "out")
    assert main(report_args(cohort[0], model, out, "--inversion-time", "300")) == 2
    assert "run without them" in capsys.readouterr().err and not os.path.exists(out)
