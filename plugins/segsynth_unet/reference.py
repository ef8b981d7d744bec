"""Measures that use one frozen segmenter trained on real pairs as a yardstick.

(By default the evaluator's own seed-0 real-trained U-Net; ``reference_checkpoint`` replaces
it with one read from a file, see ``yardstick``. Nothing here depends on where it came from.)

Utility (train on synthetic, test on real) says whether the synthetic pairs *teach* well; it
does not say why. With a segmenter that already works on real images we can ask two sharper
questions without downloading any pretrained network:

- mask fidelity: does a synthetic image show the mask it was generated from? Segment it and
  compare with that mask (Dice per image). A low value means Stage II ignores its input, and a
  segmenter trained on such pairs learns wrong labels. Rendering real training masks and
  held-out real masks through the same frozen Stage II (``rendering``) says whether it fails
  on masks it never saw, which every Stage-I mask is.
- feature-space distance: do synthetic images, as a population, look like real test images
  to a network that knows the domain? KID and k-NN precision/recall on the segmenter's
  global-average-pooled activations (``distances``), next to the same numbers for real
  training vs real test images, the floor a perfect generator would reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import segsynth
from segsynth.feature_distances import TooFewSamples, balanced_precision_recall, kernel_inception_distance
from segsynth_unet.rendering import StageII, render_batches
from segsynth_unet.scoring import mask_dice, region_label
from segsynth_unet.segmenter import Segmenter
from segsynth_unet.summary import format_mean_std, mean_std

FIDELITY_TITLE = "Mask fidelity of Stage II (frozen U-Net trained on real pairs, seed 0)"
FEATURES_TITLE = "Feature-space distance to real test images (frozen real-trained U-Net, seed 0)"


@dataclass
class Section:
    """Metrics, table rows and notes one measure adds to the evaluation result."""

    metrics: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_to(self, result: segsynth.EvaluationResult, title: str) -> None:
        result.metrics.update(self.metrics)
        result.notes.extend(self.notes)
        if self.rows:
            result.tables[title] = self.rows

    def put(self, key: str, mean: float, std: float | None) -> None:
        """Record ``key`` (the mean) and ``key.std`` when there is a spread."""
        self.metrics[key] = mean
        if std is not None:
            self.metrics[f"{key}.std"] = std


def fidelity_region(synthetic: segsynth.PairSet, real_train: segsynth.PairSet) -> segsynth.PairSet:
    """``synthetic`` with a field of view where the real-trained segmenter's answer means something.

    Synthetic pairs usually come without a field of view, but the yardstick segmenter was
    trained with its loss masked to the real fields of view: outside them (the black corners of
    a fundus photo) its output is arbitrary and would count as false positives. A fundus camera's
    field of view sits in the same place in every image, so the synthetic images are scored
    inside the pixel-wise majority of the real training fields of view.
    """
    if synthetic.fovs is not None or real_train.fovs is None or len(real_train) == 0:
        return synthetic
    if real_train.fovs.shape[-2:] != synthetic.masks.shape[-2:]:
        return synthetic
    common = (real_train.fovs.mean(dim=0, keepdim=True) >= 0.5).float()
    fovs = common.expand(len(synthetic), -1, -1, -1).contiguous()
    return segsynth.PairSet(synthetic.images, synthetic.masks, fovs, synthetic.ids)


#: row labels of the fidelity table, in table order: what was rendered, and whether Stage II saw it
ROW_TRAIN = "Stage II on training masks (seen in training)"
ROW_HELDOUT = "Stage II on held-out real masks (never seen)"
ROW_STAGE1 = "Stage II on Stage-I masks (the synthetic set)"
ROW_JOINT = "synthetic images vs the masks generated with them"  # single-stage: no Stage II
ROW_YARDSTICK = "real test images (yardstick)"

NO_STAGE2_NOTE = (
    "fidelity.train_masks.dice and fidelity.heldout_masks.dice left out: they render real "
    "masks through a separate, frozen Stage II, and this evaluation has none (a single-stage pair "
    "generator makes mask and image together). They need a two-stage run."
)
GAP_NOTE = (
    "fidelity.generalisation_gap = fidelity.train_masks.dice - fidelity.heldout_masks.dice: how "
    "much better Stage II draws masks it was trained on than real masks it never saw. Near 0 it "
    "generalises; clearly above 0 it has memorised its training masks (or images). Read "
    "fidelity.synthetic.dice against fidelity.heldout_masks.dice: if it is much lower, the Stage-I "
    "masks, not Stage II, are the problem. (With stage2_data, Stage II trained on another data "
    "set and both real sets are unseen.)"
)


def mask_fidelity(
    reference: Segmenter,
    synthetic: segsynth.PairSet,
    real_train: segsynth.PairSet,
    real_test: segsynth.PairSet,
    trainer: segsynth.Trainer,
    threshold: float,
    batch_size: int,
    stage2: StageII | None = None,
) -> Section:
    """Per-image Dice between the yardstick's segmentation of an image and its source mask.

    Rows (each ``fidelity.<name>.dice`` with ``.std`` over images):

    - ``train_masks`` / ``heldout_masks``: the real training / test masks rendered by the
      frozen ``stage2`` and scored inside their own fields of view. Only with a Stage II;
      otherwise a note says why they are missing. ``fidelity.generalisation_gap`` is their
      difference.
    - ``synthetic``: the synthetic pairs (Stage-I masks rendered by Stage II), scored inside
      ``fidelity_region``.
    - ``real_test``: the same segmenter on real test images, the yardstick: a Stage II that
      renders its masks perfectly would make its images exactly as easy to segment as real ones,
      so every row is read against this one, not against 1.0. Shown only next to another row.

    With K classes (an ``exclusive`` segmenter) the Dice pools the K class channels of the
    most-probable-class segmentation (``scoring.mask_dice``): a vessel drawn as the wrong class
    counts as not drawn.
    """
    section = Section()

    def add(name: str, label: str, pairs: segsynth.PairSet, dice: torch.Tensor) -> None:
        mean, std = mean_std(dice.tolist())
        section.put(f"fidelity.{name}.dice", mean, std)
        column = f"Dice per image, mean ± std over images ({region_label(pairs)})"
        section.rows.append({"images": label, "pairs": len(pairs), column: format_mean_std(mean, std)})

    def segmented(pairs: segsynth.PairSet) -> torch.Tensor:
        return mask_dice(reference.predict(pairs.images, trainer, batch_size), pairs, threshold,
                         reference.exclusive)

    if stage2 is None:
        section.notes.append(NO_STAGE2_NOTE)
    else:
        for name, label, pairs in (("train_masks", ROW_TRAIN, real_train),
                                   ("heldout_masks", ROW_HELDOUT, real_test)):
            if len(pairs) == 0:
                section.notes.append(f"fidelity.{name}.dice left out: there are no such real masks.")
                continue
            add(name, label, pairs, torch.cat([segmented(part) for part in render_batches(stage2, pairs)]))
        seen, unseen = (section.metrics.get(f"fidelity.{n}.dice") for n in ("train_masks", "heldout_masks"))
        if seen is not None and unseen is not None:
            section.metrics["fidelity.generalisation_gap"] = seen - unseen
            section.notes.append(GAP_NOTE)

    if len(synthetic) == 0:
        section.notes.append("fidelity.synthetic.dice left out: there are no synthetic pairs.")
    else:
        scored = fidelity_region(synthetic, real_train)
        if scored is not synthetic:
            section.notes.append(
                "fidelity.synthetic.dice is counted inside the real training images' common field of "
                "view (pixels inside it in at least half of them): the synthetic pairs have none, and "
                "outside it the yardstick segmenter was never trained."
            )
        add("synthetic", ROW_JOINT if stage2 is None else ROW_STAGE1, scored, segmented(scored))

    if section.rows:  # the yardstick alone judges nothing
        add("real_test", ROW_YARDSTICK, real_test, segmented(real_test))
    return section


@dataclass(frozen=True)
class FeatureSettings:
    """How features are made and compared (from the evaluator's params)."""

    layers: tuple[str, ...]
    kid_subsets: int
    kid_subset_size: int
    k: int
    prd_draws: int
    batch_size: int


def feature_distances(
    reference: Segmenter,
    real_test: segsynth.PairSet,
    synthetic: segsynth.PairSet,
    real_train: segsynth.PairSet,
    trainer: segsynth.Trainer,
    settings: FeatureSettings,
    generator: torch.Generator,
) -> Section:
    """KID and precision/recall of synthetic (and, as the floor, real training) vs real test images.

    Metrics: ``kid.segmenter`` and ``prd.precision`` / ``prd.recall`` for the synthetic images;
    ``kid.real_train_vs_test`` and ``prd.real_train_vs_test.*`` for the floor (biased low: the
    segmenter was trained on those images). Each has ``.std`` when there is a spread. A measure
    the sets are too small for is left out with a note, never reported as 0.
    """
    section = Section()
    if len(synthetic) == 0:
        section.notes.append(
            "kid.segmenter, prd.precision and prd.recall left out: there are no synthetic pairs."
        )
        return section

    def embed(pairs: segsynth.PairSet) -> torch.Tensor:
        return reference.features(pairs.images, trainer, settings.layers, settings.batch_size)

    real = embed(real_test)
    where = f"pooled {'+'.join(settings.layers)} activations, whole image"
    compared = [("synthetic", "kid.segmenter", "prd", embed(synthetic))]
    if len(real_train) > 0:
        compared.append(("real training (floor)", "kid.real_train_vs_test", "prd.real_train_vs_test",
                         embed(real_train)))
    for name, kid_key, prd_key, other in compared:
        sizes = {"real test images": len(real), "compared images": len(other)}
        try:
            kid = kernel_inception_distance(
                real, other, settings.kid_subsets, settings.kid_subset_size, generator
            )
        except TooFewSamples as exc:
            section.notes.append(f"{kid_key} left out: {exc}.")
        else:
            section.put(kid_key, kid.mean, kid.std)
            if kid.std is None:
                section.notes.append(
                    f"{kid_key}.std left out: both image sets fit in one KID subset, so there is "
                    "a single estimate and no spread over subsets."
                )
            section.rows.append({
                "compared": name, "measure": f"KID = unbiased MMD², cubic kernel ({where})",
                "value": format_mean_std(kid.mean, kid.std, ".3g"), **sizes,
                "detail": f"{kid.subsets} subset(s) of {kid.sizes[0]} real test and {kid.sizes[1]} compared",
            })
        try:
            prd = balanced_precision_recall(real, other, settings.k, settings.prd_draws, generator)
        except TooFewSamples as exc:
            section.notes.append(f"{prd_key}.precision and {prd_key}.recall left out: {exc}.")
            continue
        draws = f"{prd.draws} draw(s) of {prd.size} per set"
        for what, mean, std, meaning in (
            ("precision", prd.precision, prd.precision_std, "share inside the real test manifold"),
            ("recall", prd.recall, prd.recall_std, "share of real test inside their manifold"),
        ):
            section.put(f"{prd_key}.{what}", mean, std)
            section.rows.append({
                "compared": name, "measure": f"{what}, k={settings.k} nearest-neighbour manifolds ({where})",
                "value": format_mean_std(mean, std), **sizes, "detail": f"{meaning}; {draws}",
            })
    return section
