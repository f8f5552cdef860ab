"""Monte Carlo noise robustness of trained nnU-Net models (any trainer, stock included).

Noise model (Rician): LGE magnitude images are |S + n_re + i n_im| with n_re, n_im ~ N(0, sigma^2). The stored
stack may sit on an intensity offset and carry zero-filled borders, so noise is added to the baseline-corrected
signal S = max(I - b, 0) (b from `intensity_baseline`, zero voxels left zero) and b is added back.
SNR is defined on the reference blood pool: sigma = mean(S in blood pool) / SNR (stack-wide 95th percentile of S
when the reference has no blood pool).

The images carry noise of their own, so the nominal SNR is not the SNR the model sees. The image's noise sigma_0
is estimated in the reference blood pool from differences of neighbouring pixels (both inside the pool, along
both in-plane axes): sigma_0 = 1.4826 MAD(I_a - I_b) / sqrt(2), which cancels the slowly varying signal; at
blood-pool SNRs above ~3 Rician noise is close to Gaussian with the same sigma (Gudbjartsson & Patz 1995).
Fine texture and flow artefacts count as noise, so sigma_0 is an upper bound and the intrinsic SNR
S / sigma_0 a lower bound. Independent noise adds in variance: the effective SNR of a level is
S / sqrt(sigma_0^2 + sigma^2). The table reports per level the median (and range) over cases of the effective
SNR; the clean row's is the intrinsic SNR.

For each SNR level and seeded repeat, noisy copies of the test images are predicted with nnU-Net's predictor
(`python -m nnunetv2_scarnet.model_loading`, which is `nnUNetv2_predict_from_modelfolder` with checkpoints read
under the trust policy of docs/reliability.md; no test-time mirroring) and evaluated against the reference labels;
per level the table gives the mean +- SD over repeats of the per-patient mean Dice, and the CoV = SD / mean (%).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from typing import Dict, List, Optional, Sequence

import nibabel as nib
import numpy as np
from tqdm import tqdm

from nnunetv2_scarnet.evaluation.evaluate import evaluate_folders
from nnunetv2_scarnet.evaluation.threshold_baselines import intensity_baseline
from nnunetv2_scarnet.io_safety import discard_if_unused, prepare_output_dir
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, case_id_of, read_label_stack, read_stack
from nnunetv2_scarnet.quantification.report import write_csv


def add_rician_noise(image: np.ndarray, blood_pool: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy copy of `image` (same dtype) at the given blood-pool SNR."""
    baseline = intensity_baseline(image)
    signal = np.clip(image.astype(np.float64) - baseline, 0, None)
    reference = float(signal[blood_pool].mean()) if blood_pool.any() else float(np.percentile(signal, 95))
    sigma = reference / snr
    noisy = np.hypot(signal + rng.normal(0, sigma, image.shape), rng.normal(0, sigma, image.shape)) + baseline
    noisy[image == 0] = 0  # zero fill outside the acquired field of view stays zero
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        noisy = np.clip(np.round(noisy), info.min, info.max)
    return noisy.astype(image.dtype)


def image_noise(image: np.ndarray, blood_pool: np.ndarray) -> Dict[str, Optional[float]]:
    """Blood-pool signal S (as `add_rician_noise` uses it), the image's own noise sigma_0 and S / sigma_0."""
    baseline = intensity_baseline(image)
    signal = np.clip(image.astype(np.float64) - baseline, 0, None)
    reference = float(signal[blood_pool].mean()) if blood_pool.any() else float(np.percentile(signal, 95))
    data = image.astype(np.float64)
    differences = [(data[1:] - data[:-1])[blood_pool[1:] & blood_pool[:-1]],
                   (data[:, 1:] - data[:, :-1])[blood_pool[:, 1:] & blood_pool[:, :-1]]]
    d = np.concatenate(differences)
    if d.size < 10:
        return {"signal": reference, "sigma": None, "snr": None}
    sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2)
    return {"signal": reference, "sigma": sigma, "snr": reference / sigma if sigma > 0 else None}


def effective_snr(noise: Dict[str, Optional[float]], snr: Optional[float]) -> Optional[float]:
    """SNR after adding noise at nominal `snr` to an image with the given `image_noise` (None: clean image)."""
    if noise["sigma"] is None:
        return snr
    added = 0.0 if snr is None else noise["signal"] / snr
    total = float(np.hypot(noise["sigma"], added))
    return noise["signal"] / total if total > 0 else None


def reference_blood_pools(labels_dir: str, scheme: LabelScheme) -> Dict[str, np.ndarray]:
    """Blood-pool mask of every reference case (they define the SNR), read once for the whole study."""
    return {case_id_of(name): scheme.masks(read_label_stack(os.path.join(labels_dir, name), scheme).data)[3]
            for name in sorted(f for f in os.listdir(labels_dir) if f.endswith(".nii.gz"))}


def write_noisy_images(images_dir: str, blood_pools: Dict[str, np.ndarray], out_dir: str, snr: float,
                       seed: int) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for case, blood_pool in blood_pools.items():
        image = nib.load(os.path.join(images_dir, f"{case}_0000.nii.gz"))
        data = np.asarray(image.dataobj)
        # one independent stream per case, level and repeat, reproducible from the seed
        rng = np.random.default_rng([seed, int(snr * 1000), zlib.crc32(case.encode())])
        noisy = add_rician_noise(data, blood_pool, snr, rng)
        nib.save(nib.Nifti1Image(noisy, image.affine, image.header), os.path.join(out_dir, f"{case}_0000.nii.gz"))


def check_study_inputs(models: Dict[str, str], folds: Sequence[str], images_dir: str, labels_dir: str,
                       cases: Sequence[str]) -> None:
    """Everything the study needs, checked before its output folder is made: each model folder has
    dataset.json, plans.json and fold_<f>/checkpoint_final.pth; each case has a readable, finite image. The
    checkpoints are read (trust policy) by the prediction; a refused one leaves no output folder behind."""
    if not models:
        raise ValueError("no --model given")
    if not cases:
        raise ValueError(f"{labels_dir}: no .nii.gz label files")
    for name, model in models.items():
        needed = ["dataset.json", "plans.json"] + [os.path.join(f"fold_{f}", "checkpoint_final.pth") for f in folds]
        missing = [n for n in needed if not os.path.isfile(os.path.join(model, n))]
        if missing:
            raise ValueError(f"{model}: model {name!r} is not an nnU-Net model folder (missing {', '.join(missing)})")
    for case in cases:
        read_stack(os.path.join(images_dir, f"{case}_0000.nii.gz"))


def predict_folder(model_dir: str, folds: Sequence[str], images: str, out: str, device: str, env: Dict,
                   trust_model: bool = False) -> None:
    cmd = [sys.executable, "-m", "nnunetv2_scarnet.model_loading", "-i", images, "-o", out, "-m", model_dir,
           "-f", *folds, "--disable_tta", "-device", device] + (["--trust-model"] if trust_model else [])
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode == 2 and lines:  # the model folder refused (bad file, untrusted checkpoint): its one line
        raise ValueError(lines[-1])
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}")


def noise_robustness(models: Dict[str, str], images_dir: str, labels_dir: str, out_dir: str,
                     snr_levels: Sequence[float] = (20, 10, 5), repeats: int = 3, seed: int = 0,
                     folds: Sequence[str] = ("0",), device: str = "cpu", scheme: Optional[LabelScheme] = None,
                     include_clean: bool = True, trust_model: bool = False) -> List[Dict]:
    """Run the Monte Carlo study for every model (name -> nnU-Net model folder); returns the table rows.
    `trust_model`: load checkpoints with pickle execution (see `model_loading`)."""
    scheme = scheme or LabelScheme()
    env = dict(os.environ)
    if device == "cpu":
        env.setdefault("nnUNet_def_n_proc", "1")
        env.setdefault("nnUNet_n_proc_DA", "0")
    levels = ([None] if include_clean else []) + list(snr_levels)
    blood_pools = reference_blood_pools(labels_dir, scheme)
    check_study_inputs(models, folds, images_dir, labels_dir, list(blood_pools))
    prepare_output_dir(out_dir)  # only after every input was checked: a bad --model leaves no folder behind
    noise_of_images = {case: image_noise(np.asarray(nib.load(os.path.join(images_dir, f"{case}_0000.nii.gz")).dataobj),
                                         pool) for case, pool in blood_pools.items()}
    rows, runs = [], []
    work = tempfile.mkdtemp(prefix="noise_", dir=out_dir)
    try:
        for level in levels:
            level_repeats = 1 if level is None else repeats
            for repeat in range(level_repeats):
                if level is None:
                    images = images_dir
                else:
                    images = os.path.join(work, f"snr{level:g}_r{repeat}")
                    write_noisy_images(images_dir, blood_pools, images, level, seed + repeat)
                for name, model in tqdm(models.items(), desc=f"SNR {level or 'clean'} repeat {repeat}",
                                        unit="model"):
                    predictions = os.path.join(work, f"pred_{name}_{level}_{repeat}")
                    predict_folder(model, folds, images, predictions, device, env, trust_model)
                    result = evaluate_folders(predictions, labels_dir, None, scheme, name, pictures=False,
                                              transmurality=False)  # Dice only
                    runs.append({"model": name, "snr": level, "repeat": repeat,
                                 "dice_myocardium": _mean(c["dice_myocardium"] for c in result["cases"]),
                                 "dice_scar": _mean(c["dice_scar"] for c in result["cases"])})
                if level is not None:
                    shutil.rmtree(images)
        for name in models:
            for level in levels:
                mine = [r for r in runs if r["model"] == name and r["snr"] == level]
                row = {"model": name, "snr": "clean" if level is None else level, "repeats": len(mine)}
                effective = [e for e in (effective_snr(n, level) for n in noise_of_images.values()) if e is not None]
                row.update({"snr_effective_median": float(np.median(effective)) if effective else None,
                            "snr_effective_min": float(np.min(effective)) if effective else None,
                            "snr_effective_max": float(np.max(effective)) if effective else None})
                for key in ("dice_myocardium", "dice_scar"):
                    values = np.array([r[key] for r in mine if r[key] is not None], float)
                    mean = float(values.mean()) if values.size else None
                    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0 if values.size else None
                    row.update({f"{key}_mean": mean, f"{key}_sd": sd,
                                f"{key}_cov_pct": 100 * sd / mean if mean else None})
                rows.append(row)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        discard_if_unused(out_dir)  # a model that fails to predict leaves no empty output folder behind
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_csv(os.path.join(out_dir, "noise_robustness.csv"), rows)
    with open(os.path.join(out_dir, "noise_robustness.json"), "w") as f:
        json.dump({"models": models, "snr_levels": list(snr_levels), "repeats": repeats, "seed": seed,
                   "image_noise": noise_of_images, "table": rows, "runs": runs}, f, indent=1)
    _plot(rows, os.path.join(out_dir, "noise_robustness.png"))
    return rows


def _mean(values):
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _plot(rows: List[Dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("dice_myocardium", "dice_scar")):
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model and r[f"{key}_mean"] is not None]
            labels = [f"{r['snr']}\n(eff. {r['snr_effective_median']:.1f})" if r["snr_effective_median"] else
                      str(r["snr"]) for r in mine]
            ax.errorbar(range(len(mine)), [r[f"{key}_mean"] for r in mine], yerr=[r[f"{key}_sd"] for r in mine],
                        marker="o", capsize=3, label=model)
            ax.set_xticks(range(len(mine)), labels)
        ax.set_xlabel("nominal SNR (blood pool), effective median")
        ax.set_ylabel(key.replace("_", " "))
        ax.set_ylim(0, 1)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
