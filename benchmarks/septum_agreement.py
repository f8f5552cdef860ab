"""Image-only orientation on the EMIDEC dev patients against the re-read septum reference (issue 23 section 6).

Runs `find_orientation` on every dev patient with the expert labels as the segmentation (as the report uses a
model's) and the affine as EMIDEC ships it (spacing only: no patient orientation), and prints, for the whole set
and for the two halves of a fixed patient split (sorted case ids, alternating within the N and P groups: 'tune'
= even positions, 'held-out' = odd), the septum error distribution against the re-read reference
(tests/data/emidec_septum_reference.json, `reread`), how many stacks are "ok" and how many "ok" ones lie within 30
degrees. `--window DEG ...` repeats the run with other values of `orientation.DISPLAY_TOLERANCE_DEG`; `--cases`
prints one line per patient. Writes nothing but numbers to stdout.

    PYTHONPATH=src python benchmarks/septum_agreement.py [EMIDEC_DEV] [--window 30 60] [--cases]
"""
import argparse
import json
import os
import sys

import nibabel as nib
import numpy as np

from nnunetv2_scarnet.quantification import orientation as orientation_module
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme
from nnunetv2_scarnet.quantification.orientation import find_orientation, wrap_deg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "tests", "data", "emidec_septum_reference.json")


def split_halves(cases):
    """{'tune': [...], 'held-out': [...]}: sorted ids, alternating within each group (Case_N*, Case_P*)."""
    halves = {"tune": [], "held-out": []}
    for group in ("Case_N", "Case_P"):
        members = sorted(c for c in cases if c.startswith(group))
        for position, case in enumerate(members):
            halves["tune" if position % 2 == 0 else "held-out"].append(case)
    return halves


def run_cases(cases_dir, reference):
    """{case: (error deg or None, state, septum deg or None, review reasons, papillary septum error or None)}."""
    out = {}
    for case, ref in sorted(reference.items()):
        label = nib.load(os.path.join(cases_dir, case, "label.nii.gz"))
        image = np.asarray(nib.load(os.path.join(cases_dir, case, "image.nii.gz")).dataobj, np.float64)
        myo, scar, _, pool = LabelScheme().masks(np.asarray(label.dataobj))
        o = find_orientation(myo, pool, scar, label.affine, label.header.get_zooms()[:3], image)
        error = None if o.septum_deg is None else abs(wrap_deg(o.septum_deg - ref))
        papillary = None if o.papillary_septum_deg is None else abs(wrap_deg(o.papillary_septum_deg - ref))
        out[case] = (error, o.state, o.septum_deg, o.review_reasons, papillary)
    return out


def summary(results, cases):
    errors = [results[c][0] for c in cases]
    found = np.array([e for e in errors if e is not None])
    ok = [c for c in cases if results[c][1] == "ok"]
    ok_right = sum(1 for c in ok if results[c][0] <= 30.0)
    n = len(cases)
    return (f"n={n}: septum found {len(found)}, median error {np.median(found):.0f} deg, within 30 "
            f"{(found <= 30).sum()} ({100 * (found <= 30).sum() / n:.0f}%), within 45 {(found <= 45).sum()} "
            f"({100 * (found <= 45).sum() / n:.0f}%), max {found.max():.0f}; ok {len(ok)} ({100 * len(ok) / n:.0f}%), "
            f"{ok_right} of them within 30 deg ({100 * ok_right / max(len(ok), 1):.0f}%); needs review "
            f"{sum(1 for c in cases if results[c][1] == 'needs review')}, not determined "
            f"{sum(1 for c in cases if results[c][1] == 'not determined')}; papillary-muscle septum: "
            + papillary_summary([results[c][4] for c in cases]))


def papillary_summary(errors):
    found = np.array([e for e in errors if e is not None])
    if not len(found):
        return "none"
    return (f"found {len(found)}, median error {np.median(found):.0f} deg, within 30 {(found <= 30).sum()}, "
            f"within 45 {(found <= 45).sum()}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("SCARNET_EMIDEC_DEV", os.path.join(REPO, "..", "shared", "data", "emidec_dev"))
    parser.add_argument("emidec_dev", nargs="?", default=default)
    parser.add_argument("--window", type=float, nargs="*", default=[],
                        help="also run with these DISPLAY_TOLERANCE_DEG values")
    parser.add_argument("--cases", action="store_true", help="one line per patient")
    args = parser.parse_args(argv)
    reference = json.load(open(REFERENCE))["reread"]["septum_deg"]
    cases_dir = os.path.join(args.emidec_dev, "cases")
    halves = split_halves(reference)
    default_window = orientation_module.DISPLAY_TOLERANCE_DEG
    for window in [None] + list(args.window):
        orientation_module.DISPLAY_TOLERANCE_DEG = default_window if window is None else window
        results = run_cases(cases_dir, reference)
        print(f"# DISPLAY_TOLERANCE_DEG = {orientation_module.DISPLAY_TOLERANCE_DEG:g}"
              + (" (today's code)" if window is None else ""))
        print("all      " + summary(results, sorted(reference)))
        for name, cases in halves.items():
            print(f"{name:9s}" + summary(results, cases))
        if args.cases:
            for case, (error, state, septum, reasons, _) in sorted(results.items()):
                half = "tune" if case in halves["tune"] else "held-out"
                print(f"  {case} {half:8s} ref {reference[case]:5.0f} tool "
                      f"{'-' if septum is None else f'{septum:5.0f}'} error {'-' if error is None else f'{error:4.0f}'}"
                      f" {state}: {'; '.join(reasons)}")
    orientation_module.DISPLAY_TOLERANCE_DEG = default_window
    return 0


if __name__ == "__main__":
    sys.exit(main())
