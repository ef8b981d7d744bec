"""Recipe parameters of the ``pix2pix`` translator (defaults follow Isola et al. 2017).

Kept beside the translator, not inside it, so the class that trains reads as training code.
Length, flips, rendering batch, widths, learning-rate decay and augmentation are shared with
the other paired translators (``segsynth.params.TranslatorTrainingParams``); what is here is
pix2pix's own: the PatchGAN's depth, the normalisation, the L1 weight and the dropout noise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from segsynth.params import AdamBetas, BatchSize, LearningRate, LossWeight, TranslatorTrainingParams, Width
from segsynth.structures import SquareSide


class Pix2PixParams(TranslatorTrainingParams):
    """Recipe parameters of the pix2pix translator (defaults follow the paper)."""

    batch_size: BatchSize = Field(
        1, description="Pairs per iteration; the paper uses 1, larger batches train faster per pair on GPUs."
    )
    disc_layers: int = Field(
        3, ge=1, le=8,
        description="Stride-2 layers of the PatchGAN: 3 gives 70x70 patches, 2 gives 34x34, 1 gives 16x16.",
    )
    norm: Literal["batch", "instance"] = Field(
        "batch", description="Normalisation in both networks: 'batch' (paper) or 'instance'."
    )
    gan_loss: Literal["bce", "lsgan"] = Field(
        "bce", description="Adversarial loss: 'bce' (paper, on logits) or 'lsgan' (least squares)."
    )
    lambda_l1: LossWeight = Field(100.0, description="Weight of the L1 term against the GAN term.")
    lr: LearningRate = Field(2e-4, description="Adam learning rate of both networks.")
    betas: AdamBetas = Field((0.5, 0.999), description="Adam betas (beta1, beta2) of both networks.")
    dropout: float = Field(
        0.5, ge=0.0, lt=1.0, description="Dropout probability in the innermost decoder blocks (the noise)."
    )
    dropout_blocks: int = Field(
        3, ge=0, le=16, description="How many innermost decoder blocks carry dropout (3 in the paper)."
    )
    dropout_at_inference: bool = Field(
        True, description="Keep dropout on when rendering, so one mask gives varied images (paper)."
    )
    upsample: Literal["transpose", "resize"] = Field(
        "transpose",
        description="Decoder upsampling: 'transpose' (paper: 4x4 stride-2 transposed convolutions) "
        "or 'resize' (nearest-neighbour x2, then a 3x3 convolution: no checkerboard pattern in "
        "flat regions, Odena et al. 2016).",
    )
    mask_consistency: LossWeight = Field(
        0.0,
        description="Weight of the mask-consistency term: a small U-Net trained on the real pairs "
        "segments each generated image and G pays (BCE + Dice) for every vessel or object it "
        "draws where the mask has none, or leaves out (segsynth_pix2pix.consistency). 0 (paper) "
        "turns it off; about 1 to 10 next to lambda_l1 100.",
    )
    consistency_filters: Width = Field(
        8, description="Filters of the mask-consistency segmenter's first layer (its cost grows with the square)."
    )
    structure_l1: LossWeight = Field(
        0.0,
        description="Weight of an L1 term on small structures: the dark and bright top-hats "
        "(grey closing minus image, image minus opening, structure_size square) of each "
        "rendering against its real image's. Plain L1 is dominated by smooth colour; this term "
        "pays for every thin line or speck G draws that the photograph does not have at that "
        "place, and for each one it leaves out (segsynth_pix2pix.losses.structure_l1). 0 (paper) "
        "turns it off; of the order of lambda_l1.",
    )
    structure_size: SquareSide = Field(
        5,
        description="Side in pixels of the top-hats' square (odd, 3-15): structures narrower than "
        "it count as small.",
    )
