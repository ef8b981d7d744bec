"""Recipe parameters of the ``spade`` translator (defaults follow Park et al. 2019 where they fit a CPU).

Kept beside the translator, not inside it, so the class that trains reads as training code.
Length, flips, rendering batch, widths, learning-rate decay and augmentation are shared with
the other paired translators (``segsynth.params.TranslatorTrainingParams``); what is here is
SPADE's own: the modulation net, the optional noise code, the multi-scale discriminator, the
feature-matching weight and the two time-scale learning rates.
"""

from __future__ import annotations

from pydantic import Field

from segsynth.params import (
    MAX_WIDTH,
    AdamBetas,
    BatchSize,
    LearningRate,
    LossWeight,
    Spelling,
    TranslatorTrainingParams,
    Width,
    deprecated_spellings,
)
from segsynth_spade.spade import NormKind


class SpadeParams(TranslatorTrainingParams):
    """Recipe parameters of the SPADE translator (defaults follow the paper where it fits a CPU)."""

    batch_size: BatchSize = Field(
        4, description="Pairs per iteration (the paper uses 32 over 8 GPUs; 4 keeps a CPU step short)."
    )
    spade_hidden: Width = Field(
        128,
        description="Channels of the small conv net inside each SPADE layer that turns the mask "
        "into gamma/beta (128 in the paper; 32 is plenty for binary masks and much cheaper).",
    )
    z_dim: int = Field(
        0, ge=0, le=MAX_WIDTH,
        description="Length of a noise code added at the start grid; 0 (default) is the paper's "
        "deterministic generator that starts from the downsampled mask, > 0 lets one mask render "
        "to several images, seeded by the sampling generator.",
    )
    norm: NormKind = Field(
        "batch", description="Parameter-free normalisation SPADE modulates: 'batch' (paper) or 'instance'."
    )
    spectral_norm: bool = Field(
        True, description="Spectral norm on the generator's residual convs and on every discriminator conv (paper)."
    )
    disc_layers: int = Field(
        4, ge=1, le=6, description="Conv blocks per PatchGAN before its logit conv (4 in the paper)."
    )
    num_discriminators: int = Field(
        2, ge=1, le=4,
        description="PatchGANs judging the pair at full, 1/2, 1/4 ... resolution (2 in the paper).",
    )
    lambda_fm: LossWeight = Field(10.0, description="Weight of the feature-matching loss (10 in the paper).")
    lambda_l1: LossWeight = Field(
        0.0, description="Weight of an extra L1 loss to the real image (0 in the paper)."
    )
    lr: LearningRate = Field(
        1e-4, description="Adam learning rate of the generator (TTUR: 1e-4); the discriminator's is lr_d."
    )
    lr_d: LearningRate = Field(4e-4, description="Adam learning rate of the discriminator (TTUR: 4e-4).")
    betas: AdamBetas = Field(
        (0.0, 0.9), description="Adam betas (beta1, beta2) of both networks ((0, 0.9) in the paper)."
    )
    _old_spade_spellings = deprecated_spellings(Spelling("lr_g", "lr"))
