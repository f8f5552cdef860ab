"""ScarNetPlanner: 2D plans (`ScarNetPlans`) whose architecture entry is ScarNet, batch sized for the encoder."""
from typing import List, Optional, Tuple, Union

from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json, maybe_mkdir_p, save_json
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.utilities.json_export import recursive_fix_for_json_export

from nnunetv2_scarnet.network import SCARNET_CLASS_NAME, scarnet_architecture

#: configurations the stock planner makes that ScarNet (a 2D network) cannot use
STOCK_3D_CONFIGURATIONS = ("3d_fullres", "3d_lowres", "3d_cascade_fullres")

#: Approximate training memory per sample of each encoder (GiB, bf16 autocast, activations + gradients).
#: litemedsam: measured on an H100 (20 GiB at batch 16); the ViTs: scaled from it by token count, an estimate.
#: Both without activation checkpointing (the trainers' default since 2026-12-06, which keeps about a fifth of the
#: activations on CPU): conservative for the default trainers (smaller batches than would fit) until re-measured
#: on a GPU.
ENCODER_GIB_PER_SAMPLE = {"litemedsam": 1.25, "medsam_vit_b": 0.9, "tiny_vit_test": 0.02}
ENCODER_REFERENCE_SIZE = {"litemedsam": 256, "medsam_vit_b": 512, "tiny_vit_test": 64}


def encoder_batch_size(stock_batch_size: int, memory_target_gb: float, encoder: str, image_size: int,
                       min_batch_size: int = 2) -> int:
    """Batch size that fits the memory target with the encoder added to the stock U-Net's per-sample share."""
    per_sample_unet = memory_target_gb / max(stock_batch_size, 1)
    scale = (image_size / ENCODER_REFERENCE_SIZE[encoder]) ** 2
    per_sample = per_sample_unet + ENCODER_GIB_PER_SAMPLE[encoder] * scale
    return int(max(min_batch_size, min(stock_batch_size, memory_target_gb // per_sample)))


class ScarNetPlanner(ExperimentPlanner):
    """Plans the 2D configuration like nnU-Net (same spacing, patch size, normalisation and stage layout), then
    records ScarNet with the settings of `trainer_name` in the architecture entry and sizes the batch for that
    trainer's encoder.

    Only the 2D configuration is kept: ScarNet is a 2D network. The stage layout equals the stock plans', so
    `nnUNetPlans` and `ScarNetPlans` preprocess identically (a test compares the arrays). Variants plan for other
    trainers, each into its own plans file: `-pl ScarNetPlannerLite` writes `ScarNetLitePlans` for
    ScarNetTrainerLite, and so on. The encoder input window is left to the trainer, which measures it on the
    preprocessed images. The batch estimate counts the whole stock U-Net next to the encoder, for the hybrid and
    (conservatively) for the plain ScarNet alike.
    """

    trainer_name = "ScarNetTrainer"
    default_plans_name = "ScarNetPlans"

    def __init__(self, dataset_name_or_id: Union[str, int], gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: Optional[str] = None,
                 overwrite_target_spacing: Union[List[float], Tuple[float, ...]] = None,
                 suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name,
                         plans_name or self.default_plans_name, overwrite_target_spacing, suppress_transpose)

    def network_settings(self) -> dict:
        """The network settings of the trainer these plans are made for (the trainer class is their one source)."""
        from nnunetv2_scarnet import trainers

        return getattr(trainers, self.trainer_name).network_settings()

    def scarnet_configuration(self, stock_2d: dict) -> dict:
        """Turn the stock 2D configuration into ScarNet's."""
        config = dict(stock_2d)
        settings = self.network_settings()
        config["architecture"] = scarnet_architecture(stock_2d["architecture"]["arch_kwargs"], settings,
                                                     stock_2d["architecture"]["network_class_name"])
        config["batch_size"] = encoder_batch_size(stock_2d["batch_size"], self.UNet_vram_target_GB,
                                                  settings["encoder"], settings["encoder_image_size"])
        return config

    def plan_experiment(self):
        plans = super().plan_experiment()  # saves through our save_plans, which converts the 2D configuration
        config = plans["configurations"]["2d"]
        kwargs = config["architecture"]["arch_kwargs"]
        print(f"ScarNet 2D configuration for {self.trainer_name}: encoder {kwargs['encoder']} at "
              f"{kwargs['encoder_image_size']} px, batch {config['batch_size']}, patch {config['patch_size']}")
        return plans

    def save_plans(self, plans):
        """Write the plans with ScarNet's 2D configuration and without the stock 3D ones.

        Like nnU-Net, configurations that a user added to an existing plans file by hand are kept.
        """
        configurations = {k: v for k, v in plans["configurations"].items() if k not in STOCK_3D_CONFIGURATIONS}
        if configurations["2d"]["architecture"]["network_class_name"] != SCARNET_CLASS_NAME:
            configurations["2d"] = self.scarnet_configuration(configurations["2d"])
        plans["configurations"] = configurations
        recursive_fix_for_json_export(plans)
        plans_file = join(nnUNet_preprocessed, self.dataset_name, self.plans_identifier + ".json")
        if isfile(plans_file):
            for name, config in load_json(plans_file)["configurations"].items():
                if name not in configurations and name not in STOCK_3D_CONFIGURATIONS:
                    configurations[name] = config
        maybe_mkdir_p(join(nnUNet_preprocessed, self.dataset_name))
        save_json(plans, plans_file, sort_keys=False)
        print(f"Plans were saved to {plans_file}")


class ScarNetPlannerLite(ScarNetPlanner):
    """ScarNetLitePlans for ScarNetTrainerLite (LiteMedSAM TinyViT at 256 px)."""
    trainer_name = "ScarNetTrainerLite"
    default_plans_name = "ScarNetLitePlans"


class ScarNetPlannerHybrid(ScarNetPlanner):
    """ScarNetHybridPlans for ScarNetTrainerHybrid (MedSAM ViT-B beside nnU-Net's convolutional encoder)."""
    trainer_name = "ScarNetTrainerHybrid"
    default_plans_name = "ScarNetHybridPlans"


class ScarNetPlannerLiteHybrid(ScarNetPlanner):
    """ScarNetLiteHybridPlans for ScarNetTrainerLiteHybrid (LiteMedSAM TinyViT beside nnU-Net's encoder)."""
    trainer_name = "ScarNetTrainerLiteHybrid"
    default_plans_name = "ScarNetLiteHybridPlans"
