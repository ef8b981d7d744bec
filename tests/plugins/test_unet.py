"""The U-Net segmentation evaluator: network shapes, loss, augmentation, resumable training, end to end."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import torch

import segsynth
from segsynth import Trainer, TrainerSettings
from square_data import bright_squares
from segsynth_unet import plugin
from segsynth_unet.augment import PHOTOMETRIC_RANGES, random_dihedral, random_photometric
from segsynth_unet.evaluator import UNetSegmentationEvaluator
from segsynth_unet.loss import segmentation_loss
from segsynth_unet.network import UNet, max_depth
from segsynth_unet.segmenter import Segmenter, TrainingPlan, learning_rate_factor

Params = UNetSegmentationEvaluator.Params


def make_trainer(path: Path, resume: bool = False, every: int = 0) -> Trainer:
    return Trainer(path, TrainerSettings(device="cpu", progress=False, checkpoint_every=every), resume=resume)


# --------------------------------------------------------------------------- network
@pytest.mark.parametrize(
    ("size", "depth"), [((16, 16), 1), ((16, 16), 3), ((20, 28), 2), ((64, 64), 4), ((7, 9), 1)]
)
def test_unet_output_shape(size: tuple[int, int], depth: int) -> None:
    net = UNet(3, 2, depth=depth, base_filters=4).eval()
    out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 2, *size)
    assert torch.isfinite(out).all()


def test_unet_structure_doubles_filters() -> None:
    net = UNet(1, 1, depth=3, base_filters=8)
    assert [block[0].out_channels for block in net.down] == [16, 32, 64]
    assert net.head.out_channels == 1 and net.head.kernel_size == (1, 1)
    assert isinstance(net.up[0].up, torch.nn.ConvTranspose2d)


def test_max_depth_keeps_a_2x2_bottleneck() -> None:
    assert max_depth((64, 64)) == 5
    assert max_depth((16, 16)) == 3
    assert max_depth((584, 565)) == 8
    assert max_depth((3, 100)) == 0


def test_too_deep_raises_user_error_and_auto_depth_fits() -> None:
    with pytest.raises(segsynth.UserError, match="too deep for 16x16"):
        UNetSegmentationEvaluator(Params(depth=4), segsynth.DatasetInfo(1, 1, (16, 16)))
    assert UNetSegmentationEvaluator(Params(), segsynth.DatasetInfo(1, 1, (16, 16))).depth == 3
    assert UNetSegmentationEvaluator(Params(), segsynth.DatasetInfo(3, 1, (64, 64))).depth == 4
    assert UNetSegmentationEvaluator(Params(depth=5), segsynth.DatasetInfo(3, 1, (64, 64))).depth == 5


@pytest.mark.parametrize(
    "bad",
    [
        {"train_on": []},
        {"train_on": ["real", "real"]},
        {"train_on": ["fake"]},
        {"steps": 0},
        {"threshold": 1.0},
        {"lr": 0.0},
        {"depth": 0},
        {"unknown": 1},
    ],
)
def test_params_validation(bad: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        Params(**bad)


def test_params_defaults_and_every_field_described() -> None:
    p = Params()
    assert p.train_on == ["real", "synthetic@real_count", "synthetic", "real+synthetic"]
    assert p.synthetic_counts == [None] and p.seeds == 3
    assert p.steps == 600 and p.batch_size == 8 and p.lr == 1e-3 and p.threshold == 0.5
    assert p.fidelity and p.feature_distances and p.feature_layer == "bottleneck"
    assert (p.kid_subsets, p.kid_subset_size, p.prd_k, p.prd_draws) == (100, 1000, 3, 10)
    # what the shipped recipes write keeps working
    old = Params(steps=4000, batch_size=4, base_filters=64, depth=4, train_on=["real", "synthetic", "real+synthetic"])
    assert old.train_on == ["real", "synthetic", "real+synthetic"]
    assert all(f.description for f in Params.model_fields.values())


def test_plugin_registers_the_evaluator() -> None:
    classes = [c for c in plugin.segsynth_register_components() if issubclass(c, segsynth.Evaluator)]
    assert classes == [UNetSegmentationEvaluator]
    assert UNetSegmentationEvaluator.name == "unet_segmentation"
    assert issubclass(UNetSegmentationEvaluator, segsynth.Evaluator)


# --------------------------------------------------------------------------- loss & augmentation
def test_loss_ignores_pixels_outside_fov_and_is_low_when_right() -> None:
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1.0
    fov = torch.ones(1, 1, 4, 4)
    fov[..., 3, :] = 0.0
    logits = torch.randn(1, 1, 4, 4)
    changed = logits.clone()
    changed[..., 3, :] += 50.0
    assert segmentation_loss(logits, target, fov) == pytest.approx(float(segmentation_loss(changed, target, fov)))
    assert segmentation_loss(logits, target) != pytest.approx(float(segmentation_loss(changed, target)))
    perfect = (target * 2 - 1) * 20.0
    assert float(segmentation_loss(perfect, target)) < 1e-3
    assert float(segmentation_loss(-perfect, target)) > 10.0


def test_loss_falls_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    data = bright_squares(4, seed=1)
    net = UNet(1, 1, depth=2, base_filters=8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = segmentation_loss(net(data.images), data.masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_dihedral_moves_image_mask_and_fov_together() -> None:
    torch.manual_seed(3)
    images = torch.rand(16, 2, 8, 8)
    masks = (images[:, :1] > 0.5).float()
    fovs = (images[:, 1:] > 0.3).float()
    a, m, f = random_dihedral(images, masks, fovs)
    assert torch.equal(m, (a[:, :1] > 0.5).float()) and torch.equal(f, (a[:, 1:] > 0.3).float())
    assert not torch.equal(a, images)  # 16 samples: some were transformed
    # every output is one of the 8 symmetries of its input
    for i in range(16):
        candidates = [torch.rot90(x, k, (-2, -1)) for x in (images[i], images[i].flip(-1)) for k in range(4)]
        assert any(torch.equal(a[i], c) for c in candidates)
    rect = torch.rand(4, 1, 6, 10)
    (out,) = random_dihedral(rect)
    assert out.shape == rect.shape


# --------------------------------------------------------------------------- photometric jitter
def test_photometric_jitter_changes_the_look_not_the_black_or_the_shape() -> None:
    torch.manual_seed(0)
    images = torch.rand(64, 3, 24, 24) * 0.6 + 0.2
    images[:, :, :, :6] = 0.0  # a black rim, like outside a fundus field of view
    assert random_photometric(images, 0.0) is images
    out = random_photometric(images, 1.0)
    assert out.shape == images.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # one draw per sample: the mean brightness of the bright part moves, by different amounts
    shift = (out[:, :, :, 8:].mean(dim=(1, 2, 3)) - images[:, :, :, 8:].mean(dim=(1, 2, 3)))
    assert float(shift.abs().mean()) > 0.02 and float(shift.std()) > 0.02
    # gamma/gain/tint multiply: far from the bright part the rim stays black up to the noise
    assert float(out[:, :, :, :3].mean()) < 0.02
    # colour balance: channels of one sample move by different factors
    ratio = out[:, :, :, 8:].mean(dim=(2, 3)) / images[:, :, :, 8:].mean(dim=(2, 3))
    assert float((ratio[:, 0] - ratio[:, 1]).abs().mean()) > 0.01
    # the strength scales the ranges: at 0.25 the same draws move brightness about 4x less
    torch.manual_seed(1)
    strong = random_photometric(images, 1.0)
    torch.manual_seed(1)
    weak = random_photometric(images, 0.25)
    assert float((weak - images)[:, :, :, 8:].abs().mean()) < 0.5 * float((strong - images)[:, :, :, 8:].abs().mean())
    assert set(PHOTOMETRIC_RANGES) == {"log_gamma", "gain", "tint", "blur_sigma", "noise"}


def test_photometric_jitter_reaches_the_training_batches(tmp_path: Path) -> None:
    data = bright_squares(6, seed=4, fov=True)
    jittered, plain = fresh_segmenter(), fresh_segmenter()
    jittered.fit(data, make_trainer(tmp_path / "jittered"), TrainingPlan(6, 3, photometric=1.0), "jittered")
    plain.fit(data, make_trainer(tmp_path / "plain"), TrainingPlan(6, 3), "plain")
    for (name, a), (_, b) in zip(jittered.net.state_dict().items(), plain.net.state_dict().items()):
        if a.is_floating_point() and not torch.equal(a, b):
            return
    pytest.fail("photometric=1.0 trained the same weights as no jitter")


def fresh_segmenter() -> Segmenter:
    """A small segmenter with the same initial weights every call (as a new process would build)."""
    torch.manual_seed(123)
    return Segmenter(1, 1, depth=2, base_filters=4, lr=1e-2)


# --------------------------------------------------------------------------- segmenter training
def test_checkpoint_reload_gives_identical_predictions(tmp_path: Path) -> None:
    data = bright_squares(6, seed=2)
    trainer = make_trainer(tmp_path)
    torch.manual_seed(0)
    seg = Segmenter(1, 1, depth=2, base_filters=4, lr=1e-2)
    seg.fit(data, trainer, TrainingPlan(steps=5, batch_size=4, affine=True), "test")
    before = seg.predict(data.images, trainer)
    assert before.shape == (6, 1, 16, 16) and 0.0 <= float(before.min()) and float(before.max()) <= 1.0
    fresh = Segmenter(1, 1, depth=2, base_filters=4, lr=1e-2)
    assert not torch.equal(fresh.predict(data.images, trainer), before)
    assert make_trainer(tmp_path).load_final(fresh.state())
    assert torch.equal(fresh.predict(data.images, trainer), before)
    assert (tmp_path / "losses.csv").read_text().splitlines()[-1].startswith("5,")


@pytest.mark.parametrize("augmentation", [{"affine": True}, {"photometric": 1.0}])
def test_resume_equals_uninterrupted_run(tmp_path: Path, augmentation: dict) -> None:
    data = bright_squares(6, seed=4, fov=True)
    plan = TrainingPlan(steps=6, batch_size=3, **augmentation)
    fresh = fresh_segmenter

    whole = fresh()
    whole.fit(data, make_trainer(tmp_path / "whole", every=3), plan, "whole")

    first = fresh()
    first.fit(data, make_trainer(tmp_path / "split", every=3), TrainingPlan(3, 3, **augmentation), "a")
    resumed = fresh()  # a new process: weights come back from the step-3 checkpoint
    resumed.fit(data, make_trainer(tmp_path / "split", resume=True, every=3), plan, "b")

    for (name, a), (_, b) in zip(whole.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), name
    # the same loss is logged at step 6 (the split run also logged its own last step, 3)
    last = (tmp_path / "split" / "losses.csv").read_text().splitlines()[-1]
    assert last == (tmp_path / "whole" / "losses.csv").read_text().splitlines()[-1]


def test_cosine_learning_rate_falls_from_one_to_zero() -> None:
    factors = [learning_rate_factor("cosine", step, 9) for step in range(1, 10)]
    assert factors[0] == 1.0 and factors[-1] == pytest.approx(0.0, abs=1e-12)
    assert factors[4] == pytest.approx(0.5)  # the middle step trains at half the rate
    assert all(a > b for a, b in zip(factors, factors[1:]))
    assert {learning_rate_factor("constant", step, 9) for step in range(1, 10)} == {1.0}
    with pytest.raises(ValueError, match="lr_decay"):
        learning_rate_factor("linear", 1, 9)


def test_cosine_fit_ends_at_rate_zero_and_resumes_exactly(tmp_path: Path) -> None:
    data = bright_squares(6, seed=4, fov=True)
    plan = TrainingPlan(steps=6, batch_size=3, lr_decay="cosine")

    def fresh() -> Segmenter:
        torch.manual_seed(123)
        return Segmenter(1, 1, depth=2, base_filters=4, lr=1e-2)

    whole = fresh()
    whole.fit(data, make_trainer(tmp_path / "whole", every=3), plan, "whole")
    group = whole.optimizer.param_groups[0]
    assert group["initial_lr"] == 1e-2 and group["lr"] == pytest.approx(0.0, abs=1e-12)

    interrupted = fresh()  # stopped during step 5, after the step-3 checkpoint
    calls = {"n": 0}
    loss = interrupted.loss

    def failing_loss(*args: object) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return loss(*args)

    interrupted.loss = failing_loss
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(data, make_trainer(tmp_path / "split", every=3), plan, "a")
    resumed = fresh()  # a new process: the rates of steps 4-6 come from the step, not from state
    resumed.fit(data, make_trainer(tmp_path / "split", resume=True, every=3), plan, "b")
    for (name, a), (_, b) in zip(whole.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), name


def test_params_take_lr_decay() -> None:
    assert Params().lr_decay == "constant"
    assert Params(lr_decay="cosine").lr_decay == "cosine"
    with pytest.raises(pydantic.ValidationError):
        Params(lr_decay="linear")


# --------------------------------------------------------------------------- end to end
METRICS = ["f1", "macro_f1", "precision", "recall", "specificity", "accuracy", "auc", "mean_image_f1"]
#: the recall by width of bright_squares' truth: every square is at least 5 px wide
SQUARES_WIDTH = "recall_width.5px+"
REFERENCE_METRICS = {"fidelity.synthetic.dice", "fidelity.synthetic.dice.std", "fidelity.real_test.dice",
                     "fidelity.real_test.dice.std", "kid.segmenter", "kid.segmenter.std",
                     "prd.precision", "prd.precision.std", "prd.recall", "prd.recall.std",
                     "kid.real_train_vs_test", "kid.real_train_vs_test.std",
                     "prd.real_train_vs_test.precision", "prd.real_train_vs_test.precision.std",
                     "prd.real_train_vs_test.recall", "prd.real_train_vs_test.recall.std"}


def test_evaluator_end_to_end_on_bright_squares(tmp_path: Path) -> None:
    real_train, real_test, synthetic = bright_squares(8, 10), bright_squares(6, 11, fov=True), bright_squares(16, 12)
    info = segsynth.DatasetInfo(1, 1, (16, 16), has_fov=True)
    params = Params(steps=40, lr=1e-2, depth=2, base_filters=8, batch_size=8, seeds=1,
                    train_on=["real", "synthetic"], kid_subsets=5, kid_subset_size=4)
    evaluator = UNetSegmentationEvaluator(params, info)
    result = evaluator.evaluate(real_train, real_test, synthetic, make_trainer(tmp_path))

    expected = {f"{s}.{m}" for s in ("real", "synthetic") for m in [*METRICS, SQUARES_WIDTH]} | {"ratio.f1"}
    assert set(result.metrics) == expected | REFERENCE_METRICS
    assert result.metrics["real.f1"] > 0.8 and result.metrics["synthetic.f1"] > 0.8
    assert result.metrics[f"real.{SQUARES_WIDTH}"] > 0.8  # the squares are found whole
    assert result.metrics["real.auc"] > 0.95
    assert result.metrics["ratio.f1"] == pytest.approx(result.metrics["synthetic.f1"] / result.metrics["real.f1"])
    for key, value in result.metrics.items():
        if not key.startswith(("ratio.", "kid.")):
            assert 0.0 <= value <= 1.0, key
    # squares on noise segmented by a good U-Net: the synthetic masks are found again
    assert result.metrics["fidelity.synthetic.dice"] > 0.8

    rows = result.tables["Train on synthetic, test on real"]
    assert [r["trained on"] for r in rows] == ["real", "synthetic"]
    assert rows[1]["training pairs"] == 16 and rows[1]["seeds"] == 1
    assert rows[0]["Dice = foreground F1, pooled pixels (in FOV)"] == f"{result.metrics['real.f1']:.3f}"
    assert "ROC AUC of pixel probabilities (in FOV)" in rows[0]
    assert "macro F1 = mean of foreground and background F1 (in FOV)" in rows[0]
    assert any("seeds = 1" in note for note in result.notes)
    assert any("0.8988" in note and "macro" in note for note in result.notes)

    figure = Path(result.figures["U-Net predictions on real test images (seed 0)"])
    assert figure == tmp_path / "predictions.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for source in ("real", "synthetic"):
        assert (tmp_path / source / "seed0" / "checkpoints" / "final.pt").exists()
        assert (tmp_path / source / "seed0" / "losses.csv").exists()

    # resuming a finished evaluation reloads both segmenters instead of training them again
    (tmp_path / "real" / "seed0" / "losses.csv").unlink()
    again = evaluator.evaluate(real_train, real_test, synthetic, make_trainer(tmp_path, resume=True))
    assert again.metrics == result.metrics
    assert not (tmp_path / "real" / "seed0" / "losses.csv").exists()


def test_evaluator_notes_missing_training_data(tmp_path: Path) -> None:
    real_train, real_test = bright_squares(4, 20), bright_squares(2, 21)
    empty = real_train.subset([])
    info = segsynth.DatasetInfo(1, 1, (16, 16))
    params = Params(steps=2, depth=1, base_filters=2, seeds=1, figure_images=0,
                    train_on=["synthetic", "synthetic@real_count", "real+synthetic"])
    result = UNetSegmentationEvaluator(params, info).evaluate(real_train, real_test, empty, make_trainer(tmp_path))
    assert set(result.metrics) == {f"real+synthetic.{m}" for m in [*METRICS, SQUARES_WIDTH]}
    assert any("No synthetic training pairs" in note for note in result.notes)
    assert any("synthetic@real_count needs 4 pairs but only 0 exist" in note for note in result.notes)
    # the yardstick is trained even when 'real' is not a training set, but there is nothing to judge
    assert any("no 'real' set" in note for note in result.notes)
    assert any("fidelity.synthetic.dice left out" in note for note in result.notes)
    assert any("kid.segmenter, prd.precision and prd.recall left out" in note for note in result.notes)
    assert (tmp_path / "real" / "seed0" / "checkpoints" / "final.pt").exists()
    assert result.figures == {}
    with pytest.raises(segsynth.UserError, match="3-channel images"):
        UNetSegmentationEvaluator(params, segsynth.DatasetInfo(3, 1, (16, 16))).evaluate(
            real_train, real_test, empty, make_trainer(tmp_path / "x")
        )
