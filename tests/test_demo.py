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


#: scar_realism's measurements of how hard scar is to see: contrast to healthy myocardium (per slice), at the scar's
#: border with it (partial volume) and to the blood pool; a phantom's scar must not be easier than real scar
CONTRAST = ("slice_scar_nsd", "border_scar_nsd", "scar_minus_blood_nsd")
#: ... and its shape and amount, which must be real's: transmurality, thickness, extent, share of the myocardium
SHAPE = ("transmurality", "scar_thickness_mm", "circumferential_extent", "scar_fraction", "wall_mm")


def test_phantom_scar_is_as_hard_as_real_scar(emidec_cases):
    """The demo's phantoms against the real EMIDEC infarct cases (the expected ranges come from the real patients,
    not from the phantom's parameters): the phantoms' median contrast is at most real's 75th percentile (not
    easier), the share of scar a 2-SD threshold misses at least real's 25th percentile, and the scar's shape
    measurements within real's interquartile range."""
    from nnunetv2_scarnet.data.scar_realism import emidec_statistics, phantom_statistics, summarise

    real, phantom = summarise(emidec_statistics(emidec_cases)), summarise(phantom_statistics(20))
    assert real["scar_nsd"]["n"] >= 30 and phantom["scar_nsd"]["n"] == 20
    easier = {m: (round(phantom[m]["median"], 2), round(real[m]["q3"], 2))
              for m in CONTRAST if phantom[m]["median"] > real[m]["q3"]}
    assert not easier, f"phantom scar stands out more than real scar (phantom median, real q3): {easier}"
    assert phantom["scar_below_2sd"]["median"] >= real["scar_below_2sd"]["q1"]
    unlike = {m: (round(phantom[m]["median"], 2), round(real[m]["q1"], 2), round(real[m]["q3"], 2))
              for m in SHAPE if not real[m]["q1"] <= phantom[m]["median"] <= real[m]["q3"]}
    assert not unlike, f"phantom scar shaped unlike real scar (phantom median, real IQR): {unlike}"


def test_phantoms_are_labelled_lge_stacks():
    image, label, spacing = make_phantom(seed=4, infarct=True)
    assert image.dtype == np.int16 and label.dtype == np.uint8 and image.shape == label.shape
    assert 1.36 <= spacing[0] <= 1.75 and spacing[0] == spacing[1] and 8.0 <= spacing[2] <= 13.1  # EMIDEC's ranges
    assert set(np.unique(label)) >= {0, 1, 2, 3}
    healthy, scar = (np.median(image[label == v]) for v in (2, 3))
    assert scar > healthy + image[label == 2].std()  # enhanced scar (by how much: the test above, against real)
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

    assert epochs_of("ScarNetTrainerLite_demo") == 10 and epochs_of("nnUNetTrainer") is None
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
