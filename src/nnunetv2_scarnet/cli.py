"""`scarnet`: from LGE stacks to a scar report, on the command line.

    scarnet dicom2nifti DICOM_DIR OUT.nii.gz [--series-uid UID | --list]
    scarnet quantify LABELS_DIR OUT_DIR [--images IMAGES_DIR] [--septum-deg A] ...
    scarnet evaluate PRED_DIR REF_DIR OUT_DIR [--name NAME]
    scarnet baselines IMAGES_DIR MYOCARDIUM_LABELS_DIR REF_DIR OUT_DIR [--deep NAME=PRED_DIR ...]
    scarnet noise --model NAME=MODEL_DIR [--model ...] IMAGES_DIR LABELS_DIR OUT_DIR [--snr 20 10 5] [--repeats 3]
    scarnet dicomseg LABEL.nii.gz DICOM_DIR OUT.dcm [--series-uid UID]

Label maps follow nnU-Net files (`<case>.nii.gz`, images `<case>_0000.nii.gz`) and the label values of
`--dataset-json` (default: 1 blood pool, 2 myocardium, 3 scar, 4 MVO).
"""
import argparse
import json
import os
import sys

from nnunetv2_scarnet.quantification.label_scheme import LabelScheme


def _scheme(args) -> LabelScheme:
    return LabelScheme.from_dataset_json(args.dataset_json) if args.dataset_json else LabelScheme()


def _named_paths(items):
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"scarnet: expected NAME=PATH, got {item!r}")
        name, path = item.split("=", 1)
        out[name] = path
    return out


def cmd_dicom2nifti(args):
    from nnunetv2_scarnet.ingestion import dicom_to_nifti, list_series

    if args.list:
        for s in list_series(args.dicom_dir):
            print(f"{s.uid}\t{s.description}\t{len(s.files)} files")
        return 0
    stack = dicom_to_nifti(args.dicom_dir, args.output, args.series_uid)
    print(f"wrote {args.output}: shape {stack.data.shape}, spacing {tuple(round(s, 4) for s in stack.spacing)} mm")
    return 0


def cmd_quantify(args):
    from nnunetv2_scarnet.quantification import SectorGeometry, quantify_folder

    geometry = SectorGeometry(args.sectors, args.sector_origin_deg, args.direction)
    report = quantify_folder(args.labels_dir, args.out_dir, args.images, _scheme(args), geometry, args.septum_deg,
                             args.direction, not args.apex_first, pictures=not args.no_pictures)
    for case in report["cases"]:
        p = case["patient"]
        pct = "n/a" if p["scar_pct_lvm"] is None else f"{p['scar_pct_lvm']:.1f}%"
        print(f"{case['case']}: LV myocardium {p['myocardium_ml']:.1f} mL ({p['myocardium_g']:.1f} g), "
              f"scar {p['scar_ml']:.1f} mL = {pct} LVM")
    print(f"report in {args.out_dir}")
    return 0


def cmd_evaluate(args):
    from nnunetv2_scarnet.evaluation import evaluate_folders

    result = evaluate_folders(args.prediction_dir, args.reference_dir, args.out_dir, _scheme(args), args.name)
    print(json.dumps({k: result["summary"][k] for k in ("dice_myocardium_patient", "dice_scar_patient")}, indent=1))
    print(f"evaluation in {args.out_dir}")
    return 0


def cmd_baselines(args):
    from nnunetv2_scarnet.evaluation import comparison_rows, evaluate_folders
    from nnunetv2_scarnet.evaluation.threshold_baselines import baseline_label_maps
    from nnunetv2_scarnet.quantification.report import write_csv

    scheme = _scheme(args)
    folders = dict(_named_paths(args.deep))
    folders.update(baseline_label_maps(args.images_dir, args.myocardium_dir, os.path.join(args.out_dir, "labels"),
                                       scheme=scheme))
    results = [evaluate_folders(path, args.reference_dir, os.path.join(args.out_dir, name), scheme, name)
               for name, path in folders.items()]
    rows = comparison_rows(results)
    write_csv(os.path.join(args.out_dir, "comparison.csv"), rows)
    for row in rows:
        print(f"{row['method']:<12} scar Dice {row['dice_scar_median_iqr']}  scar mL CCC {row['scar_ml_ccc']}")
    return 0


def cmd_noise(args):
    from nnunetv2_scarnet.evaluation.noise_robustness import noise_robustness

    rows = noise_robustness(_named_paths(args.model), args.images_dir, args.labels_dir, args.out_dir, args.snr,
                            args.repeats, args.seed, args.folds, args.device, _scheme(args))
    for r in rows:
        print(r)
    return 0


def cmd_dicomseg(args):
    from nnunetv2_scarnet.ingestion.dicom_seg import write_dicom_seg

    print(f"wrote {write_dicom_seg(args.label, args.dicom_dir, args.output, args.series_uid)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scarnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dicom2nifti", help="DICOM LGE series -> NIfTI stack")
    p.add_argument("dicom_dir")
    p.add_argument("output", nargs="?")
    p.add_argument("--series-uid")
    p.add_argument("--list", action="store_true", help="list the series in the folder and stop")
    p.set_defaults(func=cmd_dicom2nifti)

    p = sub.add_parser("quantify", help="volumes, mass, scar %%LVM, sectors, pictures")
    p.add_argument("labels_dir")
    p.add_argument("out_dir")
    p.add_argument("--images", help="folder with <case>_0000.nii.gz for overlay pictures")
    p.add_argument("--sectors", type=int, default=6)
    p.add_argument("--sector-origin-deg", type=float, default=0.0)
    p.add_argument("--direction", type=int, choices=[1, -1], default=1)
    p.add_argument("--septum-deg", type=float, help="septum direction: enables the AHA 17-segment bullseye")
    p.add_argument("--apex-first", action="store_true", help="slice 0 is apical (default: basal)")
    p.add_argument("--no-pictures", action="store_true")
    p.set_defaults(func=cmd_quantify)

    p = sub.add_parser("evaluate", help="predictions vs expert labels")
    p.add_argument("prediction_dir")
    p.add_argument("reference_dir")
    p.add_argument("out_dir")
    p.add_argument("--name", default="prediction")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baselines", help="n-SD and FWHM inside a myocardium mask, evaluated like networks")
    p.add_argument("images_dir")
    p.add_argument("myocardium_dir", help="label maps whose myocardium is thresholded (e.g. expert labels)")
    p.add_argument("reference_dir")
    p.add_argument("out_dir")
    p.add_argument("--deep", action="append", help="NAME=PREDICTION_DIR of a network to put in the same table "
                                                  "(repeatable)")
    p.set_defaults(func=cmd_baselines)

    p = sub.add_parser("noise", help="Monte Carlo Rician noise robustness of nnU-Net model folders")
    p.add_argument("--model", action="append", required=True,
                   help="NAME=nnU-Net model folder (trainer__plans__config); repeat for several models")
    p.add_argument("images_dir")
    p.add_argument("labels_dir")
    p.add_argument("out_dir")
    p.add_argument("--snr", type=float, nargs="+", default=[20.0, 10.0, 5.0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", nargs="+", default=["0"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=cmd_noise)

    p = sub.add_parser("dicomseg", help="prediction -> DICOM SEG referencing its source series")
    p.add_argument("label")
    p.add_argument("dicom_dir")
    p.add_argument("output")
    p.add_argument("--series-uid")
    p.set_defaults(func=cmd_dicomseg)

    for p in sub.choices.values():
        p.add_argument("--dataset-json", help="nnU-Net dataset.json defining the label values")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dicom2nifti" and not args.list and not args.output:
        raise SystemExit("scarnet dicom2nifti: give an output file (or --list)")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"scarnet {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
