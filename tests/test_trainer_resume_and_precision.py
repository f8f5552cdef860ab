"""The trainer itself (no dataset needed): learning rates after resuming past the warm-up, and the CUDA precision
choice and the autocast dtype the encoder runs in inside train_step."""
import copy

import pytest
import torch

from init_gradients import STOCK_PLANS, phantom_batch

from nnunetv2_scarnet.trainers import variants

PLANS = {
    "dataset_name": "Dataset999_Phantom", "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1, 1, 1],
    "original_median_shape_after_transp": [10, 128, 128], "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {},
    "configurations": {"2d": {
        "data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [128, 128], "median_image_size_in_voxels": [128, 128], "spacing": [1, 1],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": {},
        "architecture": STOCK_PLANS, "batch_dice": True}},
}
DATASET_JSON = {"channel_names": {"0": "LGE"}, "labels": {"background": 0, "blood_pool": 1, "myocardium": 2,
                                                           "scar": 3}, "numTraining": 2, "file_ending": ".nii.gz"}


def make_trainer(base, device="cpu", **attributes):
    """A trainer of class `base` on phantom plans, with its network, optimizer, scheduler and loss built as
    nnU-Net's initialize() builds them (there is no preprocessed dataset to load)."""
    cls = type(base.__name__, (base,), dict(encoder_input_window=(-2.5, 2.5), **attributes))
    plans = dict(copy.deepcopy(PLANS), continue_training=False)
    trainer = cls(plans, "2d", 0, DATASET_JSON, torch.device(device))
    return trainer


def build_parts(trainer):
    trainer.network = trainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager, 1, 4,
                                                         True)
    trainer.optimizer, trainer.lr_scheduler = trainer.configure_optimizers()
    trainer.loss = trainer._build_loss()
    trainer.was_initialized = True
    trainer.inference_allowed_mirroring_axes = (0, 1)


TINY_HYBRID = dict(encoder_name="tiny_vit_test", encoder_image_size=64, pretrained_weights=None,
                   decoder_max_features=64)


@pytest.mark.parametrize("base,attributes", [(variants.ScarNetTrainerTiny, {}),
                                             (variants.ScarNetTrainerLiteHybrid_sgdConv, TINY_HYBRID)],
                         ids=["adamw", "adamw+sgd_conv"])
def test_resume_past_warmup_restores_every_group_rate(base, attributes, tmp_path, monkeypatch):
    """Train (epoch starts only) to epoch 38 of 100, save, resume in a fresh trainer with nnU-Net's own
    load_checkpoint and on_train_epoch_start: every group's rate is its base rate times the poly factor of that
    epoch, past the 10-epoch warm-up. A scheduler that forgot the epoch would restart the warm-up (1/11)."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    trainer = make_trainer(base, epochs=100, **attributes)
    build_parts(trainer)
    for epoch in range(38):
        trainer.current_epoch = epoch
        trainer.on_train_epoch_start()
        trainer.current_epoch = epoch + 1
    trainer.current_epoch = 37  # nnU-Net saves at the end of an epoch, before counting it
    checkpoint = str(tmp_path / "checkpoint.pth")
    trainer.save_checkpoint(checkpoint)  # it stores the next epoch, 38

    resumed = make_trainer(base, epochs=100, **attributes)
    build_parts(resumed)
    resumed.load_checkpoint(checkpoint)
    assert resumed.current_epoch == 38
    resumed.on_train_epoch_start()
    factor = (1 - 38 / 100) ** 0.9  # nnU-Net's poly schedule, exponent 0.9
    bases = [1e-3, 1e-4] + ([1e-2] if base is variants.ScarNetTrainerLiteHybrid_sgdConv else [])
    assert [g["lr"] for g in resumed.optimizer.param_groups] == pytest.approx([b * factor for b in bases],
                                                                                rel=1e-9)
    for a, b in zip(resumed.network.parameters(), trainer.network.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("capability,dtype,scaler", [((8, 0), torch.bfloat16, False), ((9, 0), torch.bfloat16, False),
                                                     ((7, 0), torch.float16, True), ((7, 5), torch.float16, True)])
def test_trainer_picks_bfloat16_only_on_native_gpus(capability, dtype, scaler, tmp_path, monkeypatch):
    """The trainer's own choice on a (mocked) CUDA device: bfloat16 without GradScaler on compute capability
    8.0+, nnU-Net's float16 with GradScaler on V100/T4 (which answer True to torch.cuda.is_bf16_supported)."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    trainer = make_trainer(variants.ScarNetTrainerTiny, device="cuda")
    assert trainer.amp_dtype == dtype
    assert (trainer.grad_scaler is not None) == scaler


def test_train_step_runs_the_encoder_in_the_trainers_autocast_dtype(tmp_path, monkeypatch):
    """train_step under the dtype the trainer chose for a native-bfloat16 GPU, on CPU autocast: the encoder's
    matrix products run in bfloat16, the loss is float32 and finite, the weights stay float32 and change."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    chosen = make_trainer(variants.ScarNetTrainerTiny, device="cuda").amp_dtype
    monkeypatch.undo()
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    trainer = make_trainer(variants.ScarNetTrainerTiny)
    assert trainer.amp_dtype is None  # CPU training: float32
    build_parts(trainer)
    trainer.amp_dtype = chosen
    seen = []
    block = trainer.network.encoder.vit.blocks[0].mlp
    block.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    image, target = phantom_batch()
    from init_gradients import deep_supervision_targets, trainer_loss

    _, scales = trainer_loss(6)
    before = [p.detach().clone() for p in trainer.network.decoder.parameters()]
    out = trainer.train_step({"data": image, "target": deep_supervision_targets(target, scales)})
    assert seen == [torch.bfloat16]
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.network.decoder.parameters()))
