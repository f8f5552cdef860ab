"""`scarnet dicom2nifti` and `scarnet dicomseg`: DICOM in, DICOM SEG out."""
from nnunetv2_scarnet.cli.checks import finite_float
from nnunetv2_scarnet.cli.common import label_scheme


def cmd_dicom2nifti(args):
    from nnunetv2_scarnet.ingestion import dicom_to_nifti
    from nnunetv2_scarnet.ingestion.dicom_series import scan_folder

    if args.list:
        series, skipped = scan_folder(args.dicom_dir)
        for s in series.values():
            print(f"{s.uid}\t{s.description}\t{len(s.files)} files")
            by_type = {}
            for image in s.slices:
                by_type.setdefault(image.image_type, []).append(image.inversion_time)
            for image_type, times in by_type.items():
                known = sorted({t for t in times if t is not None})
                ti = "none" if not known else f"{known[0]:g} ms" if len(known) == 1 else \
                    f"{len(known)} values, {known[0]:g}-{known[-1]:g} ms"
                print(f"\t  ImageType {image_type or '(none)'}\tTI {ti}\t{len(times)} images")
            for problem in s.problems:
                print(f"\t  unusable: {problem}")
        for entry in skipped:  # not a regular file, not DICOM, not an image, a link loop ...
            print(f"skipped\t{entry}")
        return 0
    stack = dicom_to_nifti(args.dicom_dir, args.output, args.series_uid, args.image_type, args.inversion_time)
    print(f"wrote {args.output}: shape {stack.data.shape}, spacing {tuple(round(s, 4) for s in stack.spacing)} mm "
          f"(pixel spacing from {stack.pixel_spacing_source}; slice spacing from {stack.spacing_source})")
    low_high = stack.inversion_time_range
    if low_high and low_high[1] - low_high[0] > 0.5:
        print(f"inversion time drifts over the slices: {low_high[0]:g}-{low_high[1]:g} ms (one stack)")
    return 0


def check_dicom2nifti(args):
    if not args.list and not args.output:
        raise ValueError("give an output file (or --list)")


def check_dicomseg(args):
    from nnunetv2_scarnet.ingestion.dicom_seg import check_seg_output

    check_seg_output(args.output, args.label, args.dicom_dir)


def cmd_dicomseg(args):
    from nnunetv2_scarnet.ingestion.dicom_seg import write_dicom_seg

    path = write_dicom_seg(args.label, args.dicom_dir, args.output, args.series_uid, scheme=label_scheme(args))
    print(f"wrote {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("dicom2nifti", help="DICOM LGE series -> NIfTI stack")
    p.add_argument("dicom_dir")
    p.add_argument("output", nargs="?")
    p.add_argument("--series-uid")
    p.add_argument("--list", action="store_true",
                   help="list the series (and their image kinds) and the files skipped (with the reason), and stop")
    p.add_argument("--image-type", help="keep the images whose ImageType holds these values, e.g. M or PSIR "
                                        "(backslash-separated), when a series mixes magnitude and PSIR images")
    p.add_argument("--inversion-time", type=finite_float,
                   help="keep the images of this inversion time (ms), when a series holds several inversion times "
                        "at the same slice positions (a TI that drifts from slice to slice is one stack)")
    p.set_defaults(func=cmd_dicom2nifti, check=check_dicom2nifti)

    p = sub.add_parser("dicomseg", help="prediction -> DICOM SEG referencing its source series")
    p.add_argument("label")
    p.add_argument("dicom_dir")
    p.add_argument("output")
    p.add_argument("--series-uid")
    p.set_defaults(func=cmd_dicomseg, check=check_dicomseg)
