"""Evaluate a folder of predicted label maps against expert labels, with the statistics of the ScarNet paper."""
import json
import os
from typing import Dict, List, Optional

import numpy as np
from tqdm import tqdm

from nnunetv2_scarnet.evaluation.agreement import bland_altman, concordance, detection
from nnunetv2_scarnet.evaluation.overlap import dice, format_median_iqr, hd95, median_iqr
from nnunetv2_scarnet.evaluation.plots import agreement_png, dice_png
from nnunetv2_scarnet.io_safety import prepare_output_dir
from nnunetv2_scarnet.quantification.label_scheme import (LabelScheme, case_id_of, geometry_difference,
                                                          read_label_stack, same_geometry)
from nnunetv2_scarnet.quantification.report import write_csv


class EvaluationInputError(ValueError):
    """Predictions and references do not correspond (cases, geometry or labels); the message names the files."""


def matched_cases(prediction_dir: str, reference_dir: str) -> List[str]:
    def cases(folder):
        if not os.path.isdir(folder):
            raise EvaluationInputError(f"{folder}: not a folder")
        return {case_id_of(f): f for f in os.listdir(folder) if f.endswith(".nii.gz")}

    pred, ref = cases(prediction_dir), cases(reference_dir)
    if not ref:
        raise EvaluationInputError(f"{reference_dir}: no .nii.gz reference label files")
    missing, extra = sorted(set(ref) - set(pred)), sorted(set(pred) - set(ref))
    if missing or extra:
        raise EvaluationInputError(
            f"prediction folder {prediction_dir} and reference folder {reference_dir} hold different cases: "
            f"missing predictions {missing or 'none'}, predictions without reference {extra or 'none'}")
    return sorted(ref)


def evaluate_case(prediction_path: str, reference_path: str, scheme: LabelScheme) -> Dict:
    try:
        pred = read_label_stack(prediction_path, scheme)
        ref = read_label_stack(reference_path, scheme)
    except ValueError as exc:
        raise EvaluationInputError(str(exc)) from None
    if not same_geometry(pred, ref):
        raise EvaluationInputError(f"{prediction_path}: geometry differs from reference {reference_path}: "
                                   f"{geometry_difference(pred, ref)}")
    p_myo, p_scar, _, _ = scheme.masks(pred.data)
    r_myo, r_scar, _, _ = scheme.masks(ref.data)
    slices = []
    for k in range(ref.data.shape[2]):
        slices.append({"slice": k, "dice_myocardium": dice(p_myo[..., k], r_myo[..., k]),
                       "dice_scar": dice(p_scar[..., k], r_scar[..., k]),
                       "scar_present_reference": bool(r_scar[..., k].any()),
                       "scar_present_prediction": bool(p_scar[..., k].any())})
    v = ref.voxel_ml
    ref_myo_ml, pred_myo_ml = float(r_myo.sum()) * v, float(p_myo.sum()) * v
    ref_scar_ml, pred_scar_ml = float(r_scar.sum()) * v, float(p_scar.sum()) * v
    return {
        "case": case_id_of(reference_path),
        "dice_myocardium": dice(p_myo, r_myo), "dice_scar": dice(p_scar, r_scar),
        "hd95_myocardium_mm": hd95(p_myo, r_myo, ref.spacing),
        "myocardium_ml_reference": ref_myo_ml, "myocardium_ml_prediction": pred_myo_ml,
        "scar_ml_reference": ref_scar_ml, "scar_ml_prediction": pred_scar_ml,
        "scar_pct_lvm_reference": 100 * ref_scar_ml / ref_myo_ml if ref_myo_ml else 0.0,
        "scar_pct_lvm_prediction": 100 * pred_scar_ml / pred_myo_ml if pred_myo_ml else 0.0,
        "slices": slices,
    }


def summarise(cases: List[Dict]) -> Dict:
    """Cohort statistics over evaluated cases."""
    slices = [s for c in cases for s in c["slices"]]
    summary = {"n_cases": len(cases), "n_slices": len(slices)}
    for structure in ("myocardium", "scar"):
        key = f"dice_{structure}"
        summary[f"{key}_patient"] = median_iqr(c[key] for c in cases)
        summary[f"{key}_patient"]["both_empty"] = sum(c[key] is None for c in cases)
        summary[f"{key}_slice"] = median_iqr(s[key] for s in slices)
        summary[f"{key}_slice"]["both_empty"] = sum(s[key] is None for s in slices)
    summary["hd95_myocardium_mm"] = median_iqr(c["hd95_myocardium_mm"] for c in cases)
    for quantity in ("scar_ml", "scar_pct_lvm", "myocardium_ml"):
        x = [c[f"{quantity}_reference"] for c in cases]
        y = [c[f"{quantity}_prediction"] for c in cases]
        summary[quantity] = {"concordance": concordance(x, y), "bland_altman": bland_altman(x, y)}
    summary["scar_presence_patient"] = detection([c["scar_ml_reference"] > 0 for c in cases],
                                                 [c["scar_ml_prediction"] > 0 for c in cases])
    summary["scar_presence_slice"] = detection([s["scar_present_reference"] for s in slices],
                                               [s["scar_present_prediction"] for s in slices])
    return summary


def evaluate_folders(prediction_dir: str, reference_dir: str, out_dir: Optional[str] = None,
                     scheme: Optional[LabelScheme] = None, name: str = "prediction", pictures: bool = True) -> Dict:
    """Evaluate every reference case; writes evaluation.json, cases.csv, slices.csv and PNGs to `out_dir`."""
    scheme = scheme or LabelScheme()
    cases = []
    for case in tqdm(matched_cases(prediction_dir, reference_dir), desc=f"evaluating {name}", unit="case"):
        cases.append(evaluate_case(os.path.join(prediction_dir, f"{case}.nii.gz"),
                                   os.path.join(reference_dir, f"{case}.nii.gz"), scheme))
    result = {"name": name, "prediction_dir": prediction_dir, "reference_dir": reference_dir,
              "empty_rule": "Dice is undefined (null) when prediction and reference are both empty; such "
                            "cases/slices are counted in both_empty and left out of medians",
              "summary": summarise(cases), "cases": cases}
    if out_dir:
        prepare_output_dir(out_dir)
        with open(os.path.join(out_dir, "evaluation.json"), "w") as f:
            json.dump(result, f, indent=1)
        write_csv(os.path.join(out_dir, "cases.csv"), [{k: v for k, v in c.items() if k != "slices"} for c in cases])
        write_csv(os.path.join(out_dir, "slices.csv"), [{"case": c["case"], **s} for c in cases for s in c["slices"]])
        if pictures:
            for quantity, unit in (("scar_ml", "mL"), ("scar_pct_lvm", "% LVM")):
                agreement_png([c[f"{quantity}_reference"] for c in cases],
                              [c[f"{quantity}_prediction"] for c in cases], result["summary"][quantity],
                              quantity, unit, os.path.join(out_dir, f"agreement_{quantity}.png"))
            dice_png({"myocardium": [c["dice_myocardium"] for c in cases],
                      "scar": [c["dice_scar"] for c in cases]}, os.path.join(out_dir, "dice_per_patient.png"),
                     f"{name}: per-patient Dice")
    return result


def comparison_rows(results: List[Dict]) -> List[Dict]:
    """One table row per evaluated method: the headline numbers side by side."""
    fmt = format_median_iqr
    rows = []
    for r in results:
        s = r["summary"]
        rows.append({"method": r["name"], "n_cases": s["n_cases"],
                     "dice_myocardium_median_iqr": fmt(s["dice_myocardium_patient"]),
                     "dice_scar_median_iqr": fmt(s["dice_scar_patient"]),
                     "scar_ml_ccc": s["scar_ml"]["concordance"]["ccc"],
                     "scar_ml_bias": s["scar_ml"]["bland_altman"]["bias"],
                     "scar_pct_lvm_ccc": s["scar_pct_lvm"]["concordance"]["ccc"],
                     "scar_pct_lvm_bias": s["scar_pct_lvm"]["bland_altman"]["bias"],
                     "scar_ml_percent_bias": s["scar_ml"]["bland_altman"]["percent_bias"],
                     "scar_ml_cov_pct": s["scar_ml"]["bland_altman"]["cov_pct"],
                     "scar_presence_sensitivity_patient": s["scar_presence_patient"]["sensitivity"],
                     "scar_presence_specificity_patient": s["scar_presence_patient"]["specificity"]})
    return rows
