"""Real LGE, real console scripts: convert -> plan_and_preprocess (stock and ScarNetPlanner) -> nnUNetv2_train
(tiny ScarNet, killed after one epoch) -> --c resume -> nnUNetv2_predict / predict_from_modelfolder."""
import json
import os
import signal
import subprocess
import time

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import SMOKE_CASES, nnunet_env, run_cli
from nnunetv2_scarnet.data.emidec import convert_emidec

DATASET = "Dataset511_EmidecSmoke"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planned(emidec_cases, tmp_path_factory):
    """Six real patients converted and preprocessed with both planners; five folds, so that folds 1 and 2 validate
    one patient each (fold 0 two): nnU-Net's final validation in the training tests predicts no more than needed."""
    root = str(tmp_path_factory.mktemp("nnunet"))
    env = nnunet_env(root)
    convert_emidec(emidec_cases, env["nnUNet_raw"], 511, "EmidecSmoke", cases=SMOKE_CASES, num_folds=5)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", "511", "-c", "2d", "-np", "1"], env)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", "511", "-c", "2d", "-np", "1", "-pl", "ScarNetPlanner"], env)
    return root, env


def load_plans(env, name):
    with open(os.path.join(env["nnUNet_preprocessed"], DATASET, f"{name}.json")) as f:
        return json.load(f)


def test_scarnet_plans_record_the_network_and_match_stock_layout(planned):
    _, env = planned
    stock, ours = load_plans(env, "nnUNetPlans"), load_plans(env, "ScarNetPlans")
    assert list(ours["configurations"]) == ["2d"]
    s2d, o2d = stock["configurations"]["2d"], ours["configurations"]["2d"]
    assert o2d["architecture"]["network_class_name"] == "nnunetv2_scarnet.network.architectures.scarnet.ScarNet"
    kwargs = o2d["architecture"]["arch_kwargs"]
    assert kwargs["encoder"] == "medsam_vit_b" and kwargs["encoder_image_size"] == 512
    assert kwargs["conv_encoder"] is False and kwargs["attention"] == "scar"
    for key in ("n_stages", "features_per_stage", "strides", "kernel_sizes", "n_conv_per_stage"):
        assert kwargs[key] == s2d["architecture"]["arch_kwargs"][key]
    assert o2d["patch_size"] == s2d["patch_size"] and o2d["spacing"] == s2d["spacing"]
    assert 2 <= o2d["batch_size"] <= s2d["batch_size"]
    # same preprocessing: the preprocessed arrays (image, segmentation) and properties are identical
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    a = nnUNetDatasetBlosc2(os.path.join(env["nnUNet_preprocessed"], DATASET, "nnUNetPlans_2d"))
    b = nnUNetDatasetBlosc2(os.path.join(env["nnUNet_preprocessed"], DATASET, "ScarNetPlans_2d"))
    assert sorted(a.identifiers) == sorted(b.identifiers) == sorted(SMOKE_CASES)
    for case in SMOKE_CASES:
        (data_a, seg_a, _, props_a), (data_b, seg_b, _, props_b) = a.load_case(case), b.load_case(case)
        assert np.array_equal(np.asarray(data_a[:]), np.asarray(data_b[:]))
        assert np.array_equal(np.asarray(seg_a[:]), np.asarray(seg_b[:]))
        assert props_a["shape_after_cropping_and_before_resampling"] == \
            props_b["shape_after_cropping_and_before_resampling"]


def test_planner_variants_size_the_batch_for_their_encoder(planned):
    """Each planner variant records its trainer's network and a batch sized for that encoder."""
    _, env = planned
    batches = {}
    for planner, plans_name in (("ScarNetPlannerLite", "ScarNetLitePlans"),
                                ("ScarNetPlannerLiteHybrid", "ScarNetLiteHybridPlans")):
        run_cli(["nnUNetv2_plan_experiment", "-d", "511", "-pl", planner], env)
        config = load_plans(env, plans_name)["configurations"]["2d"]  # each variant its own plans file
        kwargs = config["architecture"]["arch_kwargs"]
        assert kwargs["encoder"] == "litemedsam" and kwargs["encoder_image_size"] == 256
        assert kwargs["conv_encoder"] is (planner == "ScarNetPlannerLiteHybrid")
        assert kwargs["encoder_input_window"] is None  # measured by the trainer on the preprocessed images
        batches[planner] = config["batch_size"]
    assert load_plans(env, "ScarNetPlans")["configurations"]["2d"]["architecture"]["arch_kwargs"]["encoder"] == \
        "medsam_vit_b"  # untouched by the variants
    from nnunetv2_scarnet.planners.scarnet_planner import encoder_batch_size

    stock = load_plans(env, "nnUNetPlans")["configurations"]["2d"]["batch_size"]
    assert batches["ScarNetPlannerLite"] == encoder_batch_size(stock, 8, "litemedsam", 256)
    # on a full dataset (stock batch 18 in 8 GB) the two encoders get different batches
    assert (encoder_batch_size(18, 8, "litemedsam", 256), encoder_batch_size(18, 8, "medsam_vit_b", 512)) == (4, 5)


def wait_for_epoch(process, marker, timeout):
    """Read the trainer's stdout until `marker` appears; return everything read."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    process.kill()
    pytest.fail(f"trainer never printed {marker!r}:\n{''.join(seen)[-3000:]}")


def check_prediction(prediction_path, image_path, allowed=(0, 1, 2, 3)):
    pred, image = nib.load(prediction_path), nib.load(image_path)
    assert pred.shape == image.shape
    assert np.allclose(pred.affine, image.affine, atol=1e-4)
    assert np.allclose(pred.header.get_zooms(), image.header.get_zooms(), atol=1e-5)
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= set(allowed)


def predict_validation_case(root, env, fold, command):
    """Predict the first validation patient of `fold` with a stock prediction command; check the result."""
    val_case = json.load(open(os.path.join(env["nnUNet_preprocessed"], DATASET, "splits_final.json")))[fold]["val"][0]
    images = os.path.join(root, f"test_images_fold{fold}")
    os.makedirs(images)
    source = os.path.join(env["nnUNet_raw"], DATASET, "imagesTr", f"{val_case}_0000.nii.gz")
    os.symlink(source, os.path.join(images, f"{val_case}_0000.nii.gz"))
    out = os.path.join(root, f"predictions_fold{fold}")
    run_cli(command + ["-i", images, "-o", out, "-f", str(fold), "--disable_tta", "-npp", "1", "-nps", "1",
                       "-device", "cpu"], env)
    check_prediction(os.path.join(out, f"{val_case}.nii.gz"), source)


def test_train_interrupt_resume_and_predict_on_stock_plans(planned):
    root, env = planned
    env = dict(env, nnUNet_n_proc_DA="0")
    cmd = ["nnUNetv2_train", "511", "2d", "0", "-tr", "ScarNetTrainerTiny_smoke", "-device", "cpu"]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        first = wait_for_epoch(process, "Epoch 1", timeout=600)  # epoch 0 done and checkpointed
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert "trained from scratch" in first
    fold = os.path.join(env["nnUNet_results"], DATASET, "ScarNetTrainerTiny_smoke__nnUNetPlans__2d", "fold_0")
    assert os.path.isfile(os.path.join(fold, "checkpoint_latest.pth"))
    assert not os.path.isfile(os.path.join(fold, "checkpoint_final.pth"))
    interrupted = torch.load(os.path.join(fold, "checkpoint_latest.pth"), map_location="cpu", weights_only=False)
    assert interrupted["current_epoch"] == 1

    resumed = run_cli(cmd + ["--c"], env)
    assert "Epoch 1" in resumed and "Epoch 2" in resumed and "Epoch 0\n" not in resumed
    final = torch.load(os.path.join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 3 and final["trainer_name"] == "ScarNetTrainerTiny_smoke"
    # after --c every parameter group keeps its own rate: decoder 1e-3 and encoder 1e-4, times the poly factor of
    # the last epoch (2 of 3; no warm-up in a 3-epoch schedule)
    rates = [g["lr"] for g in final["optimizer_state"]["param_groups"]]
    assert rates == pytest.approx([1e-3 * (1 / 3) ** 0.9, 1e-4 * (1 / 3) ** 0.9])
    # the saved plans describe the network that was trained: the variant's encoder and its batch size
    saved = json.load(open(os.path.join(os.path.dirname(fold), "plans.json")))["configurations"]["2d"]
    assert saved["batch_size"] == 2
    assert saved["architecture"]["network_class_name"].endswith("scarnet.ScarNet")
    kwargs = saved["architecture"]["arch_kwargs"]
    assert (kwargs["encoder"], kwargs["encoder_image_size"], kwargs["max_features"]) == ("tiny_vit_test", 64, 64)
    # the encoder input window measured on these preprocessed images: median of per-case 0.5/99.5 percentiles,
    # the zero-filled border (voxels at the image minimum) left out
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    data = nnUNetDatasetBlosc2(os.path.join(env["nnUNet_preprocessed"], DATASET, "nnUNetPlans_2d"))
    per_case = []
    for case in sorted(data.identifiers):
        x = np.asarray(data.load_case(case)[0][:]).ravel()
        fill = x == x.min()
        per_case.append(np.percentile(x[~fill] if fill.mean() >= 0.01 else x, (0.5, 99.5)))
    expected = np.round(np.median(per_case, axis=0), 2)
    assert kwargs["encoder_input_window"] == pytest.approx(expected.tolist(), abs=0.006)
    assert kwargs["encoder_input_window"][0] < -1 < 1 < kwargs["encoder_input_window"][1]
    assert os.path.isfile(os.path.join(fold, "validation", "summary.json"))

    predict_validation_case(root, env, fold=0, command=["nnUNetv2_predict", "-d", "511", "-c", "2d", "-tr",
                                                        "ScarNetTrainerTiny_smoke"])


def test_train_and_predict_from_modelfolder_on_scarnet_plans(planned):
    root, env = planned
    env = dict(env, nnUNet_n_proc_DA="0")
    run_cli(["nnUNetv2_train", "511", "2d", "1", "-tr", "ScarNetTrainerTiny_smoke", "-p", "ScarNetPlans",
             "-device", "cpu"], env)
    model = os.path.join(env["nnUNet_results"], DATASET, "ScarNetTrainerTiny_smoke__ScarNetPlans__2d")
    assert os.path.isfile(os.path.join(model, "fold_1", "checkpoint_final.pth"))
    predict_validation_case(root, env, fold=1, command=["nnUNetv2_predict_from_modelfolder", "-m", model])


def test_lite_hybrid_trains_and_predicts_on_scarnet_plans(planned):
    """The real hybrid network (pretrained LiteMedSAM + nnU-Net's encoder) through the stock commands, on the
    ViT-B ScarNetPlans: the trainer writes its own network into the plans saved with the model."""
    root, env = planned
    env = dict(env, nnUNet_n_proc_DA="0")
    log = run_cli(["nnUNetv2_train", "511", "2d", "2", "-tr", "ScarNetTrainerLiteHybrid_smoke", "-p", "ScarNetPlans",
                   "-device", "cpu"], env, timeout=1500)
    assert "loaded 298 encoder tensors" in log
    model = os.path.join(env["nnUNet_results"], DATASET, "ScarNetTrainerLiteHybrid_smoke__ScarNetPlans__2d")
    saved = json.load(open(os.path.join(model, "plans.json")))["configurations"]["2d"]
    kwargs = saved["architecture"]["arch_kwargs"]
    assert (kwargs["encoder"], kwargs["encoder_image_size"], kwargs["conv_encoder"]) == ("litemedsam", 256, True)
    assert saved["batch_size"] == 2
    predict_validation_case(root, env, fold=2, command=["nnUNetv2_predict", "-d", "511", "-c", "2d", "-p",
                                                        "ScarNetPlans", "-tr", "ScarNetTrainerLiteHybrid_smoke"])


def make_trainer(trainer_class, env, plans_name="nnUNetPlans", fold=2):
    plans = load_plans(env, plans_name)
    plans["continue_training"] = False  # nnUNetv2_train passes this flag inside the plans dict
    dataset_json = json.load(open(os.path.join(env["nnUNet_preprocessed"], DATASET, "dataset.json")))
    return trainer_class(plans, "2d", fold, dataset_json, torch.device("cpu"))


def test_lite_trainer_loads_bundled_litemedsam_weights(planned, monkeypatch):
    _, env = planned
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, env[key])
    from nnunetv2_scarnet.network.encoders.lite_medsam import bundled_checkpoint_path
    from nnunetv2_scarnet.trainers import ScarNetTrainerLite

    trainer = make_trainer(ScarNetTrainerLite, env)
    trainer.initialize()
    reference = torch.load(bundled_checkpoint_path(), map_location="cpu", weights_only=True)
    encoder = trainer.network.encoder.tiny_vit.state_dict()
    assert torch.equal(encoder["layers.2.blocks.3.attn.qkv.weight"],
                       reference["image_encoder.layers.2.blocks.3.attn.qkv.weight"])
    groups = trainer.optimizer.param_groups
    # epoch 0 of 1000: the first of 10 warm-up epochs runs at 1/11 of each group's own rate
    assert [g["lr"] for g in groups] == pytest.approx([1e-3 / 11, 1e-4 / 11])
    log = open(trainer.log_file).read()
    assert "loaded 298 encoder tensors" in log


def test_resume_refuses_a_checkpoint_of_another_network(planned, monkeypatch):
    """--c / --val restore weights only into the network the checkpoint was trained as."""
    _, env = planned
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, env[key])
    from nnunetv2_scarnet.trainers import ScarNetTrainerTiny_smoke

    checkpoint = os.path.join(env["nnUNet_results"], DATASET, "ScarNetTrainerTiny_smoke__nnUNetPlans__2d", "fold_0",
                              "checkpoint_final.pth")
    if not os.path.isfile(checkpoint):
        pytest.skip("needs the model of test_train_interrupt_resume_and_predict_on_stock_plans")
    same = make_trainer(ScarNetTrainerTiny_smoke, env, fold=0)
    same.initialize()
    same.load_checkpoint(checkpoint)  # the very network: restored
    changed = type("ScarNetTrainerTiny_smoke", (ScarNetTrainerTiny_smoke,), {"attention": "cbam"})
    other = make_trainer(changed, env, fold=0)
    other.initialize()
    with pytest.raises(ValueError, match="the checkpoint was trained as .*'attention': 'scar'"):
        other.load_checkpoint(checkpoint)


def test_medsam_trainer_needs_the_weights_path_and_loads_it(planned, monkeypatch, tmp_path):
    _, env = planned
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, env[key])
    from segment_anything.modeling import ImageEncoderViT

    from nnunetv2_scarnet.trainers import MEDSAM_CHECKPOINT_ENV, ScarNetTrainer

    monkeypatch.delenv(MEDSAM_CHECKPOINT_ENV, raising=False)
    with pytest.raises(RuntimeError, match=f"{MEDSAM_CHECKPOINT_ENV}=.*ScarNetTrainerLite.*_scratch"):
        make_trainer(ScarNetTrainer, env).initialize()

    torch.manual_seed(0)
    sam_encoder = ImageEncoderViT(img_size=1024, use_rel_pos=True, window_size=14, global_attn_indexes=(2, 5, 8, 11))
    with torch.no_grad():
        sam_encoder.blocks[5].attn.rel_pos_h.normal_()
    checkpoint = tmp_path / "medsam_vit_b.pth"
    torch.save({"model": {f"image_encoder.{k}": v for k, v in sam_encoder.state_dict().items()}}, checkpoint)
    monkeypatch.setenv(MEDSAM_CHECKPOINT_ENV, str(checkpoint))
    trainer = make_trainer(ScarNetTrainer, env, fold=0)
    trainer.initialize()
    vit = trainer.network.encoder.vit
    assert torch.equal(vit.blocks[11].mlp.lin2.weight, sam_encoder.blocks[11].mlp.lin2.weight)
    assert vit.blocks[5].attn.rel_pos_h.shape == (63, 64) and vit.blocks[5].attn.rel_pos_h.abs().sum() > 0
