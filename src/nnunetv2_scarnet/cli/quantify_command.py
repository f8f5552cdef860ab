"""`scarnet quantify`: volumes, mass, scar % LVM, sectors / AHA segments and pictures from label maps."""
from nnunetv2_scarnet.cli.checks import finite_float, positive_int
from nnunetv2_scarnet.cli.common import label_scheme


def cmd_quantify(args):
    from nnunetv2_scarnet.quantification import SectorGeometry, quantify_folder

    geometry = SectorGeometry(args.sectors, args.sector_origin_deg, args.direction)
    report = quantify_folder(args.labels_dir, args.out_dir, args.images, label_scheme(args), geometry,
                             args.septum_deg, args.direction, not args.apex_first, pictures=not args.no_pictures)
    for case in report["cases"]:
        p = case["patient"]
        pct = "n/a" if p["scar_pct_lvm"] is None else f"{p['scar_pct_lvm']:.1f}%"
        print(f"{case['case']}: LV myocardium {p['myocardium_ml']:.1f} mL ({p['myocardium_g']:.1f} g), "
              f"scar {p['scar_ml']:.1f} mL = {pct} LVM")
    print(f"report in {args.out_dir}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("quantify", help="volumes, mass, scar %%LVM, sectors, pictures")
    p.add_argument("labels_dir")
    p.add_argument("out_dir")
    p.add_argument("--images", help="folder with <case>_0000.nii.gz for overlay pictures")
    p.add_argument("--sectors", type=positive_int, default=6)
    p.add_argument("--sector-origin-deg", type=finite_float, default=0.0)
    p.add_argument("--direction", type=int, choices=[1, -1], default=1)
    p.add_argument("--septum-deg", type=finite_float, help="septum direction: enables the AHA 17-segment bullseye")
    p.add_argument("--apex-first", action="store_true", help="slice 0 is apical (default: basal)")
    p.add_argument("--no-pictures", action="store_true")
    p.set_defaults(func=cmd_quantify)
