"""`scarnet`: from LGE stacks to a scar report, on the command line.

    scarnet dicom2nifti DICOM_DIR OUT.nii.gz [--series-uid UID | --list]
    scarnet quantify LABELS_DIR OUT_DIR [--images IMAGES_DIR] [--septum-deg A] ...
    scarnet evaluate PRED_DIR REF_DIR OUT_DIR [--name NAME]
    scarnet compare LABELS_DIR OUT_DIR --model NAME=PRED_DIR --model NAME=PRED_DIR [...]
    scarnet baselines IMAGES_DIR MYOCARDIUM_LABELS_DIR REF_DIR OUT_DIR [--deep NAME=PRED_DIR ...]
    scarnet noise --model NAME=MODEL_DIR [--model ...] IMAGES_DIR LABELS_DIR OUT_DIR [--snr 20 10 5] [--repeats 3]
    scarnet dicomseg LABEL.nii.gz DICOM_DIR OUT.dcm [--series-uid UID]
    scarnet report DICOM_OR_NIFTI [...] --model MODEL_FOLDER OUT_DIR [--folds 0 1 2 3 4] [--device auto]
    scarnet report EXPORT_ROOT --model MODEL_FOLDER OUT_DIR [--num-parts N --part-id K] [--overwrite]
    scarnet cohort index EXPORT_ROOT INDEX.csv | merge PART_DIR [...] OUT_DIR
    scarnet weights list | fetch NAME | path NAME | verify NAME

Label maps follow nnU-Net files (`<case>.nii.gz`, images `<case>_0000.nii.gz`) and the label values of
`--dataset-json` (default: 1 blood pool, 2 myocardium, 3 scar, 4 MVO).

Each subcommand lives in its own module of this package and adds itself with `register(subparsers)`.
"""
import argparse
import sys

from nnunetv2_scarnet.cli import (cohort_command, evaluation_commands, ingestion_commands, quantify_command,
                                 report_command, weights_command)
from nnunetv2_scarnet.cli.checks import OneLineArgumentParser, check_paths

#: modules whose `register(subparsers)` adds their subcommands, in the order `scarnet --help` lists them
COMMAND_MODULES = (ingestion_commands, quantify_command, evaluation_commands, report_command, cohort_command,
                   weights_command)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="scarnet", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    for p in sub.choices.values():
        p.add_argument("--dataset-json", help="nnU-Net dataset.json defining the label values")
    return parser


def main(argv=None) -> int:
    """Run one subcommand. Every input or output problem ends as one line `scarnet <command>: <path>: <problem>`
    on stderr with exit code 2, never a traceback; paths are checked (`checks.check_paths`, then the
    subcommand's own `check`) before anything is read in full or written."""
    args = build_parser().parse_args(argv)
    check = getattr(args, "check", None)
    try:
        check_paths(args)
        if check is not None:
            check(args)
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())  # one line
        print(f"scarnet {args.command}: {message or type(exc).__name__}", file=sys.stderr)
        return 2
