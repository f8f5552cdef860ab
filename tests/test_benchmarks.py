"""The speed benchmark and the equal-budget protocol run unchanged on a CPU with a tiny budget."""
import csv
import json
import os

import pytest

from conftest import SMOKE_CASES, nnunet_env, python_cli, run_cli
from nnunetv2_scarnet.data.emidec import convert_emidec

pytestmark = pytest.mark.slow


def test_speed_benchmark_reports_ratios_to_stock(emidec_cases, tmp_path):
    env = nnunet_env(str(tmp_path))
    convert_emidec(emidec_cases, env["nnUNet_raw"], 531, "Speed", cases=SMOKE_CASES[:5], num_folds=5)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", "531", "-c", "2d", "-np", "1"], env)
    out = tmp_path / "speed.json"
    printed = run_cli(python_cli("nnunetv2_scarnet.benchmark.speed", "-d", "531", "--device", "cpu", "--trainers",
                                 "nnUNetTrainer", "ScarNetTrainerTiny", "--batch-size", "2", "--iterations", "2",
                                 "--warmup", "1", "--inference-repeats", "1", "--out", str(out)),
                      dict(env, nnUNet_n_proc_DA="0"))
    report = json.load(open(out))
    assert report["complete"] is True and not (tmp_path / "speed.json.part").exists()
    assert [r["trainer"] for r in report["rows"]] == ["nnUNetTrainer", "ScarNetTrainerTiny"]
    assert report["rows"][0]["ratio_step_time"] == 1.0 and report["rows"][0]["ratio_predict_mirroring"] == 1.0
    tiny = report["rows"][1]
    assert tiny["batch_size"] == 2 and tiny["train_samples_per_s"] > 0
    assert tiny["predict_s_per_10_slices_mirroring"] > tiny["predict_s_per_10_slices_no_mirroring"] > 0
    assert "| ScarNetTrainerTiny | 2 |" in printed and report["hardware"]


def test_equal_budget_protocol_tiny_cpu_check(emidec_cases, tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    for case in SMOKE_CASES:
        os.symlink(os.path.join(emidec_cases, case), cases / case)
    out = tmp_path / "out"
    run_cli(python_cli("nnunetv2_scarnet.benchmark.equal_budget", "--cases", str(cases), "--work",
                       str(tmp_path / "work"), "--out", str(out), "--budget-s", "1", "--device", "cpu",
                       "--processes", "1", "--trainers", "nnUNetTrainer", "ScarNetTrainerTiny", "--batch-size", "2",
                       "--iterations-per-epoch", "2", "--val-iterations", "1", "--disable-mirroring", "--fold", "1"),
            dict(os.environ, nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1"))
    report = json.load(open(out / "equal_budget.json"))
    # fold 1: the order is rotated (the ScarNet trainer first), the rows and the paired statistics keep the list's
    # first trainer as the reference
    assert report["run_order"] == ["ScarNetTrainerTiny", "nnUNetTrainer"] and "rotated by fold" in report["order_rule"]
    assert [(r["trainer"], r["run_position"]) for r in report["rows"]] == [("nnUNetTrainer", 2),
                                                                           ("ScarNetTrainerTiny", 1)]
    assert report["n_validation_patients"] >= 1
    for row in report["rows"]:
        # a 1-s budget: one epoch (its first step is start-up, the second is charged and uses up the budget)
        assert row["epochs"] == 1 and row["epoch_iterations"] == [2] and row["iterations_per_epoch"] == 2
        assert row["training_seconds"] > 0 and row["startup_seconds"] > 0 and row["compiled"] is False
        assert row["budget_epochs"][0]["charged_steps"] == 1 and row["budget_epochs"][0]["validation_steps"] == 1
        assert row["evaluation"]["n_cases"] == report["n_validation_patients"]
        assert (out / row["trainer"] / "evaluation.json").exists()
    assert [r["lr_schedule"]["scheduler"] for r in report["rows"]] == ["PolyLRScheduler", "GroupPolyLRScheduler"]
    assert "nnUNet_compile=f" in report["compile"] and "charged" in report["timing_rule"]
    paired = report["paired_comparison"]
    assert paired["reference_model"] == "nnUNetTrainer" and paired["comparisons"][0]["model"] == "ScarNetTrainerTiny"
    assert paired["comparisons"][0]["n_cases"] == report["n_validation_patients"]
    rows = list(csv.DictReader(open(out / "paired_comparison.csv")))
    # scar and myocardium Dice in three views each, false-positive scar in normals, scar %LVM CCC
    assert [r["model"] for r in rows] == ["ScarNetTrainerTiny"] * 8
    table = (out / "equal_budget.md").read_text()
    assert "protocol check with" in table and "| ScarNetTrainerTiny | 1 x 2 (2) |" in table
    assert "Early training, not convergence: 1 s of charged time" in table
    assert "1. ScarNetTrainerTiny, 2. nnUNetTrainer" in table
    assert "Compile: off for every trainer" in table and "Paired against nnUNetTrainer" in table
