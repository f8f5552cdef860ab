"""Per-slice and per-patient myocardium, scar, MVO and blood-pool volumes, masses and scar % of LV myocardium.

MVO is reported only when the labels carry it (`mvo_assessed`; default `label_scheme.labels_carry_mvo`: a dataset.json
declares an MVO label, or an MVO value occurs in this patient's label map). When MVO was merged into scar (the dataset
converter's default), its volumes are None and `mvo_status` says `not_assessed` with the reason, never 0.0 mL."""
from typing import Dict, List, Optional

from nnunetv2_scarnet.quantification.label_scheme import (MYOCARDIAL_DENSITY_G_PER_ML, LabelScheme, Stack,
                                                          labels_carry_mvo, mvo_status)


def _pct(part: float, whole: float):
    return 100.0 * part / whole if whole > 0 else None


def slice_volumes(label: Stack, scheme: LabelScheme, mvo_assessed: Optional[bool] = None) -> List[Dict]:
    """One row per slice: `scar_pct_slice_myocardium` is the slice's scar as % of that slice's myocardium (None
    without myocardium, status 'no_myocardium'); `scar_share_pct_lvm` is the slice's scar as % of the myocardium of
    the whole stack, so that the slices' shares add up to the patient's scar % of LV myocardium. (Before
    2026-12-05 the first was named `scar_pct_lvm`, which it is not: P002's slices added up to 172 %.)"""
    mvo_assessed = labels_carry_mvo(scheme, [label.data]) if mvo_assessed is None else mvo_assessed
    myo, scar, mvo, pool = scheme.masks(label.data)
    rows = []
    for k in range(label.data.shape[2]):
        myo_ml = float(myo[..., k].sum()) * label.voxel_ml
        scar_ml = float(scar[..., k].sum()) * label.voxel_ml
        rows.append({
            "slice": k,
            "myocardium_ml": myo_ml,
            "scar_ml": scar_ml,
            "mvo_ml": float(mvo[..., k].sum()) * label.voxel_ml if mvo_assessed else None,
            "blood_pool_ml": float(pool[..., k].sum()) * label.voxel_ml,
            "scar_pct_slice_myocardium": _pct(scar_ml, myo_ml),
            "scar_share_pct_lvm": None,
            "status": "ok" if myo_ml > 0 else ("scar_without_myocardium" if scar_ml > 0 else "no_myocardium"),
        })
    total = sum(r["myocardium_ml"] for r in rows)
    for r in rows:
        r["scar_share_pct_lvm"] = _pct(r["scar_ml"], total) if r["myocardium_ml"] > 0 or r["scar_ml"] > 0 else None
    return rows


def patient_volumes(label: Stack, scheme: LabelScheme, slices: List[Dict] = None,
                    mvo_assessed: Optional[bool] = None) -> Dict:
    """Totals over the stack: volumes (mL), masses (g, 1.05 g/mL), scar % of LV myocardium, slice counts; MVO
    volume, % of LV myocardium and % of the infarct (scar incl. MVO) when assessed (decided for this label map
    alone, `label_scheme.labels_carry_mvo`, unless `mvo_assessed` says)."""
    forced_off = mvo_assessed is False
    mvo_assessed = labels_carry_mvo(scheme, [label.data]) if mvo_assessed is None else mvo_assessed
    slices = slices if slices is not None else slice_volumes(label, scheme, mvo_assessed)
    total = {key: float(sum(r[key] for r in slices))
             for key in ("myocardium_ml", "scar_ml", "blood_pool_ml")}
    mvo_ml = float(sum(r["mvo_ml"] or 0.0 for r in slices)) if mvo_assessed else None
    return {
        "myocardium_ml": total["myocardium_ml"], "scar_ml": total["scar_ml"], "mvo_ml": mvo_ml,
        "blood_pool_ml": total["blood_pool_ml"],
        "mvo_status": mvo_status(mvo_assessed, scheme, forced_off),
        "mvo_pct_lvm": _pct(mvo_ml, total["myocardium_ml"]) if mvo_assessed else None,
        "mvo_pct_infarct": _pct(mvo_ml, total["scar_ml"]) if mvo_assessed else None,
        "myocardium_g": total["myocardium_ml"] * MYOCARDIAL_DENSITY_G_PER_ML,
        "scar_g": total["scar_ml"] * MYOCARDIAL_DENSITY_G_PER_ML,
        "scar_pct_lvm": _pct(total["scar_ml"], total["myocardium_ml"]),
        "n_slices": len(slices),
        "n_slices_with_myocardium": sum(r["myocardium_ml"] > 0 for r in slices),
        "n_slices_with_scar": sum(r["scar_ml"] > 0 for r in slices),
        "slices_without_myocardium": [r["slice"] for r in slices if r["myocardium_ml"] == 0],
        "spacing_mm": list(label.spacing),
    }
