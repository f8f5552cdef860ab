"""`scarnet quantify`: volumes, mass, scar % LVM, MVO, sectors / AHA segments, transmurality and pictures."""
import math

from nnunetv2_scarnet.cli.checks import finite_float, positive_int
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme


def septum_override(values):
    """`--septum-deg` values: one angle for every case, or CASE=DEG for single cases (None: automatic)."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return _angle(values[0])
    out = {}
    for item in values:
        if "=" not in item:
            raise ValueError(f"--septum-deg: give one angle, or CASE=DEG for each case; got {item!r}")
        case, angle = item.split("=", 1)
        out[case] = _angle(angle)
    return out


def _angle(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--septum-deg: expected an angle in degrees, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"--septum-deg: expected a finite number of degrees, got {text!r}")
    return value


def orientation_lines(case) -> list:
    """What the console says of a case's orientation: its state (ok / needs review with the reasons / not
    determined with what is missing and the options that give it), each assumption, and the other warnings."""
    o = case["orientation"]
    state = o.get("state") or ("ok" if case["aha_status"] == "ok" else "not determined")
    if state == "needs review":
        lines = ["orientation needs review: " + "; ".join(o.get("review_reasons") or [case["aha_status"]])]
    elif state == "not determined":  # aha_status names the missing parts and the options that give them
        lines = ["orientation not determined", case["aha_status"]]
    else:
        lines = ["orientation ok"]
    lines += [f"assumed: {a}" for a in o.get("assumptions") or []]
    lines += [f"orientation warning: {w}" for w in o["warnings"] if w not in (o.get("review_reasons") or [])]
    return lines


def cmd_quantify(args):
    from nnunetv2_scarnet.quantification import SectorGeometry, quantify_folder

    geometry = SectorGeometry(args.sectors, args.sector_origin_deg, args.direction or 1,
                              chords_per_slice=args.chords)
    # without --dataset-json: the labels folder's dataset.json (nnU-Net prediction folders hold one), else defaults
    scheme = LabelScheme.from_dataset_json(args.dataset_json) if args.dataset_json else None
    base_first = None if args.slice_order is None else args.slice_order == "base-first"
    report = quantify_folder(args.labels_dir, args.out_dir, args.images, scheme, geometry,
                             septum_override(args.septum_deg),
                             args.direction, base_first, pictures=not args.no_pictures,
                             mvo_assessed=False if args.mvo_merged else None)
    for case in report["cases"]:
        p = case["patient"]
        pct = "n/a" if p["scar_pct_lvm"] is None else f"{p['scar_pct_lvm']:.1f}%"
        print(f"{case['case']}: LV myocardium {p['myocardium_ml']:.1f} mL ({p['myocardium_g']:.1f} g), "
              f"scar {p['scar_ml']:.1f} mL = {pct} LVM")
        for line in orientation_lines(case):
            print(f"  {case['case']}: {line}")
    print(f"report in {args.out_dir}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("quantify", help="volumes, mass, scar %%LVM, MVO, AHA segments, transmurality, pictures")
    p.add_argument("labels_dir")
    p.add_argument("out_dir")
    p.add_argument("--images", help="folder with <case>_0000.nii.gz: orientation from the RV blood pool, overlays")
    p.add_argument("--sectors", type=positive_int, default=6)
    p.add_argument("--sector-origin-deg", type=finite_float, default=0.0)
    p.add_argument("--chords", type=positive_int, default=100, help="transmurality chords per slice (centerline method)")
    p.add_argument("--direction", type=int, choices=[1, -1],
                   help="override: +1 when anterior -> septum -> inferior runs with increasing angle "
                        "(default: automatic; also the sectors' direction, default +1)")
    p.add_argument("--septum-deg", nargs="+", metavar="DEG|CASE=DEG",
                   help="override: angle from LV centre to mid-septum, theta = atan2(dj*dy, di*dx) in degrees "
                        "(180 = viewer's left in the standard display), for every case or CASE=DEG per case "
                        "(default: automatic from geometry / RV blood pool)")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--apex-first", dest="slice_order", action="store_const", const="apex-first",
                       help="override: slice 0 is apical (default: automatic)")
    order.add_argument("--base-first", dest="slice_order", action="store_const", const="base-first",
                       help="override: slice 0 is basal (default: automatic)")
    p.add_argument("--mvo-merged", action="store_true", help="MVO was merged into scar: report it as not assessed")
    p.add_argument("--no-pictures", action="store_true")
    p.set_defaults(func=cmd_quantify, slice_order=None)
