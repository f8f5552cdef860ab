"""`scarnet cohort`: the study index of an export tree, and the merge of a cohort's parts.

    scarnet cohort index EXPORT_ROOT INDEX.csv [--workers N]
    scarnet cohort merge PART_DIR [PART_DIR ...] OUT_DIR

Each part is run with `scarnet report EXPORT_ROOT --model MODEL PART_DIR --num-parts N --part-id K [--index INDEX.csv]`
(docs/report.md#cohorts).
"""
import argparse

from nnunetv2_scarnet.cli.checks import positive_int
from nnunetv2_scarnet.io_safety import check_input_dir, check_output_dir, check_output_file


def cmd_index(args):
    from nnunetv2_scarnet.ingestion.safe_files import summary
    from nnunetv2_scarnet.report.cohort_index import build_index, skipped_path, studies_of, write_index

    rows = build_index(args.export_root, args.workers)
    write_index(rows, args.index_csv)
    studies = studies_of(rows)
    refused = [s for s in studies if s.refused]
    print(f"{len(studies)} studies, {len(rows)} series ({sum(s.chosen is None and not s.refused for s in studies)} "
          f"without a chosen LGE series, {len(refused)} refused): {args.index_csv}")
    for study in refused:
        print(f"  refused {study.name}: {study.refused}")
    if rows.skipped:
        print(f"{len(rows.skipped)} entries skipped or unusable ({summary(rows.skipped)}): "
              f"{skipped_path(args.index_csv)}")
    return 0


def cmd_merge(args):
    from nnunetv2_scarnet.report.cohort_merge import merge_parts

    return merge_parts(args.part_dirs, args.out_dir)


def check_index(args):
    check_input_dir(args.export_root, "export root")
    check_output_file(args.index_csv, (".csv",))


def check_merge(args):
    if len(args.paths) < 2:
        raise ValueError("give the part folders and then OUT_DIR")
    args.part_dirs, args.out_dir = args.paths[:-1], args.paths[-1]
    for folder in args.part_dirs:
        check_input_dir(folder, "part folder")
    check_output_dir(args.out_dir)


def register(sub) -> None:
    p = sub.add_parser("cohort", help="cohorts: study index of an export tree, merge of the parts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", required=True)
    index = actions.add_parser("index", help="index an export tree (headers only) into a CSV")
    index.add_argument("export_root")
    index.add_argument("index_csv")
    index.add_argument("--workers", type=positive_int, help="processes reading headers (default: CPUs, max 8)")
    index.set_defaults(func=cmd_index, check=check_index)
    merge = actions.add_parser("merge", help="merge cohort parts into one cohort.csv and summary.html")
    merge.add_argument("paths", nargs="+", metavar="PART_DIR [...] OUT_DIR")
    merge.set_defaults(func=cmd_merge, check=check_merge)
