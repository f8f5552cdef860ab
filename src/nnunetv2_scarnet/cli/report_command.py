"""`scarnet report`: DICOM folders or NIfTI stacks -> nnU-Net prediction -> quantification, DICOM SEG, QC flags
and a self-contained HTML report per patient.

    scarnet report DICOM_OR_NIFTI [more ...] --model MODEL_FOLDER OUT_DIR [--folds 0 1 2 3 4] [--device auto]
"""
import argparse
import time

from nnunetv2_scarnet.cli.checks import positive_float, positive_int
from nnunetv2_scarnet.io_safety import check_apart, check_output_dir

USAGE = ("scarnet report DICOM_OR_NIFTI [more ...] --model MODEL_FOLDER OUT_DIR [--folds F [F ...]] "
         "[--device auto|cpu|cuda|mps] [--series-uid UID] [--image-type M|PSIR] [--inversion-time MS] "
         "[--disable-mirroring] [--trust-model] [--cohort] [--num-parts N --part-id K] [--overwrite] [--index INDEX.csv]")


class _PathsAroundOptionsParser(argparse.ArgumentParser):
    """argparse gives a `nargs='+'` positional only the words before the first option; the paths after an option
    (`A B --model M OUT_DIR`) come back as unrecognised words and are appended to the paths here."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        namespace.paths = list(namespace.paths or []) + [a for a in extras if not a.startswith("-")]
        return namespace, [a for a in extras if a.startswith("-")]


def cmd_report(args):
    from nnunetv2_scarnet.report.pipeline import run_report

    from nnunetv2_scarnet.cli.common import label_scheme

    scheme = label_scheme(args) if args.dataset_json else None  # default: the model's dataset.json
    started = time.perf_counter()
    cohort_rows = cohort_index_of(args)
    if cohort_rows is not None:
        from nnunetv2_scarnet.report.cohort_run import run_cohort

        return run_cohort(args.inputs[0], args.model, args.out_dir, args.num_parts, args.part_id, args.overwrite,
                          args.index, args.index_workers, args.folds, args.device, not args.disable_mirroring,
                          args.checkpoint, args.debug, scheme, args.trust_model, rows=cohort_rows or None,
                          index_seconds=time.perf_counter() - started if cohort_rows else None)
    return run_report(args.inputs, args.model, args.out_dir, args.folds, args.device, args.series_uid or (),
                      not args.disable_mirroring, args.checkpoint, args.debug, scheme, args.trust_model,
                      args.image_type, args.inversion_time)


def cohort_index_of(args):
    """None: the inputs are patient folders / NIfTI stacks (`run_report`). Else the one input folder is an export
    tree run as a cohort (`run_cohort`): `--cohort` or another cohort option was given, or OUT_DIR holds a cohort
    part ([]: run_cohort reads or builds the index), or the folder holds more than one PatientID (its index)."""
    import os

    from nnunetv2_scarnet.report.cohort_index import CohortIndexError, build_index
    from nnunetv2_scarnet.report.cohort_run import COHORT_MARKER

    cohort_options = args.cohort or args.num_parts != 1 or args.part_id != 0 or args.overwrite or args.index
    if len(args.inputs) != 1 or not os.path.isdir(args.inputs[0]):
        if cohort_options:
            raise ValueError("--cohort, --num-parts, --part-id, --overwrite and --index need exactly one input "
                             "folder (the export tree)")
        return None
    rows = []
    if not (cohort_options or os.path.isfile(os.path.join(args.out_dir, COHORT_MARKER))):
        try:
            rows = build_index(args.inputs[0], args.index_workers)
        except CohortIndexError:
            return None  # no DICOM images (e.g. a folder of NIfTI stacks): the patient path reports it
        if len({r["patient_id"] for r in rows}) < 2:
            return None  # one patient's folder: its LGE series is chosen among all its series, as before
    if args.image_type or args.inversion_time is not None:
        raise ValueError(f"{args.inputs[0]}: --image-type and --inversion-time choose images of one series; a "
                         f"cohort (an export tree of several patients) is run without them")
    return rows


def check_report(args):
    """OUT_DIR is checked here, before any input or the model is read (it is the last positional path)."""
    if len(args.paths) < 2:
        raise ValueError("give at least one DICOM folder or NIfTI stack and then OUT_DIR")
    args.inputs, args.out_dir = args.paths[:-1], args.paths[-1]
    check_output_dir(args.out_dir)
    for path in args.inputs:
        check_apart(path, args.out_dir)


def register(sub) -> None:
    p = sub.add_parser("report", help="DICOM / NIfTI -> prediction, quantification, DICOM SEG, QC, HTML report",
                       description=__doc__, usage=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.__class__ = _PathsAroundOptionsParser
    p.add_argument("paths", nargs="*", metavar="DICOM_OR_NIFTI [...] OUT_DIR",
                   help="one DICOM folder per patient (a study folder: the LGE series is chosen, see --series-uid) "
                        "or NIfTI stacks (files, or a folder of them), then the output folder")
    p.add_argument("--model", required=True, help="nnU-Net model folder (<trainer>__<plans>__<configuration>)")
    p.add_argument("--folds", nargs="+", help="folds to ensemble (default: every fold with a checkpoint)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="auto: CUDA when present, else CPU")
    p.add_argument("--series-uid", action="append",
                   help="SeriesInstanceUID to use instead of the LGE heuristic (repeat for several patients)")
    p.add_argument("--image-type", help="keep the images whose ImageType holds these values, e.g. M or PSIR "
                                        "(backslash-separated), when the LGE series mixes magnitude and PSIR images")
    p.add_argument("--inversion-time", type=positive_float,
                   help="keep the images of this inversion time (ms) when the LGE series mixes inversion times")
    p.add_argument("--checkpoint", default="checkpoint_final.pth")
    p.add_argument("--trust-model", action="store_true",
                   help="load checkpoints that hold more than nnU-Net's weights and numbers with pickle execution "
                        "(runs code from the model folder: only for a model folder you trust)")
    p.add_argument("--disable-mirroring", action="store_true", help="no mirroring test-time augmentation")
    p.add_argument("--debug", action="store_true", help="print tracebacks of failing patients")
    cohort = p.add_argument_group("cohorts (one export tree; docs/report.md#cohorts)")
    cohort.add_argument("--cohort", action="store_true",
                        help="run the input folder as a cohort, one report per study (automatic when it holds "
                             "several patients)")
    cohort.add_argument("--num-parts", type=positive_int, default=1,
                        help="split the cohort's studies into this many parts (one process or machine each)")
    cohort.add_argument("--part-id", type=int, default=0, help="the part this process runs, 0 .. num-parts - 1")
    cohort.add_argument("--overwrite", action="store_true",
                        help="redo every study (default: a rerun into a cohort OUT_DIR resumes)")
    cohort.add_argument("--index", help="a cohort index.csv to use instead of scanning the export tree")
    cohort.add_argument("--index-workers", type=positive_int, help="processes reading DICOM headers (default: CPUs, max 8)")
    p.set_defaults(func=cmd_report, check=check_report)
