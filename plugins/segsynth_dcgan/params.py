"""Recipe parameters of the ``dcgan`` mask generator and of the single-stage ``dcgan_joint``.

They live beside the component rather than inside it so that the class that trains reads as
training code, and so that ``dcgan_joint`` (which takes exactly these fields) names them
without reaching into the component. The fields every first-party mask GAN shares (width,
weight average, binarising cut, straight-through fakes, length of training) come from
``segsynth.params.GanGeneratorParams``; what is here is what makes this GAN a DCGAN.
"""

from __future__ import annotations

from pydantic import Field

import segsynth
from segsynth.params import (
    AdamBetas,
    GanGeneratorParams,
    LearningRate,
    LossWeight,
    StepInterval,
    Width,
)
from segsynth_dcgan.augment import AugmentParams
from segsynth_dcgan.losses import LossName


class MaskGeometry(segsynth.Params):
    """Recipe ``stage1.params.geometry``: plausible-shape augmentation of the real masks."""

    flip_h: bool = Field(False, description="Mirror left-right half the time.")
    flip_v: bool = Field(False, description="Mirror top-bottom half the time.")
    degrees: float = Field(0.0, ge=0.0, le=180.0, description="Rotate by up to this many degrees.")
    scale: float = Field(0.0, ge=0.0, lt=0.5, description="Zoom by a factor in [1 - scale, 1 + scale].")


class EncoderParams(segsynth.Params):
    """Recipe ``stage1.params.encoder``: an encoder that ties every real mask to a code (VAE-GAN)."""

    reconstruction: LossWeight = Field(
        0.0,
        description="Weight of the reconstruction term: an encoder maps each real mask to a "
        "Gaussian over codes, and G must redraw the mask from a code drawn from it (binary "
        "cross-entropy of the tanh output read as a probability; cross-entropy for class maps). Every real mask then "
        "has codes that G maps to it, which the adversarial loss alone does not ask for: against "
        "Stage I covering a few layouts only (issue #19). 0 turns the encoder off; about 1-10.",
    )
    kl: LossWeight = Field(
        0.01,
        description="Weight of the Kullback-Leibler divergence of the encoder's Gaussians from "
        "N(0, I) (summed over the code, averaged over the batch): it keeps the codes of real "
        "masks where sampling draws codes from. Too small and sampled codes land between the "
        "real masks' codes, too large and the reconstructions blur.",
    )


class DCGANParams(GanGeneratorParams):
    """Recipe ``stage1.params`` of the dcgan mask generator."""

    nz: Width = Field(100, description="Length of the latent code z (100 in DCGAN).")
    disc_filters: Width | None = Field(
        None,
        description="Channels of the discriminator's full-resolution layer (doubled per halving, "
        "capped at max_filters); null means base_filters. D runs three times per step (real, "
        "fake, and for G's update), so a narrower D is most of a step's saving, and on 20 "
        "masks a full-width D wins the game anyway.",
    )
    loss: LossName = Field(
        "nonsaturating",
        description="'nonsaturating' (cross-entropy, the paper's) or 'hinge' adversarial loss.",
    )
    spectral_norm: bool = Field(
        False, description="Spectral norm on every discriminator conv (then D has no batch norm)."
    )
    r1_gamma: LossWeight = Field(
        0.0, description="Weight of the R1 gradient penalty on real masks; 0 turns it off."
    )
    r1_every: StepInterval = Field(
        16, description="Apply R1 lazily every this many steps (scaled up to compensate)."
    )
    minibatch_std: bool = Field(
        False,
        description="Give D a minibatch standard-deviation feature (ProGAN) before its last "
        "layer, so a batch of near-identical fakes is easy to reject: against Stage-I mode "
        "collapse on tiny sets of large masks (issue #19: one vessel tree for every code).",
    )
    patch_depth: int = Field(
        0,
        ge=0,
        le=8,
        description="0: D gives one logit per mask (DCGAN). n > 0: D halves the mask n times and "
        "gives one logit per position of that map, each judging a patch (PatchGAN; 3 at 128 px "
        "gives a 16x16 map of 38-px patches): more, local verdicts per mask. Must be below "
        "log2(size) - 2. Measured on HRF tiles it made Stage I collapse (docs/results.md): try it "
        "with the coverage measures watching.",
    )
    thin_channel: bool = Field(
        False,
        description="Give D, beside each mask channel, the mask's 1-px-thin part (what no 2x2 "
        "square inside the mask covers; segsynth_dcgan.thin_view), so that masks with too few "
        "thin structures (fine vessels) are easy to reject: a stride-2 first layer hardly tells "
        "a 1-px line from a 2-px band.",
    )
    mode_seeking: LossWeight = Field(
        0.0,
        description="Weight of the mode-seeking term (Mao et al. 2019): G is penalised by "
        "weight / (mean |G(z1)-G(z2)| / mean |z1-z2|) so different codes give different "
        "masks; 0 turns it off. About 1 is typical.",
    )
    diversity: LossWeight = Field(
        0.0,
        description="Weight of the overlap term: G is penalised by weight * max(0, Dice "
        "between two fakes - Dice between two real masks) (segsynth.gan.pair_overlap), i.e. "
        "for making masks more alike than real ones are; 0 turns it off. About 1-10.",
    )
    geometry: MaskGeometry = Field(
        default_factory=MaskGeometry,
        description="Random flips, rotations and scalings of the real masks G learns from "
        "(segsynth.gan.random_geometry): unlike augment, G learns to make them too, so use "
        "only transforms that give plausible masks (a mirrored fundus is the other eye). With "
        "flip_h on, D's augment leaves out its own left-right flip: at ADA strength 1 that flip is a "
        "coin toss that hides which way a fake is mirrored, and G then draws one of each mirror "
        "pair only.",
    )
    augment: AugmentParams = Field(
        default_factory=AugmentParams,
        description="Differentiable augmentation of D's inputs (translation, cutout, flip, ADA).",
    )
    lr: LearningRate = Field(2e-4, description="Adam learning rate for both networks.")
    betas: AdamBetas = Field(
        (0.5, 0.999), description="Adam betas for both networks (DCGAN uses beta1 = 0.5)."
    )
    balance_foreground: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Draw real masks balanced over foreground-fraction bins (empty, sparse, then "
        "quantiles; segsynth.coverage_sampling): 0 = uniform draws, 1 = every bin equally often. "
        "Keeps rare empty/sparse tiles in front of D so G learns to make them.",
    )
    balance_bins: int = Field(8, ge=3, le=50, description="Bins for balance_foreground.")
    encoder: EncoderParams = Field(
        default_factory=EncoderParams,
        description="An encoder of real masks and a reconstruction term (VAE-GAN, Larsen et al. "
        "2016): off while encoder.reconstruction is 0.",
    )
    spatial_latent: bool = Field(
        False,
        description="Draw z as a 4x4 map of independent codes (nz, 4, 4) instead of one code "
        "(nz, 1, 1): each region of the mask gets its own randomness, so G cannot give every "
        "code the same picture as easily (against Stage-I collapse on tiny sets).",
    )


class DCGANJointParams(DCGANParams):
    """Recipe ``stage1.params`` of the single-stage baseline (same fields as ``dcgan``)."""
