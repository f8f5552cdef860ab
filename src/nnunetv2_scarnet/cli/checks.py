"""Argument and path checks shared by the subcommands: every problem found here is one line on stderr and exit
code 2, before any input is read in full and before anything is written (see docs/reliability.md)."""
import argparse
import math
import os

from nnunetv2_scarnet.io_safety import check_input_dir, check_not_inside, check_output_dir, check_output_file

#: argument names (argparse dest) of input folders and output paths, checked for every subcommand that has them
INPUT_DIRS = {"labels_dir": "labels folder", "images_dir": "images folder", "prediction_dir": "prediction folder",
              "reference_dir": "reference folder", "myocardium_dir": "myocardium labels folder",
              "images": "images folder", "dicom_dir": "DICOM folder"}
INPUT_FILES = {"label": "label file", "dataset_json": "dataset.json"}
OUTPUT_FILE_SUFFIXES = {"dicom2nifti": (".nii.gz", ".nii"), "dicomseg": None}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


class OneLineArgumentParser(argparse.ArgumentParser):
    """Usage errors as the CLI's other errors: one line `<prog>: <problem>` on stderr, exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def check_paths(args) -> None:
    """The input folders/files and output paths of any subcommand, by argument name; then dataset.json."""
    for dest, what in INPUT_DIRS.items():
        if getattr(args, dest, None):
            check_input_dir(getattr(args, dest), what)
    for dest, what in INPUT_FILES.items():
        path = getattr(args, dest, None)
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such {what}" if not os.path.exists(path) else
                                    f"{path}: {what} is a folder, expected a file")
    if getattr(args, "out_dir", None):
        check_output_dir(args.out_dir)
        for dest in (*INPUT_DIRS, *INPUT_FILES):
            if getattr(args, dest, None):
                check_not_inside(getattr(args, dest), args.out_dir)
    if getattr(args, "output", None):
        check_output_file(args.output, OUTPUT_FILE_SUFFIXES.get(args.command))
    if getattr(args, "dataset_json", None):
        from nnunetv2_scarnet.cli.common import label_scheme

        label_scheme(args)


def check_baselines(args) -> None:
    """`scarnet baselines`: reference and --deep folders are read and matched before threshold maps are written."""
    from nnunetv2_scarnet.cli.common import label_scheme, named_paths
    from nnunetv2_scarnet.evaluation.evaluate import matched_cases
    from nnunetv2_scarnet.evaluation.threshold_baselines import all_method_names
    from nnunetv2_scarnet.quantification.label_scheme import (geometry_difference, read_label_stack, read_stack,
                                                              same_geometry)

    scheme = label_scheme(args)
    deep = named_paths(args.deep)
    reserved = {"labels"} | all_method_names()
    clash = sorted(set(deep) & reserved)
    if clash:
        raise ValueError(f"--deep names {clash} are taken by the output folders {sorted(reserved)}")
    for name, folder in deep.items():
        check_input_dir(folder, f"--deep {name} prediction folder")
        check_not_inside(folder, args.out_dir)
    cases = matched_cases(args.myocardium_dir, args.reference_dir)
    for folder in deep.values():
        matched_cases(folder, args.reference_dir)
    for case in cases:
        reference = read_label_stack(os.path.join(args.reference_dir, f"{case}.nii.gz"), scheme)
        others = [read_label_stack(os.path.join(folder, f"{case}.nii.gz"), scheme)
                  for folder in [args.myocardium_dir, *deep.values()]]
        others.append(read_stack(os.path.join(args.images_dir, f"{case}_0000.nii.gz")))  # NaN, spacing
        for other in others:
            if not same_geometry(other, reference):
                raise ValueError(f"{other.path}: grid differs from reference {reference.path}: "
                                 f"{geometry_difference(other, reference)}")
