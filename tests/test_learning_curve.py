"""The learning-curve benchmark's parts: private random streams, the reference-loss recorder, the report functions
and nnU-Net finding the curve trainers through nnUNet_extTrainer only (issues 14 §6, 21 §3)."""
import importlib.util
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the benchmark-only trainers: outside the installed package, imported here as nnU-Net imports them
CURVE_TRAINERS = os.path.join(REPO, "benchmarks", "curve_trainers")
sys.path.insert(0, CURVE_TRAINERS)
from learning_curve_recording import ReferenceLossRecorder, SeparateRngIterator, batch_fingerprint  # noqa: E402
from learning_curve_trainers import curve_settings_from_environment  # noqa: E402
sys.path.remove(CURVE_TRAINERS)


def load_script():
    spec = importlib.util.spec_from_file_location("learning_curve", os.path.join(REPO, "benchmarks",
                                                                                 "learning_curve.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draws():
    """An endless source that uses all three global generators, as nnU-Net's loader and augmentations do."""
    while True:
        yield random.random(), float(np.random.rand()), float(torch.rand(1))


def test_separate_stream_depends_on_its_seed_only_and_leaves_the_global_generators_alone():
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = [next(draws()) for _ in range(4)]  # what seeding all three generators with 7 gives
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    expected_outer = [next(draws()) for _ in range(4)]

    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    stream = SeparateRngIterator(draws(), seed=7)
    got, outer = [], []
    for _ in range(4):
        got.append(next(stream))
        outer.append(next(draws()))  # the rest of the program (e.g. a network with dropout) draws in between
    assert got == expected
    assert outer == expected_outer


def test_reference_loss_recorded_on_training_steps_only_at_full_resolution():
    records = []
    own = lambda output, target: torch.tensor(5.0)  # noqa: E731  (the trainer's own objective)
    reference = lambda output, target: (output - target).abs().mean()  # noqa: E731
    recorder = ReferenceLossRecorder(own, reference, records)
    output = [torch.full((1, 2, 4, 4), 3.0, requires_grad=True), torch.zeros(1, 2, 2, 2)]
    target = [torch.ones(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    assert float(recorder(output, target)) == 5.0
    assert records == [2.0]
    with torch.no_grad():  # nnU-Net validates under no_grad
        recorder(output, target)
    assert records == [2.0]


def test_batch_fingerprint_tells_batches_apart():
    a = {"data": torch.zeros(2, 1, 8, 8)}
    b = {"data": torch.zeros(2, 1, 8, 8)}
    b["data"][1, 0, 3, 3] = 1
    assert batch_fingerprint(a) == batch_fingerprint({"data": torch.zeros(2, 1, 8, 8)})
    assert batch_fingerprint(a) != batch_fingerprint(b)


def test_curve_settings_reject_bad_values(monkeypatch):
    monkeypatch.setenv("SCARNET_CURVE_ITERATIONS", "ten")
    with pytest.raises(ValueError, match="SCARNET_CURVE_ITERATIONS"):
        curve_settings_from_environment()
    monkeypatch.setenv("SCARNET_CURVE_ITERATIONS", "0")
    with pytest.raises(ValueError, match="SCARNET_CURVE_ITERATIONS"):
        curve_settings_from_environment()
    monkeypatch.setenv("SCARNET_CURVE_ITERATIONS", "3")
    assert curve_settings_from_environment()["curve_iterations"] == 3


def fake_curve(name, losses, dice, complete=True, batches=None):
    steps = [{"epoch": i // 2, "loss": l + 1, "reference_loss": l, "seconds": 1.0,
              "batch": (batches or "abcdefgh")[i]} for i, l in enumerate(losses)]
    epochs = [{"epoch": e, "samples_seen": 4 * (e + 1), "train_step_seconds": 2.0 * (e + 1), "loss": 1.5,
               "reference_loss": 0.5, "pseudo_dice": d, "mean_fg_dice": float(np.mean(d))} for e, d in enumerate(dice)]
    return {"base_trainer": name, "batch_size": 2, "classes": ["blood_pool", "myocardium", "scar"],
            "settings": {"curve_epochs": 2, "curve_iterations": 2}, "complete": complete, "steps": steps,
            "epochs": epochs, "validation_batches": ["v1", "v2"]}


def test_report_table_rows_and_batch_agreement():
    script = load_script()
    stock = fake_curve("nnUNetTrainer", [0.9, 0.8, 0.7, 0.6], [[0.1, 0.2, 0.0], [0.5, 0.25, 0.125]])
    hybrid = fake_curve("Hybrid", [0.9, 0.8], [[0.2, 0.3, 0.1]], complete=False)
    table = script.markdown_table([stock, hybrid]).splitlines()
    assert len(table) == 2 + 3
    assert table[3] == ("| nnUNetTrainer | 2 | 8 | 4 | 1.500 | 0.500 | 0.500 | 0.250 | 0.125 | 0.292 |")
    assert table[4].startswith("| Hybrid (stopped after 1 of 2 epochs) | 1 | 4 |")
    assert script.batches_agree([stock, hybrid]) == {"same_training_batches": True, "compared_steps": 2,
                                                     "same_validation_batches": True}
    other = fake_curve("Other", [0.9, 0.8], [[0.2, 0.3, 0.1]], batches="axcd")
    assert script.batches_agree([stock, other])["same_training_batches"] is False


def test_running_mean_matches_numpy():
    script = load_script()
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    window = 3
    expected = [np.mean(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]
    assert np.allclose(script.running_mean(values, window), expected)


def test_plot_is_a_small_png(tmp_path):
    script = load_script()
    stock = fake_curve("nnUNetTrainer", [0.9, 0.8, 0.7, 0.6], [[0.1, 0.2, 0.0], [0.5, 0.25, 0.125]])
    path = str(tmp_path / "curve.png")
    script.plot_curves([stock], path, "test")
    assert Image.open(path).format == "PNG" and os.path.getsize(path) < 300_000


def test_nnunet_finds_the_curve_trainers_through_ext_trainer_only():
    """With nnUNet_extTrainer at benchmarks/curve_trainers (what learning_curve.py sets), nnU-Net's own lookup finds
    each control's curve trainer on the right base; without it, none."""
    code = ("import sys\n"
            "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
            "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n"
            "from nnunetv2_scarnet.trainers import variants\n"
            "bases = {'nnUNetTrainer': nnUNetTrainer, **{n: getattr(variants, n) for n in sys.argv[1:]}}\n"
            "for name, base in bases.items():\n"
            "    try:\n"
            "        found = find('LearningCurve_' + name)\n"
            "    except RuntimeError:\n"
            "        print('missing', name)\n"
            "        continue\n"
            "    assert found.__mro__[2] is base, found.__mro__\n"
            "    print('found', name)\n")
    arms = ["ScarNetTrainer_stockNetwork", "ScarNetTrainerLiteHybrid", "ScarNetTrainerLiteHybrid_scratch",
            "ScarNetTrainerLiteHybrid_stockRecipe"]
    script = load_script()
    assert list(script.DEFAULT_ARMS) == ["nnUNetTrainer"] + arms
    for ext, word in ((script.CURVE_TRAINERS, "found"), (None, "missing")):
        env = dict(os.environ)
        env.pop("nnUNet_extTrainer", None)
        if ext:
            env["nnUNet_extTrainer"] = ext
        result = subprocess.run([sys.executable, "-c", code, *arms], env=env, capture_output=True, text=True,
                                timeout=900)
        lines = [line for line in result.stdout.splitlines() if line.startswith(("found", "missing"))]
        assert result.returncode == 0 and lines == [f"{word} {n}" for n in ["nnUNetTrainer"] + arms], (
            result.stdout[-2000:] + result.stderr[-3000:])


def test_loss_table_means_per_block_including_a_run_stopped_mid_epoch():
    script = load_script()
    stock = fake_curve("nnUNetTrainer", [0.9, 0.7, 0.6, 0.4], [[0.1, 0.2, 0.0], [0.5, 0.25, 0.125]])
    hybrid = fake_curve("Hybrid", [1.0, 0.5, 0.3], [[0.2, 0.3, 0.1]], complete=False)
    rows = script.loss_table([stock, hybrid], block=2).splitlines()
    assert rows[2] == "| 1-4 | 0.800 | 0.750 |"
    assert rows[3] == "| 5-8 | 0.500 |  |"
