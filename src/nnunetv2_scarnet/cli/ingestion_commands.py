"""`scarnet dicom2nifti` and `scarnet dicomseg`: DICOM in, DICOM SEG out."""


def cmd_dicom2nifti(args):
    from nnunetv2_scarnet.ingestion import dicom_to_nifti, list_series

    if args.list:
        for s in list_series(args.dicom_dir):
            print(f"{s.uid}\t{s.description}\t{len(s.files)} files")
        return 0
    stack = dicom_to_nifti(args.dicom_dir, args.output, args.series_uid)
    print(f"wrote {args.output}: shape {stack.data.shape}, spacing {tuple(round(s, 4) for s in stack.spacing)} mm")
    return 0


def check_dicom2nifti(args):
    if not args.list and not args.output:
        raise ValueError("give an output file (or --list)")


def cmd_dicomseg(args):
    from nnunetv2_scarnet.ingestion.dicom_seg import write_dicom_seg

    print(f"wrote {write_dicom_seg(args.label, args.dicom_dir, args.output, args.series_uid)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("dicom2nifti", help="DICOM LGE series -> NIfTI stack")
    p.add_argument("dicom_dir")
    p.add_argument("output", nargs="?")
    p.add_argument("--series-uid")
    p.add_argument("--list", action="store_true", help="list the series in the folder and stop")
    p.set_defaults(func=cmd_dicom2nifti, check=check_dicom2nifti)

    p = sub.add_parser("dicomseg", help="prediction -> DICOM SEG referencing its source series")
    p.add_argument("label")
    p.add_argument("dicom_dir")
    p.add_argument("output")
    p.add_argument("--series-uid")
    p.set_defaults(func=cmd_dicomseg)
