"""``unet_segmentation`` and the evaluation context: Stage-II fidelity on real masks, shared features.

The reference U-Net is trained once for the module on identity pairs (the image *is* the mask),
so a Stage II that returns its mask is perfectly faithful and one that returns noise is not;
every other evaluation here resumes that folder and only predicts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import segsynth
from segsynth import PairSet, Trainer, TrainerSettings
from square_data import bright_squares
from segsynth.imageio import png_bytes, read_png
from segsynth_unet.evaluator import FIDELITY_OFFSET, UNetSegmentationEvaluator
from segsynth_unet.reference import NO_STAGE2_NOTE, ROW_HELDOUT, ROW_JOINT, ROW_STAGE1, ROW_TRAIN, ROW_YARDSTICK
from segsynth_unet.rendering import StageII, as_published, render_batches
from segsynth_unet.segmenter import Segmenter

Params = UNetSegmentationEvaluator.Params
INFO = segsynth.DatasetInfo(1, 1, (16, 16), has_fov=True)
FIDELITY = "Mask fidelity of Stage II (frozen U-Net trained on real pairs, seed 0)"
TRAIN_KEYS = {"fidelity.train_masks.dice", "fidelity.heldout_masks.dice", "fidelity.generalisation_gap"}
SEED = 3


def make_trainer(path: Path, resume: bool = False) -> Trainer:
    settings = TrainerSettings(device="cpu", progress=False, checkpoint_every=0, seed=SEED)
    return Trainer(path, settings, resume=resume)


def identity_pairs(n: int, seed: int, fov: bool = False) -> PairSet:
    """One 6x6 square per mask; the image is the mask itself."""
    return bright_squares(n, seed, fov=fov, images_are_masks=True)


REAL_TRAIN = identity_pairs(20, 1)  # 20 masks: rendered in a batch of 16 and one of 4
REAL_TEST = identity_pairs(6, 2, fov=True)
SYNTHETIC = identity_pairs(8, 3)
PARAMS = dict(steps=40, lr=1e-2, depth=2, base_filters=8, batch_size=8, seeds=1, train_on=["real"],
              kid_subsets=2, kid_subset_size=4, prd_k=1, figure_images=0)


def evaluate(folder: Path, translate: Callable | None, resume: bool = True,
             **changes: object) -> tuple[segsynth.EvaluationResult, segsynth.EvaluationContext]:
    evaluator = UNetSegmentationEvaluator(Params(**(PARAMS | changes)), INFO)
    context = segsynth.EvaluationContext(translate=translate)
    evaluator.bind(context)
    result = evaluator.evaluate(REAL_TRAIN, REAL_TEST, SYNTHETIC, make_trainer(folder, resume=resume))
    return result, context


def identity(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return masks.clone()


def noise(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(masks.shape, generator=generator)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, segsynth.EvaluationResult,
                                                                 segsynth.EvaluationContext]:
    """The evaluation folder after one full run with a faithful (identity) Stage II."""
    folder = tmp_path_factory.mktemp("unet_context")
    result, context = evaluate(folder, identity, resume=False)
    return folder, result, context


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any U-Net is trained (everything must be reloaded from the folder)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a segmenter was trained; it should have been reloaded")

    monkeypatch.setattr(Segmenter, "fit", refuse)


# --------------------------------------------------------------------------- fidelity
def test_faithful_stage2_scores_high_on_training_and_held_out_masks(trained) -> None:  # type: ignore[no-untyped-def]
    _, result, _ = trained
    metrics = result.metrics
    assert metrics["fidelity.train_masks.dice"] > 0.9
    assert metrics["fidelity.heldout_masks.dice"] > 0.9
    assert "fidelity.train_masks.dice.std" in metrics and "fidelity.heldout_masks.dice.std" in metrics
    assert metrics["fidelity.generalisation_gap"] == pytest.approx(
        metrics["fidelity.train_masks.dice"] - metrics["fidelity.heldout_masks.dice"]
    )
    assert abs(metrics["fidelity.generalisation_gap"]) < 0.1
    rows = result.tables[FIDELITY]
    assert [row["images"] for row in rows] == [ROW_TRAIN, ROW_HELDOUT, ROW_STAGE1, ROW_YARDSTICK]
    assert [row["pairs"] for row in rows] == [20, 6, 8, 6]
    # real masks are scored inside their own field of view (the test split has one, train does not)
    assert "Dice per image, mean ± std over images (whole image)" in rows[0]
    assert "Dice per image, mean ± std over images (in FOV)" in rows[1]
    assert "Dice per image, mean ± std over images (in FOV)" in rows[3]
    assert any("generalisation_gap" in note for note in result.notes)
    assert NO_STAGE2_NOTE not in result.notes


def test_unfaithful_stage2_scores_low(trained, no_training) -> None:  # type: ignore[no-untyped-def]
    folder, faithful, _ = trained
    result, _ = evaluate(folder, noise)
    for key in ("fidelity.train_masks.dice", "fidelity.heldout_masks.dice"):
        assert result.metrics[key] < 0.5, key
        assert faithful.metrics[key] - result.metrics[key] > 0.4, key
    # rows that do not go through the translator are unchanged
    for key in ("fidelity.synthetic.dice", "fidelity.real_test.dice", "real.f1"):
        assert result.metrics[key] == faithful.metrics[key], key


def test_a_stage2_that_memorised_its_training_masks_has_a_positive_gap(trained, no_training) -> None:  # type: ignore[no-untyped-def]
    folder, _, _ = trained
    seen = {bytes(mask.numpy()) for mask in REAL_TRAIN.masks}

    def memoriser(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        known = torch.tensor([bytes(m.numpy()) in seen for m in masks], dtype=torch.float32)
        return masks * known[:, None, None, None]  # blank images for masks it never saw

    metrics = evaluate(folder, memoriser)[0].metrics
    # a held-out mask that happens to equal a training mask is drawn; the others come out blank
    share_seen = sum(bytes(m.numpy()) in seen for m in REAL_TEST.masks) / len(REAL_TEST)
    assert share_seen < 0.5
    assert metrics["fidelity.train_masks.dice"] > 0.9
    assert metrics["fidelity.heldout_masks.dice"] == pytest.approx(share_seen, abs=0.1)
    assert metrics["fidelity.generalisation_gap"] > 0.4


def test_rendering_is_batched_seeded_and_quantised_like_the_published_pngs(  # type: ignore[no-untyped-def]
    trained, no_training, tmp_path: Path
) -> None:
    folder, _, _ = trained
    calls: list[tuple[int, int]] = []

    def recording(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls.append((len(masks), generator.initial_seed()))
        return masks * 0.5 + 0.3

    evaluate(folder, recording)
    assert calls == [(16, SEED + FIDELITY_OFFSET), (4, SEED + FIDELITY_OFFSET), (6, SEED + FIDELITY_OFFSET)]
    images = torch.rand(3, 1, 5, 7)
    for i, image in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(image))
    published = torch.stack([read_png(tmp_path / f"{i}.png", 1) for i in range(len(images))])
    assert torch.equal(as_published(images), published)
    rendered = list(render_batches(StageII(recording, torch.Generator()), REAL_TEST, batch_size=4))
    assert [len(part) for part in rendered] == [4, 2]
    assert torch.equal(rendered[1].fovs, REAL_TEST.fovs[4:])  # type: ignore[index]
    assert torch.equal(rendered[0].images, as_published(REAL_TEST.masks[:4] * 0.5 + 0.3))
    with pytest.raises(ValueError, match="Stage II returned images of shape"):
        list(render_batches(StageII(lambda m, g: m[:1], torch.Generator()), REAL_TEST))


def test_without_stage2_the_real_mask_rows_are_missing_and_explained(trained, no_training) -> None:  # type: ignore[no-untyped-def]
    folder, faithful, _ = trained
    result, _ = evaluate(folder, None)
    assert not TRAIN_KEYS & set(result.metrics)
    assert not any(key.startswith(("fidelity.train_masks", "fidelity.heldout_masks")) for key in result.metrics)
    assert NO_STAGE2_NOTE in result.notes and "two-stage run" in NO_STAGE2_NOTE
    rows = result.tables[FIDELITY]
    assert [row["images"] for row in rows] == [ROW_JOINT, ROW_YARDSTICK]
    assert result.metrics["fidelity.synthetic.dice"] == faithful.metrics["fidelity.synthetic.dice"]


# --------------------------------------------------------------------------- shared features
def test_evaluate_publishes_the_kid_feature_space(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, _, context = trained
    space = context.features["segmenter"]
    assert "bottleneck" in space.describe and "real pairs (seed 0)" in space.describe
    images = REAL_TEST.images
    features = space.extract(images)
    assert features.dtype == torch.float32 and features.device.type == "cpu"
    assert features.shape == (6, 8 * 2**2)  # bottleneck of depth 2 from 8 filters
    # exactly the features KID and precision/recall are computed on
    reference = Segmenter(1, 1, 2, 8, 1e-2)
    trainer = make_trainer(folder / "real" / "seed0")
    assert trainer.load_final(reference.state())
    kid_features = reference.features(images, trainer, ("bottleneck",), 8)
    assert torch.equal(features, kid_features.float())
    with pytest.raises(ValueError, match=r"embeds \(N, 1, H, W\) images"):
        space.extract(torch.rand(2, 3, 16, 16))
    assert space.extract(images[:0]).shape == (0, 32)


def test_restore_publishes_the_same_features_without_training(trained, no_training) -> None:  # type: ignore[no-untyped-def]
    folder, _, context = trained
    losses = (folder / "real" / "seed0" / "losses.csv").read_text()
    evaluator = UNetSegmentationEvaluator(Params(**PARAMS), INFO)
    restored = segsynth.EvaluationContext()
    evaluator.bind(restored)
    evaluator.restore(REAL_TRAIN, make_trainer(folder, resume=True))
    images = torch.cat([REAL_TEST.images, torch.rand(3, 1, 16, 16)])
    assert torch.equal(restored.features["segmenter"].extract(images), context.features["segmenter"].extract(images))
    assert restored.features["segmenter"].describe == context.features["segmenter"].describe
    assert (folder / "real" / "seed0" / "losses.csv").read_text() == losses
    # the layer comes from the params: 'both' adds the 8 channels of the last decoder level
    both = UNetSegmentationEvaluator(Params(**(PARAMS | {"feature_layer": "both"})), INFO)
    both.bind(restored)
    both.restore(REAL_TRAIN, make_trainer(folder, resume=True))
    assert restored.features["segmenter"].extract(images).shape == (9, 32 + 8)


def test_restore_without_a_reference_checkpoint_publishes_nothing(tmp_path: Path, no_training) -> None:  # type: ignore[no-untyped-def]
    evaluator = UNetSegmentationEvaluator(Params(**PARAMS), INFO)
    context = segsynth.EvaluationContext()
    evaluator.bind(context)
    evaluator.restore(REAL_TRAIN, make_trainer(tmp_path / "empty", resume=True))
    assert context.features == {}
    assert not (tmp_path / "empty").exists()


def test_nothing_is_published_when_no_reference_segmenter_is_trained(tmp_path: Path) -> None:
    off = dict(train_on=["synthetic"], fidelity=False, feature_distances=False, steps=2)
    result, context = evaluate(tmp_path, identity, resume=False, **off)
    assert "synthetic.f1" in result.metrics
    assert context.features == {}
    assert not (tmp_path / "real").exists()
    restoring = UNetSegmentationEvaluator(Params(**(PARAMS | off)), INFO)
    restoring.bind(context)
    restoring.restore(REAL_TRAIN, make_trainer(tmp_path, resume=True))
    assert context.features == {}
    # with 'real' as a training set the segmenter exists anyway, and is shared
    _, shared = evaluate(tmp_path / "real_set", None, resume=False, fidelity=False, feature_distances=False,
                         steps=2)
    assert shared.features["segmenter"].extract(REAL_TEST.images).shape == (6, 32)
