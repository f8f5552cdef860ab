"""Cohort end to end and throughput (issue 16): a synthetic DICOM cohort through `scarnet report EXPORT_ROOT`.

    PYTHONPATH=src python benchmarks/cohort_throughput.py --cases ../shared/data/emidec_dev/cases \
        --work /tmp/cohort_bench --out docs/results/cohort_cpu_2026-11-27 [--studies 200] \
        [--runs cheap:10 cheap:200 tiny:10 lite:10] [--parts-model cheap]

1. Models: the real stock commands on the development patients (`nnUNetv2_plan_and_preprocess`, `nnUNetv2_train
   ... -tr ScarNetTrainerTiny_smoke` and `ScarNetTrainerLiteHybrid_smoke`, CPU): a few iterations each, since only
   the speed of the cohort pipeline is measured here, not accuracy. Reused from WORK when present.
2. Export trees (`write_cohort`): every study gets new UIDs; its LGE series is one of the 62 development patients
   (every tenth study a phantom ring) written as DICOM slices with real geometry, half the studies with a cine
   series beside it, three folder levels, a README per site. Broken on purpose (every 20th study, in turn): pixel
   data cut short, PixelSpacing removed, a study with a cine series only (no LGE). Every 25th study is a second
   study of the previous patient; two patient names need sanitising (`../../etc`, `P/2`).
3. Runs (each `python -m nnunetv2_scarnet.cli report ROOT --model M OUT --device cpu`, default options, mirroring
   on), under `/usr/bin/time` for the peak resident memory of the largest process:
   - uninterrupted runs `--runs MODEL:STUDIES` on a tree of STUDIES studies (the same generator as the whole
     tree, so its first STUDIES studies, with new UIDs): `cheap` (the tests'
     3-stage stock network with random weights: the pipeline's own cost, prediction nearly free), `tiny` and
     `lite` (the trained models of step 1);
   - the whole tree as 3 parts in 3 concurrent processes from one index (`scarnet cohort index`, model
     `--parts-model`, `--part-threads` threads each, as a scheduler gives each array task its own cores), part 1 killed (SIGKILL) at a seeded random moment and rerun to resume; the parts merged
     (`scarnet cohort merge`) and the merged cohort.csv compared row for row with the uninterrupted run's of the
     same model (the part number aside);
   - the merged summary.html rendered by headless Chromium (screenshot; its coloured histogram bars counted).
4. Writes OUT.json (every number) and OUT.md (the tables), and OUT_summary.png (the Chromium screenshot).
"""
import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np
import pydicom

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))  # the tests' DICOM writer (real geometry from a NIfTI affine)
from dicom_helpers import write_series  # noqa: E402

DATASET_ID, DATASET = 510, "Dataset510_EMIDECcohort"
TRAINERS = {"tiny": "ScarNetTrainerTiny_smoke", "lite": "ScarNetTrainerLiteHybrid_smoke"}
#: the cheapest real model folder: a small stock PlainConvUNet (3 stages, patch 32), random weights (the tests')
CHEAP = "nnUNetTrainer (3-stage test network)"
BREAKAGES = ("pixel data cut short", "no PixelSpacing", "cine series only")
STAGES = ("reading", "prediction", "quantification", "writing")


def nnunet_env(work: str) -> Dict[str, str]:
    return dict(os.environ, nnUNet_raw=os.path.join(work, "raw"), nnUNet_preprocessed=os.path.join(work, "pre"),
                nnUNet_results=os.path.join(work, "results"), nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1",
                PYTHONPATH=os.path.join(REPO, "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


def train_models(cases: str, work: str) -> Dict[str, str]:
    """Model folders of the tiny and the Lite hybrid network, trained by the stock commands (module doc, step 1)."""
    from nnunetv2_scarnet.data.emidec import convert_emidec

    env = nnunet_env(work)
    folders = {k: os.path.join(work, "results", DATASET, f"{t}__nnUNetPlans__2d") for k, t in TRAINERS.items()}
    if all(os.path.isfile(os.path.join(f, "fold_0", "checkpoint_final.pth")) for f in folders.values()):
        return folders
    convert_emidec(cases, env["nnUNet_raw"], DATASET_ID, "EMIDECcohort", overwrite=True)
    subprocess.run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "2"],
                   env=dict(env, nnUNet_n_proc_DA="2"), check=True, stdout=subprocess.DEVNULL)
    for trainer in TRAINERS.values():
        subprocess.run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", "cpu"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
    return folders


def write_cohort(cases: str, root: str, n_studies: int, seed: int = 0) -> Dict[str, List[str]]:
    """The synthetic export tree (module doc, step 2); returns the study labels by kind."""
    import nibabel as nib

    rng = random.Random(seed)
    names = sorted(os.listdir(cases))
    phantom_path = os.path.join(os.path.dirname(root), "phantom.nii.gz")
    if not os.path.isfile(phantom_path):
        ii, jj = np.meshgrid(np.arange(160), np.arange(160), indexing="ij")
        radius, angle = np.hypot(ii - 80, jj - 80) * 1.5, np.degrees(np.arctan2(jj - 80, ii - 80)) % 360
        plane = np.full((160, 160), 1950.0)
        plane[radius < 20] = 2600
        plane[(radius >= 20) & (radius < 30)] = 2100
        plane[(radius >= 20) & (radius < 30) & (angle < 60)] = 3000
        data = np.repeat(plane[..., None], 8, axis=2).astype(np.int16)
        nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 10.0, 1.0])), phantom_path)
    kinds: Dict[str, List[str]] = {"broken": [], "phantom": [], "second_study": [], "unsafe_name": []}
    patient = None
    for i in range(n_studies):
        second = i % 25 == 24 and patient is not None
        patient = patient if second else f"P{i:04d}"
        name = {7: "../../etc", 13: "P/2"}.get(i, f"{patient}^Synthetic")
        label = f"study{i:04d}"
        source = phantom_path if i % 10 == 4 else os.path.join(cases, names[i % len(names)], "image.nii.gz")
        folder = os.path.join(root, f"site{i % 3}", patient, f"study{i:04d}")
        study_uid, date = pydicom.uid.generate_uid(), f"{2015 + i % 10}0{1 + i % 9}1{i % 10}"
        breakage = BREAKAGES[(i // 20) % len(BREAKAGES)] if i % 20 == 19 else None

        def edit(ds, k, breakage=breakage):
            ds.PatientID, ds.PatientName, ds.StudyDate = patient, name, date
            if breakage == "pixel data cut short":
                ds.PixelData = ds.PixelData[:100]
            elif breakage == "no PixelSpacing":
                del ds.PixelSpacing

        if breakage != "cine series only":
            write_series(source, os.path.join(folder, "lge"), study_uid=study_uid, description="LGE PSIR SAX",
                         inversion_time=300, edit=edit)
        if breakage == "cine series only" or rng.random() < 0.5:
            write_series(source, os.path.join(folder, "cine"), study_uid=study_uid, description="CINE SAX",
                         slices=[0], edit=edit)
        for kind, member in (("broken", breakage), ("phantom", i % 10 == 4), ("second_study", second),
                             ("unsafe_name", i in (7, 13))):
            if member:
                kinds[kind].append(label)
    for site in range(min(3, n_studies)):
        with open(os.path.join(root, f"site{site}", "README.txt"), "w") as f:
            f.write("export notes, not DICOM\n")
    return kinds


def timed(cmd: List[str], env: Dict[str, str], log: str) -> Dict:
    """Run `cmd` under /usr/bin/time: wall seconds, peak RSS (GiB) of its largest process, exit status."""
    start = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd], env=env, stdout=f,
                              stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    rss = [ln for ln in open(log) if ln.startswith("MAXRSS_KB")]
    return {"wall_s": wall, "peak_rss_gib": int(rss[-1].split()[1]) / 2 ** 20 if rss else None,
            "exit_status": done.returncode, "log": log}


def report_cmd(root: str, model: str, out: str, *extra: str) -> List[str]:
    return [sys.executable, "-m", "nnunetv2_scarnet.cli", "report", root, "--model", model, out, "--device", "cpu",
            *extra]


def stage_split(out_dirs: List[str]) -> Dict:
    """Median seconds per stage over the reported studies of the given part folders, and the run-level costs."""
    rows = []
    for out in out_dirs:
        with open(os.path.join(out, "timings.csv"), newline="") as f:
            rows += [r for r in csv.DictReader(f) if r["status"] == "ok"]
    split = {s: float(np.median([float(r[f"{s}_s"]) for r in rows])) for s in STAGES}
    runs = [json.load(open(os.path.join(out, "run_timings.json"))) for out in out_dirs]
    split.update(n_timed=len(rows), index_s=sum(r["index_s"] for r in runs),
                 model_loading_s=sum(r["model_loading_s"] for r in runs))
    return split


def read_rows(path: str) -> List[Dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def comparable(rows: List[Dict]) -> List[Dict]:
    """Rows without the part number, with the report link reduced to its file name, sorted by study."""
    return sorted(({**{k: v for k, v in r.items() if k != "part"}, "report_html": os.path.basename(r["report_html"])}
                   for r in rows), key=lambda r: r["study"])


def run_parts(root: str, model: str, work: str, env: Dict[str, str], kill_seed: int) -> Dict:
    """3 parts in 3 concurrent processes from one index; part 1 killed at a seeded moment, then resumed."""
    index = os.path.join(work, "index.csv")
    clock = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", "cohort", "index", root, index], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    index_s = time.perf_counter() - clock  # the whole command: interpreter start-up, imports, walk, headers, write
    parts = [os.path.join(work, f"part_{k}") for k in range(3)]
    logs = [open(os.path.join(work, f"part_{k}.log"), "w") for k in range(3)]
    start = time.perf_counter()
    procs = [subprocess.Popen(report_cmd(root, model, parts[k], "--index", index, "--num-parts", "3", "--part-id",
                                         str(k)), env=env, stdout=logs[k], stderr=subprocess.STDOUT)
             for k in range(3)]
    delay = random.Random(kill_seed).uniform(30, 150)
    try:
        procs[1].wait(timeout=delay)
        killed = None
    except subprocess.TimeoutExpired:
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        names = os.listdir(parts[1]) if os.path.isdir(parts[1]) else []
        done = [n for n in names if os.path.isfile(os.path.join(parts[1], n, ".scarnet-report"))]
        partial = [n for n in names if n.endswith(".partial")]
        killed = {"after_s": delay, "complete_studies": len(done), "partial_folders": len(partial)}
    resumed = timed(report_cmd(root, model, parts[1], "--index", index, "--num-parts", "3", "--part-id", "1"), env,
                    os.path.join(work, "part_1_resumed.log"))
    statuses = [p.wait() for p in procs[::2]]
    wall = time.perf_counter() - start
    return {"parts": parts, "wall_s": wall, "killed": killed, "resumed": resumed, "exit_status": statuses,
            "index_command_s": index_s}


def chromium_check(summary: str, png: str) -> Dict:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("headless Chromium is needed for the summary check (apt-get install chromium)")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png}", "--window-size=1200,2400", f"file://{summary}"], check=True,
                   capture_output=True, timeout=120)
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return {"screenshot": png, "coloured_pixels": int(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True, help="prefix of OUT.json, OUT.md and OUT_summary.png")
    parser.add_argument("--studies", type=int, default=200, help="the whole tree (parts, merge, Chromium)")
    parser.add_argument("--runs", nargs="*", default=["cheap:10", "cheap:200", "tiny:10", "lite:10"],
                        help="uninterrupted runs, MODEL:STUDIES (the first STUDIES of the tree)")
    parser.add_argument("--parts-model", default="cheap")
    parser.add_argument("--part-threads", type=int, default=1,
                        help="OMP_NUM_THREADS of each part process (3 parts share this machine's cores)")
    parser.add_argument("--reuse-runs", action="store_true", help="keep uninterrupted runs already in WORK")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    env = nnunet_env(work)
    result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "load_before": os.getloadavg(),
              "studies": args.studies}
    models = train_models(args.cases, work)
    models["cheap"] = os.path.join(work, "cheap", "nnUNetTrainer__nnUNetPlans__2d")
    if not os.path.isdir(models["cheap"]):
        from report_helpers import build_model_folder

        build_model_folder(models["cheap"])
    runs_wanted = [(r.split(":")[0], int(r.split(":")[1])) for r in args.runs]
    trees = {}
    for n in sorted({args.studies, *(n for _, n in runs_wanted)}):
        root = os.path.join(work, f"export_{n}")
        if not os.path.isdir(root):
            t = time.perf_counter()
            kinds = write_cohort(args.cases, root, n)
            json.dump({"kinds": kinds, "write_s": time.perf_counter() - t}, open(root + ".json", "w"))
        trees[n] = root
    result["tree"] = json.load(open(trees[args.studies] + ".json"))
    result["tree"]["files"] = sum(len(f) for _, _, f in os.walk(trees[args.studies]))
    runs = result["runs"] = []
    for model, n in runs_wanted:
        out = os.path.join(work, f"single_{model}_{n}")
        if args.reuse_runs and os.path.isfile(out + ".json"):
            runs.append(json.load(open(out + ".json")))
            continue
        shutil.rmtree(out, ignore_errors=True)
        run = timed(report_cmd(trees[n], models[model], out), env, out + ".log")
        rows = read_rows(os.path.join(out, "cohort.csv"))
        run.update(model=model, trainer=TRAINERS.get(model, CHEAP), studies=len(rows),
                   failed=sum(r["status"] != "ok" for r in rows), out=out, stages=stage_split([out]))
        run["studies_per_hour"] = 3600 * len(rows) / run["wall_s"]
        runs.append(run)
        json.dump(run, open(out + ".json", "w"), indent=1)
        print(json.dumps({k: run[k] for k in ("model", "studies", "wall_s", "peak_rss_gib", "studies_per_hour")}),
              flush=True)
    reference = os.path.join(work, f"single_{args.parts_model}_{args.studies}")
    if not os.path.isfile(os.path.join(reference, "cohort.csv")):
        raise SystemExit(f"the parts are compared with an uninterrupted run: add {args.parts_model}:{args.studies} "
                         f"to --runs")
    parts_work = os.path.join(work, "parts")
    shutil.rmtree(parts_work, ignore_errors=True)
    os.makedirs(parts_work)
    parts = result["parts"] = run_parts(trees[args.studies], models[args.parts_model], parts_work,
                                        dict(env, OMP_NUM_THREADS=str(args.part_threads)), args.seed)
    parts.update(model=args.parts_model, threads_per_part=args.part_threads)
    merged, single = os.path.join(parts_work, "merged"), os.path.join(parts_work, "single_merged")
    for sources, out in ((parts["parts"], merged), ([reference], single)):
        subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.cli", "cohort", "merge", *sources, out], env=env,
                       check=True, stdout=subprocess.DEVNULL)
    merged_rows, single_rows = read_rows(os.path.join(merged, "cohort.csv")), read_rows(os.path.join(single,
                                                                                                     "cohort.csv"))
    parts["merged_rows"] = len(merged_rows)
    parts["merged_equals_single_run"] = comparable(merged_rows) == comparable(single_rows)
    parts["stages"] = stage_split(parts["parts"])
    parts["chromium"] = chromium_check(os.path.join(merged, "summary.html"), os.path.abspath(args.out) +
                                       "_summary.png")
    result["load_after"] = os.getloadavg()
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1, default=str)
    with open(args.out + ".md", "w") as f:
        f.write(markdown(result) + "\n")
    print(markdown(result))
    return 0 if parts["merged_equals_single_run"] else 1


def markdown(result: Dict) -> str:
    lines = ["| model | studies (failed) | wall s | studies/hour | peak RSS GiB | median s per study: reading / "
             "prediction / quantification / writing | index s | model loading s |", "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        s = r["stages"]
        lines.append(f"| {r['trainer']} | {r['studies']} ({r['failed']}) | {r['wall_s']:.0f} | "
                     f"{r['studies_per_hour']:.0f} | {r['peak_rss_gib']:.2f} | "
                     f"{' / '.join(f'{s[k]:.2f}' for k in STAGES)} | {s['index_s']:.1f} | "
                     f"{s['model_loading_s']:.1f} |")
    p = result["parts"]
    killed = p["killed"]
    lines += ["", f"3 parts in 3 concurrent processes ({result['studies']} studies, model {p['model']}, "
              f"{p['threads_per_part']} thread(s) each; `scarnet cohort index` of the tree "
              f"{p['index_command_s']:.1f} s): {p['wall_s']:.0f} s "
              f"wall; part 1 " + (f"killed after {killed['after_s']:.0f} s ({killed['complete_studies']} studies "
                                  f"complete, {killed['partial_folders']} partial folder(s)) and resumed in "
                                  f"{p['resumed']['wall_s']:.0f} s" if killed else "finished before the kill") +
              f"; merged rows {p['merged_rows']}; merged cohort.csv equal to the uninterrupted run's: "
              f"{p['merged_equals_single_run']}; summary in Chromium: {p['chromium']['coloured_pixels']} coloured "
              f"pixels."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
