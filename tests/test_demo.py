"""The README's main job (scarnet-demo) end to end, with the tiny trainer so that it fits a CI budget."""
import json
import os
import sys

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli
from nnunetv2_scarnet.data.phantom import make_phantom

pytestmark = pytest.mark.slow


def test_phantoms_look_like_lge():
    image, label, spacing = make_phantom(seed=4, infarct=True)
    assert image.dtype == np.int16 and label.dtype == np.uint8 and image.shape == label.shape
    assert 1.4 <= spacing[0] <= 1.9 and spacing[0] == spacing[1] and 8.0 <= spacing[2] <= 10.0
    assert set(np.unique(label)) >= {0, 1, 2, 3}
    blood, myo, scar = (np.median(image[label == v]) for v in (1, 2, 3))
    assert scar > myo * 3 and blood > myo * 3  # bright scar and pool, nulled myocardium
    normal_image, normal_label, _ = make_phantom(seed=5, infarct=False)
    assert normal_label.max() == 2
    again, _, _ = make_phantom(seed=4, infarct=True)
    assert np.array_equal(again, image)  # deterministic given the seed


def test_demo_runs_end_to_end(tmp_path):
    workdir = tmp_path / "demo"
    out = run_cli([sys.executable, "-m", "nnunetv2_scarnet.demo", "--workdir", str(workdir), "--trainer",
                   "ScarNetTrainerTiny_smoke", "--train-cases", "5", "--test-cases", "1"],
                  dict(os.environ, PYTHONWARNINGS="ignore"))
    assert "Demo finished" in out
    assert "epoch 1/3: training ... running pseudo-Dice" in out and "epoch 3/3" in out  # progress while it trains
    summary = json.load(open(workdir / "summary.json"))
    assert len(summary["cases"]) == 1 and 0 <= summary["cases"][0]["dice_myocardium"] <= 1
    assert summary["cases"][0]["scar_ml_reference"] > 0  # test phantoms all carry scar
    case = summary["cases"][0]["case"]
    html = workdir / "report" / case / f"{case}_report.html"  # the demo ends with scarnet report's HTML
    assert html.exists() and str(html) in out and "data:image/png;base64," in html.read_text()
    assert (workdir / "report" / case / "quantification" / "patients.csv").exists()
    assert (workdir / "evaluation" / "evaluation.json").exists()
    prediction = nib.load(workdir / "predictions" / f"{summary['cases'][0]['case']}.nii.gz")
    image = nib.load(workdir / "imagesTs" / f"{summary['cases'][0]['case']}_0000.nii.gz")
    assert prediction.shape == image.shape and np.allclose(prediction.affine, image.affine)


def test_training_progress_lines(capsys):
    from nnunetv2_scarnet.demo import TrainingProgress, epochs_of

    assert epochs_of("ScarNetTrainerLite_demo") == 6 and epochs_of("nnUNetTrainer") is None
    progress = TrainingProgress(6, ["blood_pool", "myocardium", "scar"])
    for line in ["2026-01-01 10:00:00.1: Epoch 0\n", "2026-01-01 10:00:00.2: train_loss -0.1\n",
                 "2026-01-01 10:00:01.0: Pseudo dice [np.float32(0.8123), np.float32(0.5), np.float32(0.0)]\n",
                 "2026-01-01 10:00:01.1: Epoch time: 41.27 s\n"]:
        progress(line)
    assert capsys.readouterr().out == \
        "  epoch 1/6: training ... running pseudo-Dice blood_pool 0.81, myocardium 0.50, scar 0.00 (41 s)\n"


def test_demo_refuses_a_foreign_workdir(tmp_path):
    (tmp_path / "precious.txt").write_text("user data")
    from nnunetv2_scarnet.demo import main

    with pytest.raises(SystemExit, match="not made by scarnet-demo"):
        main(["--workdir", str(tmp_path)])
    assert (tmp_path / "precious.txt").exists()
