"""Classical threshold baselines (n-SD, FWHM) and Monte Carlo Rician noise robustness."""
import json
import os

import nibabel as nib
import numpy as np
import pytest

from conftest import nnunet_env, python_cli, run_cli
from nnunetv2_scarnet.data.emidec import convert_emidec
from nnunetv2_scarnet.evaluation.noise_robustness import add_rician_noise
from nnunetv2_scarnet.evaluation.threshold_baselines import intensity_baseline, threshold_scar

NOISE_CASES = ["Case_N012", "Case_N014", "Case_P001", "Case_P002", "Case_P007"]


def synthetic_ring():
    """Ring myocardium: darkest sector (remote) at 100 +- known spread, one bright 'scar' sector at 300."""
    ii, jj = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    radius, angle = np.hypot(ii - 32, jj - 32), np.degrees(np.arctan2(jj - 32, ii - 32)) % 360
    myo = ((radius >= 10) & (radius < 16))[..., None]
    pool = (radius < 10)[..., None]
    image = np.full((64, 64, 1), 50.0)
    image[..., 0][myo[..., 0]] = 150.0
    remote = myo[..., 0] & (angle < 60)
    image[..., 0][remote] = 100.0 + 10.0 * np.where((ii + jj) % 2 == 0, 1, -1)[remote]  # mean 100, SD ~10
    scar = myo[..., 0] & (angle >= 180) & (angle < 240)
    image[..., 0][scar] = 300.0
    image[..., 0][pool[..., 0]] = 250.0
    return image, myo, pool, scar


def test_nsd_and_fwhm_thresholds_by_hand():
    image, myo, pool, scar = synthetic_ring()
    remote = image[..., 0][myo[..., 0] & (image[..., 0] < 120)]
    mean, sd = remote.mean(), remote.std()
    for n in (2, 3, 5, 6):
        got = threshold_scar(image, myo, pool, (1.0, 1.0, 8.0), f"{n}SD")[..., 0]
        assert np.array_equal(got, myo[..., 0] & (image[..., 0] > mean + n * sd))
    # 2SD (120) and 3SD (130) flag the 150-level myocardium too; 5SD (150) and 6SD (160) only the scar
    assert threshold_scar(image, myo, pool, (1.0, 1.0, 8.0), "5SD")[..., 0].sum() == scar.sum()
    baseline = intensity_baseline(image)
    assert baseline == 50.0
    fwhm = threshold_scar(image, myo, pool, (1.0, 1.0, 8.0), "FWHM")[..., 0]
    assert np.array_equal(fwhm, myo[..., 0] & (image[..., 0] >= 50 + 0.5 * (300 - 50)))
    assert np.array_equal(fwhm, scar)


def test_baselines_command_on_real_patients(emidec_cases, tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for case in ("Case_P001", "Case_P002", "Case_P004", "Case_N012"):
        os.symlink(os.path.join(emidec_cases, case, "image.nii.gz"), images / f"{case}_0000.nii.gz")
        os.symlink(os.path.join(emidec_cases, case, "label.nii.gz"), labels / f"{case}.nii.gz")
    out = tmp_path / "out"
    run_cli(python_cli("nnunetv2_scarnet.cli", "baselines", str(images), str(labels), str(labels), str(out),
                       "--deep", f"expert={labels}"), dict(os.environ))
    table = (out / "comparison.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in table[1:]] == ["expert", "2SD", "3SD", "5SD", "6SD", "FWHM"]
    sizes = {m: int(sum((np.asarray(nib.load(out / "labels" / m / "Case_P002.nii.gz").dataobj) == 3).sum()
                        for _ in [0])) for m in ("2SD", "3SD", "5SD", "6SD")}
    assert sizes["2SD"] >= sizes["3SD"] >= sizes["5SD"] >= sizes["6SD"]  # stricter thresholds, less scar
    fwhm = json.load(open(out / "FWHM" / "evaluation.json"))["summary"]
    assert fwhm["dice_myocardium_patient"]["median"] == 1.0  # the myocardium is the given one
    assert 0.2 < fwhm["dice_scar_patient"]["median"] < 1.0


def test_rician_noise_model():
    rng = np.random.default_rng(0)
    image = np.full((200, 200, 2), 2000, np.int16)  # offset baseline like EMIDEC air
    image[:, :, :][:50] = 0                        # zero-filled border
    image[100:180, 100:180] = 2400                 # blood pool: signal 400 above baseline
    pool = np.zeros(image.shape, bool)
    pool[100:180, 100:180] = True
    noisy = add_rician_noise(image, pool, snr=20.0, rng=rng)
    assert noisy.dtype == np.int16 and np.all(noisy[:50] == 0)
    inside = noisy[110:170, 110:170].astype(float)
    assert inside.std() == pytest.approx(400 / 20, rel=0.1)  # high SNR: Rician ~ Gaussian with sigma
    background = noisy[60:90, 60:90].astype(float) - 2000  # zero signal: Rayleigh, mean sigma*sqrt(pi/2)
    assert background.mean() == pytest.approx(20 * np.sqrt(np.pi / 2), rel=0.1)
    again = add_rician_noise(image, pool, 20.0, np.random.default_rng(0))
    assert np.array_equal(again, noisy)


@pytest.mark.slow
def test_noise_command_end_to_end_on_a_tiny_model(emidec_cases, tmp_path):
    env = nnunet_env(str(tmp_path))
    convert_emidec(emidec_cases, env["nnUNet_raw"], 521, "Noise", cases=NOISE_CASES, num_folds=5)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", "521", "-c", "2d", "-np", "1"], env)
    train_env = dict(env, nnUNet_n_proc_DA="0")
    run_cli(["nnUNetv2_train", "521", "2d", "0", "-tr", "ScarNetTrainerTiny_smoke", "-device", "cpu"], train_env)
    splits = json.load(open(os.path.join(env["nnUNet_preprocessed"], "Dataset521_Noise", "splits_final.json")))
    test_case = splits[0]["val"][0]
    images, labels = tmp_path / "ts_images", tmp_path / "ts_labels"
    images.mkdir()
    labels.mkdir()
    raw = os.path.join(env["nnUNet_raw"], "Dataset521_Noise")
    os.symlink(os.path.join(raw, "imagesTr", f"{test_case}_0000.nii.gz"), images / f"{test_case}_0000.nii.gz")
    os.symlink(os.path.join(raw, "labelsTr", f"{test_case}.nii.gz"), labels / f"{test_case}.nii.gz")
    model = os.path.join(env["nnUNet_results"], "Dataset521_Noise", "ScarNetTrainerTiny_smoke__nnUNetPlans__2d")
    out = tmp_path / "noise"
    run_cli(python_cli("nnunetv2_scarnet.cli", "noise", "--model", f"tiny={model}", str(images), str(labels),
                       str(out), "--snr", "10", "--repeats", "2", "--seed", "1"), train_env)
    result = json.load(open(out / "noise_robustness.json"))
    assert [(r["model"], r["snr"], r["repeats"]) for r in result["table"]] == [("tiny", "clean", 1),
                                                                              ("tiny", 10.0, 2)]
    assert len(result["runs"]) == 3
    for row in result["table"]:
        assert 0 <= row["dice_myocardium_mean"] <= 1
    assert (out / "noise_robustness.png").stat().st_size > 0 and (out / "noise_robustness.csv").exists()
    assert [d for d in os.listdir(out) if d.startswith("noise_") and os.path.isdir(out / d)] == []
