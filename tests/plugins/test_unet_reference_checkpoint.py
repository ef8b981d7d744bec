"""``unet_segmentation`` with ``reference_checkpoint``: a yardstick U-Net read from disk, never trained.

One evaluation (the module fixture) trains its real yardstick as usual; its final checkpoint is
then handed to other evaluations, whose fidelity, KID and precision/recall must be exactly the
numbers that very network gave, with no yardstick trained. Files that are missing, of another
shape, not a U-Net, or carrying pickled code are refused with a message naming them.
"""

from __future__ import annotations

import hashlib
import pickle

from pathlib import Path

import pytest
import torch
import yaml

import segsynth
from segsynth import PairSet, Trainer, TrainerSettings
from square_data import bright_squares
from segsynth.checkpoint import CheckpointStore
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe
from segsynth_unet.component import UNetSegmenter
from segsynth_unet.evaluator import UNetSegmentationEvaluator
from segsynth_unet.reference import FEATURES_TITLE, FIDELITY_TITLE
from segsynth_unet.segmenter import Segmenter
from toys import TOY_RECIPE

Params = UNetSegmentationEvaluator.Params
SIZE = 32
INFO = segsynth.DatasetInfo(1, 1, (SIZE, SIZE), has_fov=True)
PARAMS = dict(steps=15, lr=1e-2, depth=2, base_filters=4, batch_size=8, seeds=1, train_on=["real"],
              kid_subsets=2, kid_subset_size=4, prd_k=1, prd_draws=2, figure_images=0)
MEASURED = ("fidelity.", "kid.", "prd.")  # the metrics the yardstick makes


def make_trainer(path: Path, resume: bool = False) -> Trainer:
    return Trainer(path, TrainerSettings(device="cpu", progress=False, checkpoint_every=0, seed=5),
                   resume=resume)


def squares(n: int, seed: int, fov: bool = False) -> PairSet:
    """Dark noisy images with one bright 10x10 square each."""
    return bright_squares(n, seed, size=SIZE, side=10, fov=fov, fov_margin=2)


REAL_TRAIN = squares(10, 1)
REAL_TEST = squares(6, 2, fov=True)
SYNTHETIC = squares(8, 3)


def identity(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A perfectly faithful Stage II: the image is its mask."""
    return masks.clone()


def evaluate(folder: Path, **changes: object) -> tuple[segsynth.EvaluationResult, segsynth.EvaluationContext]:
    evaluator = UNetSegmentationEvaluator(Params(**(PARAMS | changes)), INFO)
    context = segsynth.EvaluationContext(translate=identity)
    evaluator.bind(context)
    return evaluator.evaluate(REAL_TRAIN, REAL_TEST, SYNTHETIC, make_trainer(folder)), context


def measured(result: segsynth.EvaluationResult) -> dict[str, float]:
    return {k: v for k, v in result.metrics.items() if k.startswith(MEASURED)}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, segsynth.EvaluationResult,
                                                                segsynth.EvaluationContext]:
    """An evaluation that trained its own yardstick; returns its checkpoint, result and context."""
    folder = tmp_path_factory.mktemp("source")
    result, context = evaluate(folder)
    checkpoint = folder / "real" / "seed0" / "checkpoints" / "final.pt"
    assert checkpoint.is_file() and FIDELITY_TITLE in result.tables
    return checkpoint, result, context


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``desc`` of every segmenter trained during the test (training still happens)."""
    calls: list[str] = []
    original = Segmenter.fit

    def recording(self: Segmenter, pairs: PairSet, trainer: Trainer, plan: object, desc: str) -> None:
        calls.append(desc)
        original(self, pairs, trainer, plan, desc)  # type: ignore[arg-type]

    monkeypatch.setattr(Segmenter, "fit", recording)
    return calls


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the loaded yardstick
def test_the_loaded_network_is_the_yardstick_and_real_is_still_trained(source, fits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    checkpoint, trained, trained_context = source
    result, context = evaluate(tmp_path, reference_checkpoint=checkpoint, steps=3)
    # 'real' is still trained and scored, with this evaluation's own steps
    assert fits == ["unet on real (seed 0)"]
    assert "real.f1" in result.metrics
    own = Segmenter(1, 1, 2, 4, 1e-2)
    assert make_trainer(tmp_path / "real" / "seed0").load_final(own.state())
    # ... but every yardstick number is the loaded network's: exactly the source run's
    assert {"fidelity.synthetic.dice", "fidelity.heldout_masks.dice", "kid.segmenter", "prd.recall",
            "kid.real_train_vs_test"} <= set(measured(trained))
    assert measured(result) == measured(trained)
    space, published = context.features["segmenter"], trained_context.features["segmenter"]
    images = torch.cat([REAL_TEST.images, SYNTHETIC.images])
    assert torch.equal(space.extract(images), published.extract(images))
    # the equality is no accident: this run's own real-trained U-Net embeds differently
    assert not torch.equal(own.features(images, make_trainer(tmp_path)).float(), space.extract(images))
    # titles, describe and a note say where the yardstick came from
    origin = f"loaded from final.pt, sha256 {sha256(checkpoint)[:12]}"
    assert f"Mask fidelity of Stage II (frozen U-Net {origin})" in result.tables
    assert f"Feature-space distance to real test images (frozen U-Net {origin})" in result.tables
    assert FIDELITY_TITLE not in result.tables and FEATURES_TITLE not in result.tables
    assert origin in space.describe and "real pairs" not in space.describe
    assert any(str(checkpoint) in note and sha256(checkpoint) in note for note in result.notes)


def test_without_real_in_train_on_no_yardstick_is_trained(source, fits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    checkpoint, trained, _ = source
    result, context = evaluate(tmp_path, reference_checkpoint=checkpoint, train_on=["synthetic"], steps=2)
    assert fits == ["unet on synthetic (seed 0)"]
    assert not (tmp_path / "real").exists()
    assert not any("train_on has no 'real' set" in note for note in result.notes)
    assert measured(result) == measured(trained)
    assert "segmenter" in context.features


def test_restore_publishes_the_loaded_network_without_training(source, fits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    checkpoint, _, trained_context = source
    evaluator = UNetSegmentationEvaluator(Params(**(PARAMS | {"reference_checkpoint": checkpoint})), INFO)
    context = segsynth.EvaluationContext()
    evaluator.bind(context)
    evaluator.restore(REAL_TRAIN, make_trainer(tmp_path / "evaluation", resume=True))
    assert fits == []
    images = torch.cat([REAL_TEST.images, torch.rand(2, 1, SIZE, SIZE)])
    assert torch.equal(context.features["segmenter"].extract(images),
                       trained_context.features["segmenter"].extract(images))
    assert sha256(checkpoint)[:12] in context.features["segmenter"].describe
    assert not (tmp_path / "evaluation").exists()


def test_a_unet_segmenter_component_checkpoint_is_accepted_when_the_shape_matches(tmp_path: Path) -> None:
    component = UNetSegmenter(UNetSegmenter.Params(steps=2, batch_size=4, depth=2, base_filters=4), INFO)
    trainer = make_trainer(tmp_path / "derived")
    component.fit(REAL_TRAIN, trainer)
    checkpoint = trainer.store.final_path
    evaluator = UNetSegmentationEvaluator(Params(**(PARAMS | {"reference_checkpoint": checkpoint})), INFO)
    assert evaluator.loaded is not None
    assert torch.equal(evaluator.loaded.segmenter.predict(REAL_TEST.images, trainer),
                       component.predict(REAL_TEST.images, trainer))


# --------------------------------------------------------------------------- refusals
def test_another_shape_is_refused_naming_the_file_and_the_params_to_set(source) -> None:  # type: ignore[no-untyped-def]
    checkpoint, _, _ = source
    with pytest.raises(segsynth.UserError) as err:
        UNetSegmentationEvaluator(Params(**(PARAMS | {"reference_checkpoint": checkpoint, "base_filters": 8})), INFO)
    message = str(err.value)
    assert str(checkpoint) in message
    assert "depth 2 with base_filters 4" in message and "depth 2 with base_filters 8" in message
    assert "depth: 2 and base_filters: 4" in message
    rgb = segsynth.DatasetInfo(3, 1, (SIZE, SIZE))
    with pytest.raises(segsynth.UserError, match="1-channel images.*3-channel images.*channels cannot") as err:
        UNetSegmentationEvaluator(Params(**(PARAMS | {"reference_checkpoint": checkpoint})), rgb)
    assert str(checkpoint) in str(err.value)


def test_a_missing_file_is_refused_before_anything_is_trained(fits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nowhere" / "final.pt"
    with pytest.raises(segsynth.UserError) as err:
        UNetSegmentationEvaluator(Params(**(PARAMS | {"reference_checkpoint": missing})), INFO)
    assert "reference_checkpoint" in str(err.value) and str(missing) in str(err.value)
    assert fits == []


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the test's own hostile files
def test_files_that_are_not_safe_unet_checkpoints_are_refused(source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    checkpoint, _, _ = source
    pwned = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (exec, (f"open({str(pwned)!r}, 'w').write('x')",))

    def refused(path: Path, match: str) -> None:
        with pytest.raises(segsynth.UserError, match=match) as err:
            UNetSegmentationEvaluator(Params(**(PARAMS | {"reference_checkpoint": path})), INFO)
        assert str(path) in str(err.value)

    # a torch file carrying code where the weights should be, and a bare pickle of an object
    carrying = tmp_path / "carrying.pt"
    torch.save({"format": 1, "step": 1, "state": {"net": Evil()}, "rng": {}}, carrying,
               pickle_protocol=pickle.DEFAULT_PROTOCOL)
    refused(carrying, "cannot be loaded safely")
    bare = tmp_path / "bare.pkl"
    bare.write_bytes(pickle.dumps(Evil()))
    refused(bare, "cannot be loaded safely")
    assert not pwned.exists()
    # a copy whose checksum sidecar disagrees with it (changed or cut short)
    changed = tmp_path / "changed" / "final.pt"
    changed.parent.mkdir()
    changed.write_bytes(checkpoint.read_bytes())
    changed.with_suffix(".pt.sha256").write_text("0" * 64 + "\n")
    refused(changed, "does not match its checksum")
    # a safe segsynth checkpoint of something that is not a U-Net
    other = CheckpointStore(tmp_path / "other").save(1, {"generator": torch.nn.Linear(2, 2)}, final=True)
    refused(other, "holds no U-Net weights")


# --------------------------------------------------------------------------- recipes
def test_a_relative_path_is_read_from_the_recipe_folder_and_may_not_exist_yet(toy_plugin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = dict(TOY_RECIPE)
    data["evaluation"] = [{"name": "unet_segmentation",
                           "params": {"reference_checkpoint": "../other/derived/final.pt"}}]
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.parent.mkdir()
    recipe.write_text(yaml.safe_dump(data))
    loaded = load_recipe(recipe, get_registry())  # validation does not need the file
    expected = (tmp_path / "other" / "derived" / "final.pt").resolve()
    assert loaded.evaluation_params[0].reference_checkpoint == expected  # type: ignore[attr-defined]
    assert loaded.resolved()["evaluation"][0]["params"]["reference_checkpoint"] == str(expected)
