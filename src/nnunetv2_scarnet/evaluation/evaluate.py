"""Evaluate a folder of predicted label maps against expert labels, with the statistics of the ScarNet paper.

Definitions (see docs/quantification_and_evaluation.md): Dice per patient (3D) and per slice; HD95 per patient
(3D, anisotropic spacing) and per slice (2D, in-plane spacing); scar presence of a slice = its largest 8-connected
scar region covers at least `min_scar_area_mm2` (default 20 mm^2), of a patient = at least one such slice;
scar % LVM is null (not 0) without myocardium; MVO Dice, MVO volume, MVO % LVM and MVO % of infarct agreement when
both sides carry MVO, decided per patient (a declared MVO label, i.e. a dataset.json naming one, or the MVO value
occurring in that side's label map of the patient: `label_scheme.labels_carry_mvo`); MVO merged into scar (no
such declaration and no MVO voxel, a dataset.json without an MVO label, or `mvo_assessed=False`) is not assessed
(null, `mvo_status`), never 0 mL or Dice 0;
CCC, Bland-Altman and ICC(A,1) over the patients where both values are defined; per-segment agreement of
transmurality categories (weighted kappa, `transmurality_agreement.py`) on the reference's segment geometry.
"""
import json
import os
from typing import Dict, List, Optional

import numpy as np
from tqdm import tqdm

from nnunetv2_scarnet.evaluation.agreement import bland_altman, concordance, detection, icc_agreement, paired
from nnunetv2_scarnet.evaluation.overlap import (dice, format_median_iqr, hd95, hd95_per_slice, largest_component_mm2,
                                                 median_iqr)
from nnunetv2_scarnet.evaluation.threshold_baselines import MIN_SCAR_AREA_MM2
from nnunetv2_scarnet.evaluation import transmurality_agreement
from nnunetv2_scarnet.evaluation.plots import agreement_png, dice_png
from nnunetv2_scarnet.io_safety import prepare_output_dir
from nnunetv2_scarnet.quantification.label_scheme import (LabelScheme, case_id_of, geometry_difference,
                                                          label_files, labels_carry_mvo,
                                                          read_label_stack, read_stack, same_geometry)
from nnunetv2_scarnet.quantification.report import _scheme_of_folder, write_csv

MVO_NOT_ASSESSED = "not_assessed (MVO merged into scar in the predictions)"
MVO_NOT_IN_PREDICTIONS = ("not_assessed (the prediction does not carry MVO: no dataset.json declares an MVO label "
                          "and this prediction holds no MVO value)")
MVO_NOT_IN_REFERENCE = ("not_assessed (the reference does not carry MVO: no MVO label declared (--dataset-json) and "
                        "this reference holds no MVO value)")
#: a normal patient (reference without scar) with at least this much predicted scar is a false-positive patient
FALSE_SCAR_PCT_LVM = 2.0


class EvaluationInputError(ValueError):
    """Predictions and references do not correspond (cases, geometry or labels); the message names the files."""


def matched_cases(prediction_dir: str, reference_dir: str) -> List[str]:
    def cases(folder):
        if not os.path.isdir(folder):
            raise EvaluationInputError(f"{folder}: not a folder")
        try:
            files = label_files(folder)
        except ValueError as exc:
            raise EvaluationInputError(str(exc)) from None
        uncompressed = sorted(f for f in files.values() if not f.endswith(".nii.gz"))
        if uncompressed:  # never skipped silently
            raise EvaluationInputError(f"{folder}: {', '.join(uncompressed[:5])}: evaluate reads <case>.nii.gz "
                                       f"label maps; compress them (gzip) first")
        return files

    pred, ref = cases(prediction_dir), cases(reference_dir)
    if not ref:
        raise EvaluationInputError(f"{reference_dir}: no .nii.gz reference label files")
    missing, extra = sorted(set(ref) - set(pred)), sorted(set(pred) - set(ref))
    if missing or extra:
        raise EvaluationInputError(
            f"prediction folder {prediction_dir} and reference folder {reference_dir} hold different cases: "
            f"missing predictions {missing or 'none'}, predictions without reference {extra or 'none'}")
    return sorted(ref)


def _image(image_path: str, ref) -> np.ndarray:
    """The reference's image (orientation from its RV blood pool), checked against the reference grid."""
    try:
        image = read_stack(image_path)
    except (ValueError, FileNotFoundError) as exc:
        raise EvaluationInputError(str(exc)) from None
    if not same_geometry(image, ref):
        raise EvaluationInputError(f"{image_path}: geometry differs from reference {ref.path}: "
                                   f"{geometry_difference(image, ref)}")
    return image.data


def evaluate_case(prediction_path: str, reference_path: str, scheme: LabelScheme,
                  min_scar_area_mm2: float = MIN_SCAR_AREA_MM2, image_path: Optional[str] = None,
                  transmurality: bool = True, prediction_scheme: Optional[LabelScheme] = None,
                  mvo_assessed: Optional[bool] = None, reference_mvo: Optional[bool] = None) -> Dict:
    """`prediction_scheme`: label values of the prediction (default `scheme`). MVO is compared when both sides
    carry it, decided for this patient alone (`label_scheme.labels_carry_mvo`: a declared MVO label, or the MVO
    value in this case's label map) unless `reference_mvo` / `mvo_assessed` (the prediction side, e.g. False for
    --mvo-merged) say. When the reference has MVO but the prediction does not, the prediction's MVO is None (not
    assessed), never 0."""
    prediction_scheme = prediction_scheme or scheme
    try:
        pred = read_label_stack(prediction_path, prediction_scheme)
        ref = read_label_stack(reference_path, scheme)
    except ValueError as exc:
        raise EvaluationInputError(str(exc)) from None
    if not same_geometry(pred, ref):
        raise EvaluationInputError(f"{prediction_path}: geometry differs from reference {reference_path}: "
                                   f"{geometry_difference(pred, ref)}")
    image = _image(image_path, ref) if image_path else None
    p_myo, p_scar, p_mvo, _ = prediction_scheme.masks(pred.data)
    r_myo, r_scar, r_mvo, _ = scheme.masks(ref.data)
    has_mvo = labels_carry_mvo(scheme, [ref.data]) if reference_mvo is None else reference_mvo  # MVO columns
    prediction_mvo_given = mvo_assessed
    prediction_mvo = labels_carry_mvo(prediction_scheme, [pred.data]) if mvo_assessed is None else mvo_assessed
    mvo_assessed = has_mvo and bool(prediction_scheme.mvo) and prediction_mvo
    hd_myo_2d = hd95_per_slice(p_myo, r_myo, ref.spacing)
    hd_scar_2d = hd95_per_slice(p_scar, r_scar, ref.spacing)
    slices = []
    for k in range(ref.data.shape[2]):
        row = {"slice": k, "dice_myocardium": dice(p_myo[..., k], r_myo[..., k]),
               "dice_scar": dice(p_scar[..., k], r_scar[..., k]),
               "hd95_myocardium_2d_mm": hd_myo_2d[k], "hd95_scar_2d_mm": hd_scar_2d[k],
               "scar_present_reference": largest_component_mm2(r_scar[..., k], ref.spacing) >= min_scar_area_mm2,
               "scar_present_prediction": largest_component_mm2(p_scar[..., k], ref.spacing) >= min_scar_area_mm2}
        if has_mvo:
            row["dice_mvo"] = dice(p_mvo[..., k], r_mvo[..., k]) if mvo_assessed else None
        slices.append(row)
    v = ref.voxel_ml
    ref_myo_ml, pred_myo_ml = float(r_myo.sum()) * v, float(p_myo.sum()) * v
    ref_scar_ml, pred_scar_ml = float(r_scar.sum()) * v, float(p_scar.sum()) * v
    case = {
        "case": case_id_of(reference_path),
        "dice_myocardium": dice(p_myo, r_myo), "dice_scar": dice(p_scar, r_scar),
        "hd95_myocardium_mm": hd95(p_myo, r_myo, ref.spacing), "hd95_scar_mm": hd95(p_scar, r_scar, ref.spacing),
        "myocardium_ml_reference": ref_myo_ml, "myocardium_ml_prediction": pred_myo_ml,
        "scar_ml_reference": ref_scar_ml, "scar_ml_prediction": pred_scar_ml,
        # as in `quantify`: no myocardium, no percentage (null, never 0)
        "scar_pct_lvm_reference": 100 * ref_scar_ml / ref_myo_ml if ref_myo_ml else None,
        "scar_pct_lvm_prediction": 100 * pred_scar_ml / pred_myo_ml if pred_myo_ml else None,
        "scar_present_reference": any(s["scar_present_reference"] for s in slices),
        "scar_present_prediction": any(s["scar_present_prediction"] for s in slices),
    }
    case["mvo_status"] = "assessed" if mvo_assessed else (
        MVO_NOT_IN_REFERENCE if not has_mvo else (
            MVO_NOT_IN_PREDICTIONS if prediction_mvo_given is None and prediction_scheme.mvo else MVO_NOT_ASSESSED))
    if has_mvo:
        ref_mvo_ml = float(r_mvo.sum()) * v
        pred_mvo_ml = float(p_mvo.sum()) * v if mvo_assessed else None
        case.update({
            "dice_mvo": dice(p_mvo, r_mvo) if mvo_assessed else None,
            "mvo_ml_reference": ref_mvo_ml, "mvo_ml_prediction": pred_mvo_ml,
            # as in `quantify`: % of LV myocardium and % of the infarct (scar incl. MVO); null without a denominator
            "mvo_pct_lvm_reference": 100 * ref_mvo_ml / ref_myo_ml if ref_myo_ml else None,
            "mvo_pct_lvm_prediction": (100 * pred_mvo_ml / pred_myo_ml if pred_myo_ml else None)
            if mvo_assessed else None,
            "mvo_pct_infarct_reference": 100 * ref_mvo_ml / ref_scar_ml if ref_scar_ml else None,
            "mvo_pct_infarct_prediction": (100 * pred_mvo_ml / pred_scar_ml if pred_scar_ml else None)
            if mvo_assessed else None})
    if transmurality:
        case.update(transmurality_agreement.compare_case(pred, ref, scheme, image))
    case["slices"] = slices
    return case


def _agreement(cases: List[Dict], quantity: str) -> Dict:
    x = [c[f"{quantity}_reference"] for c in cases]
    y = [c[f"{quantity}_prediction"] for c in cases]
    return {"concordance": concordance(x, y), "bland_altman": bland_altman(x, y), "icc": icc_agreement(x, y),
            "n_undefined": len(x) - len(paired(x, y)[0])}


def patient_failures(cases: List[Dict]) -> Dict:
    """Per-patient failures next to the medians: normal patients (reference without scar) with at least
    `FALSE_SCAR_PCT_LVM` % of their predicted myocardium called scar, infarct patients (reference scar) with no
    predicted scar at all, and patients without predicted myocardium; each with the case names."""
    normal = [c for c in cases if c["scar_ml_reference"] == 0]
    infarct = [c for c in cases if c["scar_ml_reference"] > 0]
    false_scar = [c["case"] for c in normal if c["scar_pct_lvm_prediction"] is not None
                  and c["scar_pct_lvm_prediction"] >= FALSE_SCAR_PCT_LVM]
    return {"rule": f"normal: reference scar 0 mL, false scar = predicted scar >= {FALSE_SCAR_PCT_LVM:g}% of the "
                    f"predicted LV myocardium; infarct: reference scar > 0 mL, missed = predicted scar 0 mL",
            "n_normal": len(normal), "n_normal_false_scar": len(false_scar), "normal_false_scar_cases": false_scar,
            "n_infarct": len(infarct),
            "n_infarct_scar_missed": sum(c["scar_ml_prediction"] == 0 for c in infarct),
            "infarct_scar_missed_cases": [c["case"] for c in infarct if c["scar_ml_prediction"] == 0],
            "no_myocardium_predicted_cases": [c["case"] for c in cases if c["myocardium_ml_prediction"] == 0]}


def summarise(cases: List[Dict]) -> Dict:
    """Cohort statistics over evaluated cases."""
    slices = [s for c in cases for s in c["slices"]]
    summary = {"n_cases": len(cases), "n_slices": len(slices)}
    # MVO only over cases where both sides carry it (a prediction with MVO merged into scar is not assessed)
    mvo_cases = [c for c in cases if c.get("mvo_status") == "assessed"]
    summary["mvo_status"] = ("assessed" if mvo_cases and len(mvo_cases) == len(cases) else
                             f"assessed in {len(mvo_cases)} of {len(cases)} cases" if mvo_cases else
                             next((c["mvo_status"] for c in cases if "mvo_status" in c), "not_assessed"))
    structures = ["myocardium", "scar"] + (["mvo"] if mvo_cases else [])
    for structure in structures:
        key = f"dice_{structure}"
        group = mvo_cases if structure == "mvo" else cases
        group_slices = [s for c in group for s in c["slices"]]
        summary[f"{key}_patient"] = median_iqr(c[key] for c in group)
        summary[f"{key}_patient"]["both_empty"] = sum(c[key] is None for c in group)
        summary[f"{key}_slice"] = median_iqr(s[key] for s in group_slices)
        summary[f"{key}_slice"]["both_empty"] = sum(s[key] is None for s in group_slices)
    for structure in ("myocardium", "scar"):
        summary[f"hd95_{structure}_mm"] = median_iqr(c[f"hd95_{structure}_mm"] for c in cases)
        summary[f"hd95_{structure}_2d_mm"] = median_iqr(s[f"hd95_{structure}_2d_mm"] for s in slices)
    for quantity in ("scar_ml", "scar_pct_lvm", "myocardium_ml"):
        summary[quantity] = _agreement(cases, quantity)
    if mvo_cases:
        for quantity in ("mvo_ml", "mvo_pct_lvm", "mvo_pct_infarct"):
            summary[quantity] = _agreement(mvo_cases, quantity)
    infarct = [c for c in cases if c["scar_ml_reference"] > 0]
    summary["dice_scar_infarct_patient"] = median_iqr(c["dice_scar"] for c in infarct)  # Dice over infarcts only
    summary["scar_pct_lvm_normal_prediction"] = median_iqr(  # false scar of normal patients, % LVM
        c["scar_pct_lvm_prediction"] for c in cases if c["scar_ml_reference"] == 0)
    summary["patient_failures"] = patient_failures(cases)
    summary["scar_presence_patient"] = detection([c["scar_present_reference"] for c in cases],
                                                 [c["scar_present_prediction"] for c in cases])
    summary["scar_presence_slice"] = detection([s["scar_present_reference"] for s in slices],
                                               [s["scar_present_prediction"] for s in slices])
    if cases and "segments" in cases[0]:
        summary["transmurality"] = transmurality_agreement.summarise_segments(cases)
    return summary


def evaluate_folders(prediction_dir: str, reference_dir: str, out_dir: Optional[str] = None,
                     scheme: Optional[LabelScheme] = None, name: str = "prediction", pictures: bool = True,
                     min_scar_area_mm2: float = MIN_SCAR_AREA_MM2, images_dir: Optional[str] = None,
                     transmurality: bool = True, mvo_assessed: Optional[bool] = None) -> Dict:
    """Evaluate every reference case; writes evaluation.json, cases.csv, slices.csv, segments.csv and PNGs to
    `out_dir`. `images_dir` (nnU-Net names `<case>_0000.nii.gz`) gives the reference's orientation for AHA
    segments in the transmurality agreement; without it fixed sectors per slice are used (unless the affine
    carries a patient orientation).

    Without `scheme`, the EMIDEC defaults for the references and the prediction folder's dataset.json (nnU-Net
    prediction folders hold one) for the predictions. MVO is assessed per patient, never from the other patients
    of the folders, when both sides carry it (`label_scheme.labels_carry_mvo`: a declared MVO label, or the MVO
    value in that patient's label map); not assessed (null, `mvo_status`) when `mvo_assessed` is False
    (`--mvo-merged`), the prediction folder's dataset.json has no MVO label, or an undeclared label map of the
    patient holds no MVO value."""
    folder_scheme, folder_scheme_file = _scheme_of_folder(prediction_dir)
    prediction_scheme = scheme or folder_scheme
    scheme = scheme or LabelScheme()
    names = matched_cases(prediction_dir, reference_dir)
    image_paths = {case: None for case in names}
    if images_dir:
        if not os.path.isdir(images_dir):
            raise EvaluationInputError(f"{images_dir}: not a folder (images)")
        image_paths = {case: os.path.join(images_dir, f"{case}_0000.nii.gz") for case in names}
        missing = [p for p in image_paths.values() if not os.path.isfile(p)]
        if missing:
            raise EvaluationInputError(f"{missing[0]}: image of reference case {case_id_of(missing[0], image=True)} "
                                       f"not found ({len(missing)} missing in {images_dir})")
    cases = []
    for case in tqdm(names, desc=f"evaluating {name}", unit="case"):
        cases.append(evaluate_case(os.path.join(prediction_dir, f"{case}.nii.gz"),
                                   os.path.join(reference_dir, f"{case}.nii.gz"), scheme, min_scar_area_mm2,
                                   image_paths[case], transmurality, prediction_scheme, mvo_assessed))
    result = {"name": name, "prediction_dir": prediction_dir, "reference_dir": reference_dir,
              "empty_rule": "Dice is undefined (null) when prediction and reference are both empty; such "
                            "cases/slices are counted in both_empty and left out of medians",
              "scar_presence_rule": f"a slice shows scar when its largest 8-connected scar region covers at least "
                                    f"{min_scar_area_mm2:g} mm^2; a patient when at least one slice does",
              "icc_form": "ICC(A,1) (McGraw & Wong 1996) = ICC(2,1) (Shrout & Fleiss 1979): two-way random, "
                          "absolute agreement, single measurement; F-based 95% CI",
              "images_dir": images_dir, "prediction_label_scheme_file": folder_scheme_file,
              "transmurality_kappa": transmurality_agreement.DEFINITION if transmurality else "not computed",
              "summary": summarise(cases), "cases": cases}
    if out_dir:
        prepare_output_dir(out_dir)
        with open(os.path.join(out_dir, "evaluation.json"), "w") as f:
            json.dump(result, f, indent=1)
        write_csv(os.path.join(out_dir, "cases.csv"),
                  [{k: v for k, v in c.items() if k not in ("slices", "segments")} for c in cases])
        write_csv(os.path.join(out_dir, "slices.csv"), [{"case": c["case"], **s} for c in cases for s in c["slices"]])
        if transmurality:
            write_csv(os.path.join(out_dir, "segments.csv"),
                      [{"case": c["case"], **s} for c in cases for s in c["segments"]])
        if pictures:
            for quantity, unit in (("scar_ml", "mL"), ("scar_pct_lvm", "% LVM")):
                x, y = paired([c[f"{quantity}_reference"] for c in cases],
                              [c[f"{quantity}_prediction"] for c in cases])
                agreement_png(x, y, result["summary"][quantity], quantity, unit,
                              os.path.join(out_dir, f"agreement_{quantity}.png"))
            dice_png({"myocardium": [c["dice_myocardium"] for c in cases],
                      "scar": [c["dice_scar"] for c in cases]}, os.path.join(out_dir, "dice_per_patient.png"),
                     f"{name}: per-patient Dice")
    return result


def _agreement_value(result: Dict, key: str):
    """A CCC / ICC value, or 'undefined (reason)' (never an empty cell that reads as missing data)."""
    return result[key] if result[key] is not None else f"undefined ({result.get('undefined') or 'no value'})"


def comparison_rows(results: List[Dict]) -> List[Dict]:
    """One table row per evaluated method: the headline numbers side by side, per-patient failures next to the
    medians (`patient_failures`); an undefined CCC or ICC reads 'undefined (reason)'."""
    fmt = format_median_iqr
    rows = []
    for r in results:
        s = r["summary"]
        failures = s["patient_failures"]
        rows.append({"method": r["name"], "n_cases": s["n_cases"],
                     "dice_myocardium_median_iqr": fmt(s["dice_myocardium_patient"]),
                     "dice_scar_median_iqr": fmt(s["dice_scar_patient"]),
                     "dice_scar_infarct_median_iqr": fmt(s["dice_scar_infarct_patient"]),
                     "n_infarct": failures["n_infarct"], "n_infarct_scar_missed": failures["n_infarct_scar_missed"],
                     "scar_pct_lvm_normal_median_iqr": fmt(s["scar_pct_lvm_normal_prediction"]),
                     "n_normal": failures["n_normal"],
                     f"n_normal_false_scar_ge_{FALSE_SCAR_PCT_LVM:g}pct_lvm": failures["n_normal_false_scar"],
                     "n_no_myocardium_predicted": len(failures["no_myocardium_predicted_cases"]),
                     "scar_ml_ccc": _agreement_value(s["scar_ml"]["concordance"], "ccc"),
                     "scar_ml_bias": s["scar_ml"]["bland_altman"]["bias"],
                     "scar_pct_lvm_ccc": _agreement_value(s["scar_pct_lvm"]["concordance"], "ccc"),
                     "scar_pct_lvm_bias": s["scar_pct_lvm"]["bland_altman"]["bias"],
                     "scar_ml_bias_pct": s["scar_ml"]["bland_altman"]["percent_bias"],
                     "scar_ml_cov_pct": s["scar_ml"]["bland_altman"]["cov_pct"],
                     "scar_ml_icc": _agreement_value(s["scar_ml"]["icc"], "icc"),
                     "scar_pct_lvm_icc": _agreement_value(s["scar_pct_lvm"]["icc"], "icc"),
                     "hd95_myocardium_2d_mm_median": s["hd95_myocardium_2d_mm"]["median"],
                     "scar_presence_sensitivity_patient": s["scar_presence_patient"]["sensitivity"],
                     "scar_presence_specificity_patient": s["scar_presence_patient"]["specificity"],
                     "transmurality_kappa_linear": s.get("transmurality", {}).get("kappa_linear")})
    return rows
