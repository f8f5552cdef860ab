"""Every numeric CSV column of `quantify` and `evaluate` names its unit; transmurality (a fraction 0-1) is not
mistaken for the percent columns next to it."""
import csv
import json
import os
import re

import pytest

from nnunetv2_scarnet.evaluation import evaluate_folders
from nnunetv2_scarnet.quantification import quantify_folder

CASES = ["Case_N012", "Case_P002"]
#: unit suffixes (anywhere before an optional _reference/_prediction/_median... tail)
UNIT = re.compile(r"_(ml|g|mm|deg|px|pct|pct_lvm|pct_infarct|fraction)(_|$)")
#: numeric columns that are counts, indices, flags or dimensionless 0-1 coefficients by definition
DIMENSIONLESS = re.compile(r"^(n_.*|slice|sector|segment|direction|orientation_confidence|dice_.*|"
                           r"prediction_slices_outside_reference)$")


def _numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value not in ("True", "False")


def _columns(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return rows, {key: [r[key] for r in rows if r[key] != ""] for key in rows[0]}


@pytest.fixture(scope="module")
def outputs(emidec_cases, tmp_path_factory):
    root = tmp_path_factory.mktemp("csv_units")
    labels, images = root / "labels", root / "images"
    labels.mkdir()
    images.mkdir()
    for case in CASES:
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), labels / f"{case}.nii.gz")
        os.symlink(os.path.join(emidec_cases, case, "image.nii.gz"), images / f"{case}_0000.nii.gz")
    quantify_folder(str(labels), str(root / "q"), str(images), pictures=False)
    evaluate_folders(str(labels), str(labels), str(root / "e"), images_dir=str(images), pictures=False)
    return root


def test_every_numeric_csv_column_names_its_unit(outputs):
    checked = 0
    for folder, names in (("q", ["patients", "slices", "sectors", "aha"]), ("e", ["cases", "slices", "segments"])):
        for name in names:
            _, columns = _columns(outputs / folder / f"{name}.csv")
            for key, values in columns.items():
                if values and all(_numeric(v) for v in values):
                    checked += 1
                    assert UNIT.search(key) or DIMENSIONLESS.match(key), f"{folder}/{name}.csv: {key} has no unit"
    assert checked > 40


def test_transmurality_columns_are_fractions_and_extent_columns_percent(outputs):
    report = json.loads((outputs / "q" / "report.json").read_text())
    for name in ("sectors", "aha"):
        rows, columns = _columns(outputs / "q" / f"{name}.csv")
        assert "transmurality_mean" not in columns and "transmurality_max" not in columns
        for key in ("transmurality_mean_fraction", "transmurality_max_fraction"):
            assert columns[key] and all(0.0 <= float(v) <= 1.0 for v in columns[key])
        assert all(0.0 <= float(v) <= 100.0 for v in columns["scar_extent_pct"])
    # the CSV holds the report's values (JSON keys unchanged), only the header names the unit
    aha_rows, _ = _columns(outputs / "q" / "aha.csv")
    from_json = [r["transmurality_mean"] for c in report["cases"] for r in c["aha"]]
    from_csv = [None if r["transmurality_mean_fraction"] == "" else float(r["transmurality_mean_fraction"])
                for r in aha_rows]
    assert from_csv == pytest.approx(from_json)
    assert max(v for v in from_csv if v is not None) > 0.5  # Case_P002 has transmural scar: a fraction, not 50+
    rows, columns = _columns(outputs / "e" / "segments.csv")
    for key in ("transmurality_fraction_reference", "transmurality_fraction_prediction"):
        assert columns[key] and all(0.0 <= float(v) <= 1.0 for v in columns[key])
    assert "transmurality_reference" not in columns
