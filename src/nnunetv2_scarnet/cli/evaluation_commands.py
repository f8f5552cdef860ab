"""`scarnet evaluate`, `scarnet compare`, `scarnet baselines` and `scarnet noise`: agreement with expert labels."""
import json
import os

from nnunetv2_scarnet.cli.checks import check_baselines, positive_float, positive_int
from nnunetv2_scarnet.cli.common import label_scheme, named_paths
from nnunetv2_scarnet.io_safety import prepare_output_dir

ENHANCEMENT_GATE = 0.9  # = evaluation.threshold_baselines.ENHANCEMENT_GATE (not imported: keeps --help fast)


def cmd_evaluate(args):
    from nnunetv2_scarnet.evaluation import evaluate_folders

    # without --dataset-json: EMIDEC defaults for the references, the prediction folder's dataset.json (nnU-Net
    # prediction folders hold one) for the predictions; MVO merged there (or --mvo-merged) is not assessed
    scheme = label_scheme(args) if args.dataset_json else None
    result = evaluate_folders(args.prediction_dir, args.reference_dir, args.out_dir, scheme, args.name,
                              images_dir=args.images, mvo_assessed=False if args.mvo_merged else None)
    summary = result["summary"]
    print(json.dumps({k: summary[k] for k in ("dice_myocardium_patient", "dice_scar_patient")}, indent=1))
    t = summary.get("transmurality", {})
    print(f"transmurality categories: {t.get('n_segments_compared')} segments, weighted kappa (linear) "
          f"{t.get('kappa_linear')}, exact agreement {t.get('exact_agreement')}")
    print(f"MVO: {summary['mvo_status']}")
    print(f"evaluation in {args.out_dir}")
    return 0


#: files `scarnet compare` writes next to the per-model folders
COMPARE_OUTPUTS = ("paired_comparison.json", "paired_comparison.csv")


def check_compare(args) -> None:
    """`scarnet compare`: two models or more, each folder holding exactly the reference's cases (one error naming
    every model's missing and extra cases), before anything is written."""
    from nnunetv2_scarnet.cli.checks import check_not_inside
    from nnunetv2_scarnet.evaluation.paired_comparison import case_set_problems
    from nnunetv2_scarnet.io_safety import check_input_dir
    from nnunetv2_scarnet.quantification.label_scheme import case_id_of

    names = [item.split("=", 1)[0] for item in args.model]
    models = named_paths(args.model)
    if len(models) != len(names):
        raise ValueError(f"--model names must be unique, got {names}")
    if len(models) < 2:
        raise ValueError(f"scarnet compare needs at least two --model NAME=PREDICTION_DIR, got {len(models)}")
    for name, folder in models.items():
        if not name or os.sep in name or name in (".", "..") or name in COMPARE_OUTPUTS:
            raise ValueError(f"--model name {name!r} cannot name an output folder")
        check_input_dir(folder, f"--model {name} prediction folder")
        check_not_inside(folder, args.out_dir)

    def cases(folder):
        return {case_id_of(f) for f in os.listdir(folder) if f.endswith(".nii.gz")}

    reference = cases(args.reference_dir)
    if not reference:
        raise ValueError(f"{args.reference_dir}: no .nii.gz reference label files")
    problems = case_set_problems(reference, {f"{name} ({folder})": cases(folder) for name, folder in models.items()},
                                 "the reference")
    if problems:
        raise ValueError(f"the models do not cover the reference cases of {args.reference_dir}: "
                         + "; ".join(problems))


def compare_row_text(row) -> str:
    """One printed line of a paired-comparison row (`paired_comparison.comparison_table_rows`)."""
    def num(value):
        return "n/a" if value is None else f"{value:+.3f}"

    head = f"{row['model']} - {row['reference_model']}: {row['quantity']}"
    if row["view"]:
        ci = (f"[{num(row['ci_low'])}, {num(row['ci_high'])}]" if row["ci_low"] is not None else
              row["ci_method"])
        boot = ("n/a" if row["bootstrap_ci_low"] is None else
                f"[{num(row['bootstrap_ci_low'])}, {num(row['bootstrap_ci_high'])}]")
        return (f"{head}, {row['view']}{' (primary)' if row['primary'] else ''}: Hodges-Lehmann "
                f"{num(row['estimate_value'])} 95% CI {ci}; median of differences {num(row['median_of_differences'])}"
                f" bootstrap CI {boot}; Wilcoxon p {row['wilcoxon_p']} ({row['n_pairs']} pairs, "
                f"{row['n_excluded']} excluded)")
    if row["ci_method"] == "":
        return f"{head}: {row['reference_value']} vs {row['model_value']} of {row['n_pairs']} ({row['detail']})"
    value = "undefined" if row["estimate_value"] is None else f"{num(row['estimate_value'])}"
    ci = "n/a" if row["ci_low"] is None else f"[{num(row['ci_low'])}, {num(row['ci_high'])}]"
    return (f"{head} difference {value} 95% CI {ci}{' (' + row['detail'] + ')' if row['detail'] else ''}, "
            f"Wilcoxon p {row['wilcoxon_p']} ({row['n_pairs']} pairs, {row['n_excluded']} excluded)")


def cmd_compare(args):
    from nnunetv2_scarnet.evaluation import evaluate_folders
    from nnunetv2_scarnet.evaluation.paired_comparison import compare_models, comparison_table_rows
    from nnunetv2_scarnet.quantification.report import write_csv

    scheme = label_scheme(args) if args.dataset_json else None
    models = named_paths(args.model)
    prepare_output_dir(args.out_dir)  # inputs were checked by check_compare; replaces an earlier run's files
    results = [evaluate_folders(path, args.reference_dir, os.path.join(args.out_dir, name), scheme, name,
                                images_dir=args.images, mvo_assessed=False if args.mvo_merged else None)
               for name, path in models.items()]
    comparison = compare_models(results, n_resamples=args.bootstrap, seed=args.seed)
    with open(os.path.join(args.out_dir, "paired_comparison.json"), "w") as f:
        json.dump(comparison, f, indent=1)
    rows = comparison_table_rows(comparison)
    write_csv(os.path.join(args.out_dir, "paired_comparison.csv"), rows)
    for r in rows:
        print(compare_row_text(r))
    print(f"paired comparison in {args.out_dir}")
    return 0


def cmd_baselines(args):
    from nnunetv2_scarnet.evaluation import comparison_rows, evaluate_folders
    from nnunetv2_scarnet.evaluation.threshold_baselines import baseline_label_maps
    from nnunetv2_scarnet.quantification.report import write_csv

    scheme = label_scheme(args)
    folders = dict(named_paths(args.deep))
    prepare_output_dir(args.out_dir)  # inputs were checked by check_baselines; replaces an earlier run's files
    gate = None if args.naive else args.gate
    folders.update(baseline_label_maps(args.images_dir, args.myocardium_dir, os.path.join(args.out_dir, "labels"),
                                       scheme=scheme, gate=gate, fill_mvo=not args.naive))
    results = [evaluate_folders(path, args.reference_dir, os.path.join(args.out_dir, name), scheme, name,
                                images_dir=args.images_dir)  # AHA segments for the transmurality agreement
               for name, path in folders.items()]
    rows = comparison_rows(results)
    write_csv(os.path.join(args.out_dir, "comparison.csv"), rows)
    for row in rows:
        print(f"{row['method']:<12} scar Dice {row['dice_scar_median_iqr']}  scar mL CCC {row['scar_ml_ccc']}")
    return 0


def cmd_noise(args):
    from nnunetv2_scarnet.evaluation.noise_robustness import noise_robustness

    rows = noise_robustness(named_paths(args.model), args.images_dir, args.labels_dir, args.out_dir, args.snr,
                            args.repeats, args.seed, args.folds, args.device, label_scheme(args),
                            trust_model=args.trust_model)
    for r in rows:
        print(r)
    return 0


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="predictions vs expert labels")
    p.add_argument("prediction_dir")
    p.add_argument("reference_dir")
    p.add_argument("out_dir")
    p.add_argument("--name", default="prediction")
    p.add_argument("--images", metavar="IMAGES_DIR",
                   help="images of the reference cases (nnU-Net names <case>_0000.nii.gz): their RV blood pool "
                        "orients the AHA segments of the transmurality agreement; without them fixed sectors "
                        "per slice are used")
    p.add_argument("--mvo-merged", action="store_true",
                   help="MVO was merged into scar in the predictions: report MVO as not assessed (null), leave it out "
                        "of the MVO statistics (automatic when the prediction folder's dataset.json has no mvo label)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="two or more models on the same cases: paired statistics vs the first model")
    p.add_argument("reference_dir", help="expert label maps")
    p.add_argument("out_dir")
    p.add_argument("--model", action="append", required=True, metavar="NAME=PREDICTION_DIR",
                   help="predictions of one model (repeat; the first is the reference model of every comparison)")
    p.add_argument("--images", metavar="IMAGES_DIR", help="images of the reference cases (as for evaluate)")
    p.add_argument("--mvo-merged", action="store_true", help="MVO was merged into scar in the predictions")
    p.add_argument("--bootstrap", type=positive_int, default=2000, help="bootstrap resamples (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default %(default)s)")
    p.set_defaults(func=cmd_compare, check=check_compare)

    p = sub.add_parser("baselines", help="n-SD and FWHM inside a myocardium mask, evaluated like networks")
    p.add_argument("images_dir")
    p.add_argument("myocardium_dir", help="label maps whose myocardium is thresholded (e.g. expert labels)")
    p.add_argument("reference_dir")
    p.add_argument("out_dir")
    p.add_argument("--deep", action="append", help="NAME=PREDICTION_DIR of a network to put in the same table "
                                                  "(repeatable)")
    p.add_argument("--gate", type=float, default=ENHANCEMENT_GATE,
                   help="enhancement gate: scar seeds must reach this fraction of the blood-pool signal "
                        "(default %(default)s)")
    p.add_argument("--naive", action="store_true",
                   help="no enhancement gate, no minimum size, no MVO filling (the textbook thresholds alone)")
    p.set_defaults(func=cmd_baselines, check=check_baselines)

    p = sub.add_parser("noise", help="Monte Carlo Rician noise robustness of nnU-Net model folders")
    p.add_argument("--model", action="append", required=True,
                   help="NAME=nnU-Net model folder (trainer__plans__config); repeat for several models")
    p.add_argument("images_dir")
    p.add_argument("labels_dir")
    p.add_argument("out_dir")
    p.add_argument("--snr", type=positive_float, nargs="+", default=[20.0, 10.0, 5.0])
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", nargs="+", default=["0"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--trust-model", action="store_true",
                   help="load checkpoints that hold more than nnU-Net's weights and numbers with pickle execution "
                        "(runs code from the model folder: only for a model folder you trust)")
    p.set_defaults(func=cmd_noise)
