"""A cheap nnU-Net model folder (no training) and a stand-in prediction, for the `scarnet report` tests.

`build_model_folder` writes hand-written 2D plans of a small stock PlainConvUNet and a checkpoint with exactly the
entries `nnUNetTrainer.save_checkpoint` writes (random weights). `ring_prediction` replaces the network's output by
a ring placed on the converted image, so the output stage runs on real data in seconds."""
import json
import os

import nibabel as nib
import numpy as np
import torch

from nnunetv2_scarnet.report.predict import Prediction

EMIDEC_LABELS = {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3, "mvo": 4}


def plans_2d(n_labels=5):
    """Plans of a small 2D PlainConvUNet as nnU-Net's planner writes them (one configuration, `2d`)."""
    return {
        "dataset_name": "Dataset990_Cheap", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [10.0, 1.5, 1.5], "original_median_shape_after_transp": [8, 64, 64],
        "image_reader_writer": "NibabelIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 1000.0, "mean": 100.0, "median": 100.0, "min": 0.0, "percentile_00_5": 0.0,
            "percentile_99_5": 900.0, "std": 50.0}},
        "configurations": {"2d": {
            "data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [32, 32], "median_image_size_in_voxels": [64, 64], "spacing": [3.0, 3.0],
            "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {"n_stages": 3, "features_per_stage": [4, 8, 16],
                                "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 3,
                                "strides": [[1, 1], [2, 2], [2, 2]], "n_conv_per_stage": [1, 1, 1],
                                "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
                                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                                "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                                "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
            "batch_dice": True}}}


def nnunet_checkpoint(plans, dataset):
    """The dict `nnUNetTrainer.save_checkpoint` writes, for a randomly initialised network (one optimiser step,
    so the optimiser holds momentum buffers; the logging holds numpy scalars as nnU-Net's does)."""
    from nnunetv2.training.logging.nnunet_logger import LocalLogger
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.manual_seed(0)
    manager = PlansManager(plans)
    network = nnUNetTrainer.build_network_architecture(manager, manager.get_configuration("2d"), 1,
                                                       len(dataset["labels"]), enable_deep_supervision=True)
    optimizer = torch.optim.SGD(network.parameters(), 0.01, momentum=0.99, nesterov=True)
    sum(o.sum() for o in network(torch.randn(2, 1, 32, 32))).backward()
    optimizer.step()
    logger = LocalLogger()
    for key, value in (("mean_fg_dice", np.float64(0.5)), ("ema_fg_dice", np.float64(0.5)),
                       ("dice_per_class_or_region", [np.float64(0.4)] * 4), ("train_losses", np.float32(0.3)),
                       ("val_losses", np.float32(0.2)), ("lrs", 0.01), ("epoch_start_timestamps", 1.0),
                       ("epoch_end_timestamps", 2.0)):
        logger.log(key, value, 0)
    return {"network_weights": network.state_dict(), "optimizer_state": optimizer.state_dict(),
            "grad_scaler_state": None, "logging": logger.get_checkpoint(), "_best_ema": np.float64(0.5),
            "current_epoch": 1, "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1),
            "init_args": {"plans": plans, "configuration": "2d", "fold": 0, "dataset_json": dataset,
                          "device": torch.device("cpu")}}


def build_model_folder(folder, labels=None, checkpoint=None):
    folder = str(folder)
    labels = labels or EMIDEC_LABELS
    dataset = {"channel_names": {"0": "LGE"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    plans = plans_2d()
    os.makedirs(os.path.join(folder, "fold_0"), exist_ok=True)
    with open(os.path.join(folder, "plans.json"), "w") as f:
        json.dump(plans, f)
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump(dataset, f)
    torch.save(checkpoint or nnunet_checkpoint(plans, dataset), os.path.join(folder, "fold_0", "checkpoint_final.pth"))
    return folder


def ring_label(shape):
    """Blood pool 1 inside a ring of myocardium 2 with scar 3 over 60 degrees, centred in-plane, every slice."""
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    c0, c1, size = shape[0] / 2, shape[1] / 2, min(shape[:2])
    radius = np.hypot(ii - c0, jj - c1)
    angle = np.degrees(np.arctan2(jj - c1, ii - c0)) % 360
    plane = np.zeros(shape[:2], np.uint8)
    plane[radius < 0.12 * size] = 1
    myocardium = (radius >= 0.12 * size) & (radius < 0.2 * size)
    plane[myocardium] = 2
    plane[myocardium & (angle < 60)] = 3
    return np.repeat(plane[..., None], shape[2], axis=2)


def ring_prediction(self, image_path, out_seg_path, on_member=None):
    image = nib.load(image_path)
    label = ring_label(image.shape)
    nib.save(nib.Nifti1Image(label, image.affine), out_seg_path)
    for _ in range(self.n_members):
        if on_member:
            on_member()
    return Prediction(label, {"myocardium": 0.97, "scar": 0.9}, {"myocardium": [0.95], "scar": [0.9]},
                      ["fold 0"], int((label == 3).sum()))
