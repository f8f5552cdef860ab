"""Classical threshold baselines (n-SD, FWHM) and Monte Carlo Rician noise robustness."""
import csv
import json
import os

import nibabel as nib
import numpy as np
import pytest

from conftest import nnunet_env, python_cli, raw_dataset_of, run_cli
from nnunetv2_scarnet.evaluation.noise_robustness import add_rician_noise, effective_snr, image_noise
from nnunetv2_scarnet.evaluation.threshold_baselines import (fill_enclosed, intensity_baseline, remote_statistics,
                                                              threshold_scar)

def synthetic_ring():
    """Ring myocardium (1 mm pixels) on an air level of 50: normal myocardium 150 +- 10, blood pool 250, a bright
    scar sector at 300 (180-240 deg) with a dark MVO core (120) inside, a moderately bright normal region at 190
    (60-120 deg, 0.7 x the blood-pool signal) and a 3-pixel bright speck at 280."""
    ii, jj = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    radius, angle = np.hypot(ii - 32, jj - 32), np.degrees(np.arctan2(jj - 32, ii - 32)) % 360
    myo = (radius >= 10) & (radius < 16)
    pool = radius < 10
    image = np.full((64, 64), 50.0)
    image[myo] = 150.0 + 10.0 * np.where((ii + jj) % 2 == 0, 1, -1)[myo]
    image[pool] = 250.0
    scar = myo & (angle >= 180) & (angle < 240)
    core = scar & (radius >= 12.5) & (radius < 13.5) & (angle >= 200) & (angle < 220)
    image[scar] = 300.0
    image[core] = 120.0
    moderate = myo & (angle >= 60) & (angle < 120)
    image[moderate] = 190.0
    speck = np.zeros_like(myo)
    rows, cols = np.argwhere(myo & (angle > 300) & (angle < 330) & (radius > 12) & (radius < 14))[:3].T
    speck[rows, cols] = True
    image[speck] = 280.0
    return (image[..., None], myo[..., None], pool[..., None],
            {"scar": scar, "core": core, "moderate": moderate, "speck": speck})


SPACING = (1.0, 1.0, 8.0)


def test_remote_gate_fwhm_and_mvo_filling_by_hand():
    image, myo, pool, parts = synthetic_ring()
    assert intensity_baseline(image) == 50.0
    signal = image[..., 0] - 50.0
    mean, sd = remote_statistics(signal, myo[..., 0], pool[..., 0], SPACING[:2])
    assert mean == pytest.approx(100.0, abs=1.0) and sd == pytest.approx(10.0, abs=0.5)  # not the speck, not scar
    m = myo[..., 0]
    expected = parts["scar"] | parts["core"]
    for n in (2, 3, 5, 6):
        naive = threshold_scar(image, myo, pool, SPACING, f"{n}SD", gate=None, fill_mvo=False)[..., 0]
        assert np.array_equal(naive, m & (signal > mean + n * sd))
        gated, filled = threshold_scar(image, myo, pool, SPACING, f"{n}SD", return_filled=True)
        assert np.array_equal(gated[..., 0], expected)  # speck too small, moderate region not enhanced
        assert np.array_equal(filled[..., 0], parts["core"])  # the dark core is filled
    naive = threshold_scar(image, myo, pool, SPACING, "2SD", gate=None, fill_mvo=False)[..., 0]
    assert naive[parts["moderate"]].all() and naive[parts["speck"]].all() and not naive[parts["core"]].any()
    # FWHM: maximum inside the hyper-enhanced region (250), half-way above the remote myocardium
    assert np.array_equal(threshold_scar(image, myo, pool, SPACING, "FWHM")[..., 0], expected)
    naive_fwhm = threshold_scar(image, myo, pool, SPACING, "FWHM", gate=None, fill_mvo=False)[..., 0]
    assert np.array_equal(naive_fwhm, m & (signal >= 0.5 * 250.0)) and naive_fwhm[parts["moderate"]].all()
    # normal myocardium (no scar) stays normal under the gate, whatever n
    normal = image.copy()
    normal[..., 0][parts["scar"]] = 150.0
    for method in ("2SD", "3SD", "FWHM"):
        assert not threshold_scar(normal, myo, pool, SPACING, method).any()
        assert threshold_scar(normal, myo, pool, SPACING, method, gate=None).any()
    # a scar bright enough at gate 0.9 is rejected by a stricter gate
    assert not threshold_scar(image, myo, pool, SPACING, "3SD", gate=1.3).any()
    with pytest.raises(ValueError, match="unknown threshold method"):
        threshold_scar(image, myo, pool, SPACING, "XSD")


def test_mvo_core_touching_the_cavity_is_filled():
    ii, jj = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    radius, angle = np.hypot(ii - 20, jj - 20), np.degrees(np.arctan2(jj - 20, ii - 20)) % 360
    myo, pool = (radius >= 8) & (radius < 14), radius < 8
    scar = myo & (angle < 90)
    core = scar & (radius < 11) & (angle > 30) & (angle < 60)  # subendocardial dark core open to the cavity
    scar &= ~core
    assert np.array_equal(fill_enclosed(scar, myo, pool), core)
    assert not fill_enclosed(np.zeros_like(myo), myo, pool).any()


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
    with open(out / "comparison.csv") as f:
        table = list(csv.DictReader(f))
    # n-SD / FWHM plus the blood-pool gate are named so, not as the textbook methods
    gated = ["2SD+gate", "3SD+gate", "5SD+gate", "6SD+gate", "FWHM+gate"]
    assert [row["method"] for row in table] == ["expert"] + gated

    def scar_pct(folder, method, case):
        label = np.asarray(nib.load(folder / "labels" / method / f"{case}.nii.gz").dataobj)
        return 100 * (label >= 3).sum() / (label >= 2).sum()

    sizes = {m: scar_pct(out, m, "Case_P002") for m in gated[:4]}
    assert sizes["2SD+gate"] >= sizes["3SD+gate"] >= sizes["5SD+gate"] >= sizes["6SD+gate"] > 0  # stricter, less
    fwhm = json.load(open(out / "FWHM+gate" / "evaluation.json"))
    assert fwhm["name"] == "FWHM+gate"
    fwhm = fwhm["summary"]
    assert fwhm["dice_myocardium_patient"]["median"] == 1.0  # the myocardium is the given one
    assert 0.5 < fwhm["dice_scar_patient"]["median"] < 1.0
    # the normal patient stays (nearly) normal; the naive baselines call a large part of it scar
    assert scar_pct(out, "FWHM+gate", "Case_N012") < 5 and scar_pct(out, "3SD+gate", "Case_N012") < 5
    naive = tmp_path / "naive"
    run_cli(python_cli("nnunetv2_scarnet.cli", "baselines", str(images), str(labels), str(labels), str(naive),
                       "--naive"), dict(os.environ))
    assert scar_pct(naive, "FWHM", "Case_N012") > 20
    # per-patient failures next to the medians, counted here from the written label maps
    for folder, names in ((out, gated), (naive, ["2SD", "3SD", "5SD", "6SD", "FWHM"])):
        with open(folder / "comparison.csv") as f:
            rows = {row["method"]: row for row in csv.DictReader(f)}
        for name in names:
            row = rows[name]
            assert (row["n_normal"], row["n_infarct"]) == ("1", "3")
            assert int(row["n_normal_false_scar_ge_2pct_lvm"]) == int(scar_pct(folder, name, "Case_N012") >= 2)
            missed = sum(not (np.asarray(nib.load(folder / "labels" / name / f"{c}.nii.gz").dataobj) >= 3).any()
                         for c in ("Case_P001", "Case_P002", "Case_P004"))
            assert int(row["n_infarct_scar_missed"]) == missed
    assert rows["FWHM"]["n_normal_false_scar_ge_2pct_lvm"] == "1"  # naive FWHM: > 20% of the normal is "scar"
    from nnunetv2_scarnet.cli import evaluation_commands
    from nnunetv2_scarnet.evaluation import threshold_baselines
    assert evaluation_commands.ENHANCEMENT_GATE == threshold_baselines.ENHANCEMENT_GATE


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


def test_effective_snr_combines_the_images_own_noise():
    rng = np.random.default_rng(3)
    image = np.full((200, 200, 2), 2000.0)
    image[100:180, 100:180] = 2400.0  # blood pool: signal 400
    image[:, :40] = 0
    image[100:180, 100:180] += 0.02 * np.arange(80)[None, :, None] * 10  # a slow ramp is not noise
    image[image > 0] += rng.normal(0, 16.0, int((image > 0).sum()))  # the image's own noise: sigma 16
    image = np.round(image).astype(np.int16)
    pool = np.zeros(image.shape, bool)
    pool[100:180, 100:180] = True
    own = image_noise(image, pool)
    assert own["sigma"] == pytest.approx(16.0, rel=0.08)
    assert own["snr"] == pytest.approx(own["signal"] / own["sigma"])
    assert effective_snr(own, None) == pytest.approx(own["snr"])
    predicted = effective_snr(own, 20.0)  # added sigma = signal / 20 ~ 20: combined ~ hypot(16, 20)
    assert predicted == pytest.approx(own["signal"] / np.hypot(16.0, own["signal"] / 20), rel=0.08)
    assert predicted < 20.0
    noisy = add_rician_noise(image, pool, 20.0, rng)
    measured = image_noise(noisy, pool)
    assert measured["snr"] == pytest.approx(predicted, rel=0.1)  # the prediction matches the noisy image
    assert image_noise(image, np.zeros_like(pool))["sigma"] is None


@pytest.mark.slow
def test_noise_command_end_to_end_on_a_tiny_model(tiny_model, tmp_path):
    """`scarnet noise` on a validation patient of the shared tiny model (trained by the stock commands)."""
    raw, model = raw_dataset_of(tiny_model), tiny_model
    splits = json.load(open(os.path.join(raw, "splits_final.json")))
    test_case = splits[0]["val"][0]
    images, labels = tmp_path / "ts_images", tmp_path / "ts_labels"
    images.mkdir()
    labels.mkdir()
    os.symlink(os.path.join(raw, "imagesTr", f"{test_case}_0000.nii.gz"), images / f"{test_case}_0000.nii.gz")
    os.symlink(os.path.join(raw, "labelsTr", f"{test_case}.nii.gz"), labels / f"{test_case}.nii.gz")
    train_env = nnunet_env(str(tmp_path), nnUNet_n_proc_DA="0")
    out = tmp_path / "noise"
    run_cli(python_cli("nnunetv2_scarnet.cli", "noise", "--model", f"tiny={model}", str(images), str(labels),
                       str(out), "--snr", "10", "--repeats", "2", "--seed", "1"), train_env)
    result = json.load(open(out / "noise_robustness.json"))
    assert [(r["model"], r["snr"], r["repeats"]) for r in result["table"]] == [("tiny", "clean", 1),
                                                                              ("tiny", 10.0, 2)]
    assert len(result["runs"]) == 3
    for row in result["table"]:
        assert 0 <= row["dice_myocardium_mean"] <= 1
    clean, noisy = result["table"]
    assert clean["snr_effective_median"] > noisy["snr_effective_median"] and noisy["snr_effective_median"] < 10
    assert list(result["image_noise"]) == [test_case] and result["image_noise"][test_case]["sigma"] > 0
    assert (out / "noise_robustness.png").stat().st_size > 0 and (out / "noise_robustness.csv").exists()
    assert [d for d in os.listdir(out) if d.startswith("noise_") and os.path.isdir(out / d)] == []


def test_baseline_label_maps_read_uncompressed_nifti_not_skip_it(emidec_cases, tmp_path):
    from nnunetv2_scarnet.evaluation.threshold_baselines import baseline_label_maps

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    os.symlink(os.path.join(emidec_cases, "Case_N012", "image.nii.gz"), images / "Case_N012_0000.nii.gz")
    nib.save(nib.load(os.path.join(emidec_cases, "Case_N012", "label.nii.gz")), str(labels / "Case_N012.nii"))
    folders = baseline_label_maps(str(images), str(labels), str(tmp_path / "out"), methods=("3SD",))
    assert list(folders) == ["3SD+gate"]
    assert os.listdir(folders["3SD+gate"]) == ["Case_N012.nii.gz"]
