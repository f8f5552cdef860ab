"""Cohorts attacked (issue 20, items 2, 3, 5, 6, 10, 12): one cohort is one model, no patient is lost, merge
verifies what it merges.

Every attack is made here by hand, as a user, a copy tool or a tamperer would: another `--dataset-json` or
replaced weights between a kill and the resume, two patients under one StudyInstanceUID, a study without one,
part files edited with the csv / json modules, folders swapped for links. The expected answers come from the
attack itself (the hashes are computed here with hashlib, the part of a study with the documented SHA-256 rule).

The export: phantom LGE stacks written as DICOM (`dicom_helpers.write_series`) with StudyInstanceUIDs picked so
that every study lies in part 0 of 2 (part 1 is empty and cheap to run); the model is the cheap random-weight
nnU-Net folder (`report_helpers.build_model_folder`)."""
import csv
import hashlib
import json
import os
import shutil
from importlib.metadata import version

import pydicom
import pytest
import torch

from dicom_helpers import set_tags, write_series
from report_helpers import EMIDEC_LABELS, build_model_folder
from test_cohort import phantom
from test_hostile_files import deadline

from nnunetv2_scarnet.cli import main

ROOT_UID = "1.2.826.0.1.3680043.10.543.20."


def uid_in_part(part, parts, start):
    """The first UID `ROOT_UID<k>` (k >= start) whose SHA-256 modulo `parts` is `part` (the documented rule)."""
    k = start
    while int(hashlib.sha256(f"{ROOT_UID}{k}".encode()).hexdigest(), 16) % parts != part:
        k += 1
    return f"{ROOT_UID}{k}"


def lge_study(nifti, folder, study_uid, patient_id, series_uid=None):
    """One study: a 4-slice LGE series with this StudyInstanceUID and PatientID. Returns the files."""
    files = write_series(nifti, folder, study_uid=study_uid, series_uid=series_uid, description="LGE PSIR SAX",
                         inversion_time=300)
    set_tags(files, PatientID=patient_id, PatientName=f"{patient_id}^Test", StudyDate="20200101")
    return files


def report_args(root, model, out, *extra):
    return ["report", root, "--model", model, out, "--device", "cpu", "--disable-mirroring", *extra]


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path, rows, fields=None):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def one_line(err):
    """The error line of a refused command (progress bars redraw with carriage returns before it)."""
    lines = [line.split("\r")[-1] for line in err.strip().splitlines()]
    assert "Traceback" not in err, err
    return lines[-1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("hostile_model") / "nnUNetTrainer__nnUNetPlans__2d")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Studies A and B (reported) and C (pixel data cut short: a failure row), all in part 0 of 2."""
    tmp = tmp_path_factory.mktemp("hostile_export")
    nifti = phantom(str(tmp / "phantom.nii.gz"))
    root = str(tmp / "export")
    uids = {}
    start = 0
    for label in ("A", "B", "C"):
        uids[label] = uid_in_part(0, 2, start)
        start = int(uids[label].rsplit(".", 1)[1]) + 1
        files = lge_study(nifti, os.path.join(root, label), uids[label], f"P{label}")
    for path in files:  # C: header intact, pixel data cut short
        ds = pydicom.dcmread(path)
        ds.PixelData = ds.PixelData[:100]
        ds.save_as(path)
    return root, uids


@pytest.fixture(scope="module")
def parts(export, model, tmp_path_factory):
    """Parts 0 (A, B reported, C failed) and 1 (no study) of 2, run with the same model and options."""
    base = tmp_path_factory.mktemp("hostile_parts")
    out = [str(base / f"part{k}") for k in range(2)]
    assert main(report_args(export[0], model, out[0], "--num-parts", "2", "--part-id", "0")) == 1
    assert main(report_args(export[0], model, out[1], "--num-parts", "2", "--part-id", "1")) == 0
    rows = read_rows(os.path.join(out[0], "cohort.csv"))
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok"] and not read_rows(
        os.path.join(out[1], "cohort.csv"))
    return out


def killed_copy(part, tmp_path, drop):
    """A copy of a complete part as a SIGKILL between two studies leaves it: no cohort.csv, study `drop` not
    written yet. Returns (copy, {complete study: inode})."""
    out = str(tmp_path / "resumed")
    shutil.copytree(part, out, symlinks=True)
    os.remove(os.path.join(out, "cohort.csv"))
    shutil.rmtree(os.path.join(out, drop))
    kept = {n: os.stat(os.path.join(out, n)).st_ino for n in os.listdir(out)
            if os.path.isfile(os.path.join(out, n, ".scarnet-report"))}
    return out, kept


def ok_names(part):
    return sorted(r["study"] for r in read_rows(os.path.join(part, "cohort.csv")) if r["status"] == "ok")


# ---------------------------------------------------------------- item 2: another label map on resume
def test_resume_with_another_label_map_is_refused(export, model, parts, tmp_path, capsys):
    """Killed, then rerun with a --dataset-json that swaps myocardium and scar: refused (exit 2), the message
    names the label map with the stored and the new values (scar was 3 and 4, would be 2 and 4), the part folder
    is untouched. The same label map
    given explicitly (another file, equal values) resumes to the uninterrupted part's cohort.csv."""
    first, second = ok_names(parts[0])
    out, kept = killed_copy(parts[0], tmp_path, second)
    swapped = str(tmp_path / "swapped.json")
    with open(swapped, "w") as f:
        json.dump({"labels": {"background": 0, "blood_pool": 1, "myocardium": 3, "scar": 2, "mvo": 4}}, f)
    args = report_args(export[0], model, out, "--num-parts", "2", "--part-id", "0")
    assert main(args + ["--dataset-json", swapped]) == 2
    line = one_line(capsys.readouterr().err)
    assert out in line and "label map" in line and "scar" in line and "[3, 4]" in line and "[2, 4]" in line, line
    assert not os.path.exists(os.path.join(out, "cohort.csv")) and not os.path.exists(os.path.join(out, second))
    assert {n: os.stat(os.path.join(out, n)).st_ino for n in kept} == kept
    same = str(tmp_path / "same.json")
    with open(same, "w") as f:
        json.dump({"labels": EMIDEC_LABELS}, f)
    assert main(args + ["--dataset-json", same]) == 1  # C fails again
    assert read_rows(os.path.join(out, "cohort.csv")) == read_rows(os.path.join(parts[0], "cohort.csv"))
    assert os.stat(os.path.join(out, first)).st_ino == kept[first]


# ---------------------------------------------------------------- item 3: other weights in the same folder
@pytest.fixture
def replaced_weights(model):
    """fold_0's checkpoint replaced in place by one with perturbed weights (torch, by hand); restored after.
    Yields (old sha256, new sha256)."""
    path = os.path.join(model, "fold_0", "checkpoint_final.pth")
    original = open(path, "rb").read()
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)  # written by this test module
    generator = torch.Generator().manual_seed(20)
    checkpoint["network_weights"] = {k: v + torch.randn(v.shape, generator=generator) if v.is_floating_point()
                                     else v for k, v in checkpoint["network_weights"].items()}
    torch.save(checkpoint, path)
    try:
        yield hashlib.sha256(original).hexdigest(), sha256(path)
    finally:
        with open(path, "wb") as f:
            f.write(original)


def test_resume_with_replaced_weights_is_refused(export, model, parts, replaced_weights, tmp_path, capsys):
    """Weights replaced inside the same model folder between the kill and the resume: refused, naming the
    checkpoint and both SHA-256 (computed here); nothing of the part changes."""
    old, new = replaced_weights
    first, second = ok_names(parts[0])
    out, kept = killed_copy(parts[0], tmp_path, second)
    assert main(report_args(export[0], model, out, "--num-parts", "2", "--part-id", "0")) == 2
    line = one_line(capsys.readouterr().err)
    assert "fold_0/checkpoint_final.pth" in line and old in line and new in line, line
    assert not os.path.exists(os.path.join(out, second)) and not os.path.exists(os.path.join(out, "cohort.csv"))
    assert {n: os.stat(os.path.join(out, n)).st_ino for n in kept} == kept


def test_merge_of_parts_run_with_other_weights_is_refused(export, model, parts, replaced_weights, tmp_path,
                                                         capsys):
    """Part 1 run after the weights were replaced in the same folder: its merge with part 0 is refused, naming
    the checkpoint; no merged folder is written."""
    old, new = replaced_weights
    other = str(tmp_path / "part1")
    assert main(report_args(export[0], model, other, "--num-parts", "2", "--part-id", "1")) == 0
    merged = str(tmp_path / "merged")
    assert main(["cohort", "merge", parts[0], other, merged]) == 2
    line = one_line(capsys.readouterr().err)
    assert "fold_0/checkpoint_final.pth" in line and old in line and new in line, line
    assert not os.path.exists(merged)


def test_a_study_folder_of_another_model_swapped_into_a_part_is_refused(export, model, parts, replaced_weights,
                                                                      tmp_path, capsys):
    """Study A reported again with the replaced weights (its own folder and manifest, same name and UIDs), and
    that folder swapped into a copy of part 0: the merge refuses it, naming the study folder and the checkpoint."""
    old, new = replaced_weights
    alone = str(tmp_path / "alone")
    shutil.copytree(os.path.join(export[0], "A"), os.path.join(alone, "A"))
    again = str(tmp_path / "again")
    assert main(report_args(alone, model, again, "--cohort")) == 0
    (name,) = [n for n in os.listdir(again) if os.path.isdir(os.path.join(again, n))]
    part = str(tmp_path / "part0")
    shutil.copytree(parts[0], part, symlinks=True)
    assert name in ok_names(part)
    shutil.rmtree(os.path.join(part, name))
    shutil.copytree(os.path.join(again, name), os.path.join(part, name))
    capsys.readouterr()
    assert main(["cohort", "merge", part, parts[1], str(tmp_path / "merged")]) == 2
    line = one_line(capsys.readouterr().err)
    assert os.path.join(part, name) in line and "fold_0/checkpoint_final.pth" in line and new in line, line


def test_resume_under_other_package_versions_is_refused(export, model, parts, tmp_path, capsys, monkeypatch):
    """Another torch version than the one the part was run with: refused naming the package and both versions."""
    from nnunetv2_scarnet.report import run_identity

    first, second = ok_names(parts[0])
    out, _ = killed_copy(parts[0], tmp_path, second)
    real = run_identity.package_versions()
    monkeypatch.setattr(run_identity, "package_versions", lambda: {**real, "torch": "0.1"})
    assert main(report_args(export[0], model, out, "--num-parts", "2", "--part-id", "0")) == 2
    line = one_line(capsys.readouterr().err)
    assert f"torch: {version('torch')} (stored) vs 0.1 (now)" in line, line


# ---------------------------------------------------------------- items 5 and 10: no lost patients
@pytest.fixture(scope="module")
def crowded(model, tmp_path_factory):
    """An export of four folders: X and Y, two patients under one StudyInstanceUID (Y a copy of X's files with
    its own PatientID, as copy tools and test exports make them); W without StudyInstanceUID; Z a normal study.
    Run as one cohort. Returns (root, uids, out, exit code)."""
    tmp = tmp_path_factory.mktemp("crowded")
    nifti = phantom(str(tmp / "phantom.nii.gz"))
    root = str(tmp / "export")
    shared = pydicom.uid.generate_uid()
    x = lge_study(nifti, os.path.join(root, "X"), shared, "PX")
    shutil.copytree(os.path.join(root, "X"), os.path.join(root, "Y"))
    set_tags([os.path.join(root, "Y", os.path.basename(p)) for p in x], PatientID="PY", PatientName="PY^Test")
    w = lge_study(nifti, os.path.join(root, "W"), None, "PW")
    for path in w:
        ds = pydicom.dcmread(path)
        del ds.StudyInstanceUID
        ds.save_as(path)
    z_uid = pydicom.uid.generate_uid()
    lge_study(nifti, os.path.join(root, "Z"), z_uid, "PZ")
    out = str(tmp / "out")
    code = main(report_args(root, model, out))
    return root, {"shared": shared, "Z": z_uid}, out, code


def test_patients_sharing_a_study_uid_are_both_failure_rows(crowded):
    """X and Y (one StudyInstanceUID, two PatientIDs) are two failure rows, each naming the clash and the other
    patient; neither gets a folder; Z is reported; the exit code says a study failed."""
    root, uids, out, code = crowded
    assert code == 1
    rows = read_rows(os.path.join(out, "cohort.csv"))
    by_patient = {r["patient_id"]: r for r in rows}
    assert sorted(by_patient) == ["PW", "PX", "PY", "PZ"] and len(rows) == 4
    for me, other in (("PX", "PY"), ("PY", "PX")):
        row = by_patient[me]
        assert row["status"] == "failed" and row["study_uid"] == uids["shared"], row
        assert "StudyInstanceUID" in row["error"] and other in row["error"] and uids["shared"] in row["error"], row
        assert not os.path.exists(os.path.join(out, row["study"]))
    assert by_patient["PZ"]["status"] == "ok" and by_patient["PZ"]["study_uid"] == uids["Z"]


def test_a_study_uid_clash_between_two_acquisitions_is_found_at_indexing(model, tmp_path, capsys):
    """Two patients whose own series (other SeriesInstanceUIDs) carry one StudyInstanceUID: `cohort index`
    lists two studies, both refused with the clash as the reason, and says so."""
    nifti = phantom(str(tmp_path / "phantom.nii.gz"))
    root = str(tmp_path / "export")
    shared = pydicom.uid.generate_uid()
    lge_study(nifti, os.path.join(root, "one"), shared, "P1")
    lge_study(nifti, os.path.join(root, "two"), shared, "P2")
    index = str(tmp_path / "index.csv")
    assert main(["cohort", "index", root, index]) == 0
    printed = capsys.readouterr().out
    rows = read_rows(index)
    assert sorted({r["patient_id"] for r in rows}) == ["P1", "P2"] and len({r["study"] for r in rows}) == 2
    assert all(r["chosen"] == "no" and shared in r["refused"] and "StudyInstanceUID" in r["refused"] for r in rows)
    assert "2 refused" in printed, printed


def test_one_series_uid_in_two_studies_refuses_both(tmp_path):
    """One SeriesInstanceUID written into two studies (two StudyInstanceUIDs of one patient): both refused at
    indexing, each naming the series and the other study; none is dropped."""
    from nnunetv2_scarnet.report.cohort_index import build_index, studies_of

    nifti = phantom(str(tmp_path / "phantom.nii.gz"))
    root = str(tmp_path / "export")
    series, first, second = (pydicom.uid.generate_uid() for _ in range(3))
    lge_study(nifti, os.path.join(root, "first"), first, "P1", series_uid=series)
    lge_study(nifti, os.path.join(root, "second"), second, "P1", series_uid=series)
    studies = {s.uid: s for s in studies_of(build_index(root, workers=1))}
    assert sorted(studies) == sorted([first, second])
    for me, other in ((first, second), (second, first)):
        assert studies[me].chosen is None and series in studies[me].refused and other in studies[me].refused


def test_a_study_without_study_uid_is_refused_at_indexing(crowded, model, tmp_path, capsys):
    """W has no StudyInstanceUID: its index row says so, its cohort row fails at reading (never predicted, the
    message names W's file and no deleted `.partial` path). A patient folder without it (`scarnet report W`) is
    refused at reading the input too, before any prediction."""
    root, uids, out, code = crowded
    index = read_rows(os.path.join(out, "index.csv"))
    w_index = [r for r in index if r["patient_id"] == "PW"]
    assert len(w_index) == 1 and "StudyInstanceUID" in w_index[0]["refused"]
    row = [r for r in read_rows(os.path.join(out, "cohort.csv")) if r["patient_id"] == "PW"][0]
    assert row["status"] == "failed" and "StudyInstanceUID" in row["error"] and ".partial" not in row["error"]
    assert os.path.join(root, "W") in row["error"], row
    timing = [t for t in read_rows(os.path.join(out, "timings.csv")) if t["study"] == row["study"]]
    assert len(timing) == 1 and timing[0]["prediction_s"] == "", timing
    capsys.readouterr()
    patient_out = str(tmp_path / "patient")
    assert main(report_args(os.path.join(root, "W"), model, patient_out)) == 1
    err = capsys.readouterr().err
    assert "reading the input" in err and "StudyInstanceUID" in err and ".partial" not in err, err
    assert os.path.join(root, "W") in err


# ---------------------------------------------------------------- item 6: merge verifies
def tamper_csv(part, edit):
    path = os.path.join(part, "cohort.csv")
    rows = read_rows(path)
    edit(rows)
    write_rows(path, rows, list(rows[0]))


def first_ok(rows):
    return [r for r in rows if r["status"] == "ok"][0]


def scar_to_zero(part):
    tamper_csv(part, lambda rows: first_ok(rows).update(scar_ml="0", scar_g="0", scar_pct_lvm="0"))
    return "scar_ml"


def flags_cleared(part):
    def edit(rows):
        flagged = [r for r in rows if r["status"] == "ok" and r["n_qc_flags"] != "0"]
        assert flagged, "the random-weight model's reports carry QC flags"
        flagged[0].update(n_qc_flags="0", qc_flags="")
    tamper_csv(part, edit)
    return "qc_flags"


def study_not_in_index(part):
    def edit(rows):
        rows.append(dict(first_ok(rows), study="INVENTED_20200101", patient_id="INVENTED",
                         study_uid="1.2.3.4.5"))
    tamper_csv(part, edit)
    return "INVENTED_20200101"


def link_out_of_the_part(part):
    tamper_csv(part, lambda rows: first_ok(rows).update(report_html="../../../../etc/passwd"))
    return "report_html"


def report_json_and_csv_edited(part):
    """The report's numbers and the CSV changed consistently (the tamperer edits both)."""
    rows = read_rows(os.path.join(part, "cohort.csv"))
    name = first_ok(rows)["study"]
    path = os.path.join(part, name, f"{name}_report.json")
    report = json.load(open(path))
    report["volumes"]["scar_ml"] = 0.0
    json.dump(report, open(path, "w"))
    tamper_csv(part, lambda rows: [r.update(scar_ml="0.0") for r in rows if r["study"] == name])
    return f"{name}_report.json"


def study_folder_linked_outside(part):
    """A study folder replaced by a link to a copy outside the part (an edited report there)."""
    name = ok_names(part)[0]
    outside = os.path.join(os.path.dirname(part), "outside")
    shutil.move(os.path.join(part, name), outside)
    os.symlink(outside, os.path.join(part, name))
    return "outside the part folder"


def index_edited(part):
    """A study removed from the part's index.csv (its digest no longer matches the part's state)."""
    path = os.path.join(part, "index.csv")
    rows = read_rows(path)
    keep = ok_names(part)[0]
    write_rows(path, [r for r in rows if r["study"] != keep], list(rows[0]))
    return "index.csv"


TAMPERS = {"scar_set_to_zero": scar_to_zero, "qc_flags_cleared": flags_cleared,
           "study_not_in_the_index": study_not_in_index, "report_html_leaves_the_part": link_out_of_the_part,
           "report_json_and_csv_edited_together": report_json_and_csv_edited,
           "study_folder_is_a_link_outside": study_folder_linked_outside, "index_csv_edited": index_edited}


@pytest.mark.parametrize("attack", sorted(TAMPERS))
def test_merge_refuses_a_tampered_part(parts, tmp_path, capsys, attack):
    """Each tampering of part 0 is refused by merge with one line naming the part and what was changed; no
    merged folder is written. The untampered parts merge, their rows read from the reports."""
    part = str(tmp_path / "work" / "part0")
    shutil.copytree(parts[0], part, symlinks=True)
    what = TAMPERS[attack](part)
    merged = str(tmp_path / "merged")
    assert main(["cohort", "merge", part, parts[1], merged]) == 2
    line = one_line(capsys.readouterr().err)
    assert part in line and what in line, line
    assert not os.path.exists(merged)


def test_merged_rows_come_from_the_reports(parts, tmp_path):
    """The merged row of each reported study holds the numbers of its report.json (read here with json) and a
    link that resolves to that study's report inside its part."""
    merged = str(tmp_path / "merged")
    assert main(["cohort", "merge", *parts, merged]) == 0
    rows = read_rows(os.path.join(merged, "cohort.csv"))
    assert len(rows) == 3
    for row in rows:
        if row["status"] != "ok":
            assert row["report_html"] == "" and row["error"]
            continue
        report = json.load(open(os.path.join(parts[0], row["study"], f"{row['study']}_report.json")))
        assert float(row["scar_ml"]) == report["volumes"]["scar_ml"]
        assert row["qc_flags"].split() == [f["code"] for f in report["qc_flags"]]
        target = os.path.realpath(os.path.join(merged, row["report_html"]))
        assert target == os.path.realpath(os.path.join(parts[0], row["study"], f"{row['study']}_report.html"))


# ---------------------------------------------------------------- item 12: merge errors name the file
def test_a_part_given_twice_is_named_as_such(parts, tmp_path, capsys):
    """The same folder twice, and a copy of part 0 beside part 0: "given twice", never "the export changed"."""
    assert main(["cohort", "merge", parts[0], parts[0], parts[1], str(tmp_path / "m1")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "given twice" in line and parts[0] in line and "export changed" not in line, line
    copy = str(tmp_path / "copy")
    shutil.copytree(parts[0], copy, symlinks=True)
    assert main(["cohort", "merge", parts[0], copy, parts[1], str(tmp_path / "m2")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "part 0 of 2" in line and "given twice" in line and copy in line and "export changed" not in line, line
    assert not os.path.exists(tmp_path / "m1") and not os.path.exists(tmp_path / "m2")


def drop_column(part):
    path = os.path.join(part, "cohort.csv")
    rows = read_rows(path)
    fields = [k for k in rows[0] if k != "scar_ml"]
    write_rows(path, [{k: r[k] for k in fields} for r in rows], fields)
    return path, "scar_ml"


def marker_without_part_id(part):
    path = os.path.join(part, ".scarnet-cohort")
    state = json.load(open(path))
    del state["part_id"]
    json.dump(state, open(path, "w"))
    return path, "part_id"


def marker_not_json(part):
    path = os.path.join(part, ".scarnet-cohort")
    with open(path, "w") as f:
        f.write("{not json")
    return path, "JSON"


def binary_csv(part):
    path = os.path.join(part, "cohort.csv")
    with open(path, "wb") as f:
        f.write(bytes(range(256)) * 4)
    return path, "cohort.csv"


BROKEN = {"csv_missing_a_column": drop_column, "marker_without_part_id": marker_without_part_id,
          "marker_not_json": marker_not_json, "binary_csv": binary_csv}


@pytest.mark.parametrize("attack", sorted(BROKEN))
def test_merge_errors_are_one_line_naming_the_file(parts, tmp_path, capsys, attack):
    part = str(tmp_path / "part0")
    shutil.copytree(parts[0], part, symlinks=True)
    path, what = BROKEN[attack](part)
    assert main(["cohort", "merge", part, parts[1], str(tmp_path / "merged")]) == 2
    err = capsys.readouterr().err
    line = one_line(err)
    assert len(err.strip().splitlines()) == 1 and path in line and what in line, err
    assert not os.path.exists(tmp_path / "merged")


def fifo_for(path):
    """Replace the file at `path` by a FIFO of the same name (opening it for reading blocks until a writer comes)."""
    os.remove(path)
    os.mkfifo(path)
    return path


def test_a_fifo_in_a_part_hangs_neither_merge_nor_resume(export, model, parts, tmp_path, capsys):
    """A study's report page, or the part's index.csv, replaced by a FIFO (os.mkfifo, by hand): the checksum check
    of merge and resume opened it and waited forever. Now refused in one line naming the entry."""
    part = str(tmp_path / "part0")
    shutil.copytree(parts[0], part, symlinks=True)
    name = ok_names(part)[0]
    page = fifo_for(os.path.join(part, name, f"{name}_report.html"))
    capsys.readouterr()
    with deadline(60):
        code = main(["cohort", "merge", part, parts[1], str(tmp_path / "merged")])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and page in line and "not a regular file" in line, line
    with deadline(300):  # the resume loads the model first
        code = main(report_args(export[0], model, part, "--num-parts", "2", "--part-id", "0"))
    line = one_line(capsys.readouterr().err)
    assert code == 2 and page in line and "not a regular file" in line, line
    assert not os.path.exists(tmp_path / "merged") and os.path.isfile(os.path.join(part, "cohort.csv"))  # untouched
    other = str(tmp_path / "other0")
    shutil.copytree(parts[0], other, symlinks=True)
    index = fifo_for(os.path.join(other, "index.csv"))
    with deadline(60):
        code = main(["cohort", "merge", other, parts[1], str(tmp_path / "merged")])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and index in line and "not a regular file" in line, line
    assert not os.path.exists(tmp_path / "merged")


def test_an_index_with_an_unsafe_study_name_is_refused(export, model, tmp_path, capsys):
    """An index given with --index whose study name was edited to `../../evil` (csv module, by hand): refused
    naming the index and the name, before anything is written (study folders are made from these names)."""
    index = str(tmp_path / "index.csv")
    assert main(["cohort", "index", export[0], index]) == 0
    rows = read_rows(index)
    victim = rows[0]["study"]
    for row in rows:
        if row["study"] == victim:
            row["study"] = "../../evil"
    write_rows(index, rows, list(rows[0]))
    capsys.readouterr()
    out = str(tmp_path / "out")
    assert main(report_args(export[0], model, out, "--index", index)) == 2
    line = one_line(capsys.readouterr().err)
    assert index in line and "'../../evil'" in line, line
    assert not os.path.exists(out) and not os.path.exists(tmp_path.parent / "evil")
