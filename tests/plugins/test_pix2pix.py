"""Tests of the pix2pix Stage-II translator: networks, params, learning, rendering, resuming."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import gan_checks as checks
from segsynth import DatasetInfo, Translator, UserError
from segsynth.params import DiscriminatorAugment
from segsynth_pix2pix.augment import PairAugment
from segsynth_pix2pix.discriminator import PatchDiscriminator, output_size, receptive_field
from segsynth_pix2pix.generator import UNetGenerator
from segsynth_pix2pix.translator import Pix2PixTranslator

P = Pix2PixTranslator.Params


def _translator(size: int = 32, image_channels: int = 1, **params: object) -> Pix2PixTranslator:
    base = {"base_filters": 8, "log_every": 1}
    base.update(params)
    return Pix2PixTranslator(P(**base), DatasetInfo(image_channels, 1, (size, size)))


# ----------------------------------------------------------------------------- registration
def test_plugin_registers_the_translator() -> None:
    checks.check_registration("pix2pix", "segsynth_register_translators", Pix2PixTranslator, Translator, "pix2pix")


# ----------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_generator_shape_range_and_depth(size: int) -> None:
    t = _translator(size, image_channels=3, base_filters=4)
    assert len(t.generator.down) == int(math.log2(size))
    assert len(t.generator.up) == int(math.log2(size)) - 1
    masks = (torch.rand(2, 1, size, size) > 0.5).float()
    raw = t.generator(masks * 2 - 1)
    assert raw.shape == (2, 3, size, size)
    assert raw.min() >= -1 and raw.max() <= 1
    out = t.translate(masks, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, size, size)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_generator_widths_double_and_cap_at_eight_times() -> None:
    g = UNetGenerator(1, 1, (256, 256), base_filters=4)
    widths = [block[0].out_channels for block in g.down]
    assert widths == [4, 8, 16, 32, 32, 32, 32, 32]
    dropouts = [any(isinstance(m, torch.nn.Dropout) for m in block) for block in g.up]
    assert dropouts == [True, True, True, False, False, False, False]


def test_resize_upsampling_paints_no_checkerboard_on_a_flat_input() -> None:
    """A flat map upsampled by a transposed 4x4/2 convolution comes out with a period-2 pattern
    (each output pixel sums a different subset of kernel taps); resize + 3x3 stays flat inside."""
    from segsynth_pix2pix.generator import _upsampling

    flat = torch.ones(1, 8, 6, 6)
    torch.manual_seed(0)
    transpose = torch.nn.Sequential(*_upsampling(8, 4, "transpose", bias=False))
    resize = torch.nn.Sequential(*_upsampling(8, 4, "resize", bias=False))
    with torch.no_grad():
        inside_t = transpose(flat)[..., 2:-2, 2:-2]
        inside_r = resize(flat)[..., 2:-2, 2:-2]
    assert inside_r.shape == inside_t.shape == (1, 4, 8, 8)
    assert float(inside_r.std(dim=(-2, -1)).max()) < 1e-5
    assert float(inside_t.std(dim=(-2, -1)).min()) > 1e-3
    g = UNetGenerator(1, 3, (32, 32), base_filters=4, upsample="resize")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    assert g(torch.zeros(2, 1, 32, 32)).shape == (2, 3, 32, 32)


def test_patchgan_grid_and_receptive_field() -> None:
    d = PatchDiscriminator(4, base_filters=4, n_layers=3)
    assert d(torch.zeros(1, 4, 256, 256)).shape == (1, 1, 30, 30)
    assert output_size(d, 256) == 30
    assert receptive_field(d) == 70
    assert receptive_field(PatchDiscriminator(4, base_filters=4, n_layers=1)) == 16
    assert receptive_field(PatchDiscriminator(4, base_filters=4, n_layers=2)) == 34
    d5 = PatchDiscriminator(4, base_filters=4, n_layers=5)
    assert receptive_field(d5) == 286
    assert d5(torch.zeros(1, 4, 256, 256)).shape[-1] == output_size(d5, 256) == 6


@pytest.mark.parametrize("size", [(96, 96), (64, 32), (48, 48), (1, 1)])
def test_unsupported_size_is_a_user_error(size: tuple[int, int]) -> None:
    with pytest.raises(UserError, match="pix2pix needs"):
        Pix2PixTranslator(P(base_filters=4), DatasetInfo(1, 1, size))


def test_too_deep_patchgan_for_the_size_is_a_user_error() -> None:
    with pytest.raises(UserError, match="disc_layers: 3 or fewer"):
        Pix2PixTranslator(P(base_filters=4, disc_layers=4), DatasetInfo(1, 1, (32, 32)))


def test_pair_augment_moves_mask_and_image_together_and_passes_gradients() -> None:
    torch.manual_seed(3)
    image = torch.rand(4, 1, 32, 32, requires_grad=True)
    mask = image.detach().clone()
    out = PairAugment(DiscriminatorAugment())(torch.cat([mask, image], dim=1))
    assert out.shape == (4, 2, 32, 32)
    assert torch.equal(out[:, 0], out[:, 1])
    assert not torch.equal(out[:, 1], image.detach()[:, 0])
    out[:, 1].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- params
@pytest.mark.parametrize(
    ("params", "message"),
    [
        *checks.TRANSLATOR_PARAM_ERRORS,
        ({"gan_loss": "wgan"}, "gan_loss"),
        ({"dropout": 1.0}, "dropout"),
        ({"lamda_l1": 10}, "lamda_l1"),
    ],
)
def test_params_validation_errors(params: dict[str, object], message: str) -> None:
    checks.check_rejected(P, params, message)


def test_params_defaults_and_old_spellings() -> None:
    p = P()
    assert (p.steps, p.batch_size, p.base_filters, p.lambda_l1, p.lr) == (2000, 1, 64, 100.0, 2e-4)
    assert (p.betas, p.disc_layers, p.norm, p.gan_loss) == ((0.5, 0.999), 3, "batch", "bce")
    assert p.dropout_at_inference is True and not p.augment.enabled and p.log_every == 10
    assert P(augment={"enabled": True}).augment == DiscriminatorAugment()
    checks.check_old_translator_spellings(P, (0.5, 0.999))


# ----------------------------------------------------------------------------- learning
def test_learns_one_fixed_pair(tmp_path: Path) -> None:
    pair = checks.bar_pairs(1, 32, seed=1)
    t = _translator(32, steps=150, base_filters=16, flip=False, dropout_at_inference=False)
    trainer = checks.cpu_trainer(tmp_path)
    before = F.l1_loss(t.translate(pair.masks, torch.Generator()), pair.images).item()
    t.fit(pair, trainer)
    after = F.l1_loss(t.translate(pair.masks, torch.Generator()), pair.images).item()
    assert after < 0.5 * before, (before, after)
    assert after < 0.05
    rows = checks.read_losses(tmp_path)
    assert set(rows[0]) == {"step", "d_loss", "g_gan", "g_l1"}
    assert len(rows) == 150
    first = sum(float(r["g_l1"]) for r in rows[:10]) / 10
    last = sum(float(r["g_l1"]) for r in rows[-10:]) / 10
    assert last < 0.5 * first


def test_discriminator_gradients_do_not_leak_from_the_generator_step(tmp_path: Path) -> None:
    pairs = checks.bar_pairs(2, 32)
    checks.check_generator_step_leaves_discriminator(_translator(32), pairs.masks * 2 - 1, pairs.images * 2 - 1, tmp_path)


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("gan_loss", ["bce", "lsgan"])
def test_norm_and_loss_variants_train(tmp_path: Path, norm: str, gan_loss: str) -> None:
    t = _translator(32, image_channels=3, steps=4, batch_size=2, norm=norm, gan_loss=gan_loss,
                    augment={"enabled": True})
    expected = torch.nn.BatchNorm2d if norm == "batch" else torch.nn.InstanceNorm2d
    assert any(isinstance(m, expected) for m in t.generator.modules())
    assert any(isinstance(m, expected) for m in t.discriminator.modules())
    checks.check_translator_variant_trains(t, 4, tmp_path)


def test_learning_rate_decays_linearly_after_its_start(tmp_path: Path) -> None:
    checks.check_learning_rates_decay(_translator(32, steps=6, lr=1e-3, lr_decay_start=0.5), tmp_path, 1e-3, 1e-3)


# ----------------------------------------------------------------------------- rendering
def test_translate_is_seeded_by_the_generator(tmp_path: Path) -> None:
    t = _translator(32, translate_batch_size=3, steps=20)
    masks = checks.bar_pairs(5, 32).masks
    t.fit(checks.bar_pairs(4, 32, seed=5), checks.cpu_trainer(tmp_path))  # untrained, dropout barely shows
    checks.check_translate_is_seeded(t, masks)


def test_translate_without_inference_dropout_is_deterministic() -> None:
    t = _translator(32, dropout_at_inference=False)
    masks = checks.bar_pairs(3, 32).masks
    a = t.translate(masks, torch.Generator().manual_seed(1))
    b = t.translate(masks, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert t.generator.training  # rendering leaves the training mode as it was


def test_translate_rejects_wrong_masks_and_handles_none() -> None:
    checks.check_translate_rejects_wrong_masks(_translator(32))


# ----------------------------------------------------------------------------- checkpoints
def test_final_checkpoint_reloads_to_identical_outputs(tmp_path: Path) -> None:
    checks.check_final_checkpoint_reloads_translator(lambda: _translator(32, steps=5, batch_size=2), tmp_path)


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    n = 3
    settings = {"batch_size": 2, "augment": {"enabled": True}, "flip": True}
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: _translator(32, steps=steps, **settings),
        checks.bar_pairs(4, 32), tmp_path, steps=2 * n, every=n, resumed_seed=1234,
    )
    checks.assert_same_state(straight, second, ("generator", "discriminator"))
    assert [int(r["step"]) for r in checks.read_losses(tmp_path / "resumed")] == list(range(1, 2 * n + 1))


# ----------------------------------------------------------------------------- mask consistency
def test_segmentation_loss_is_low_when_right_and_high_when_wrong() -> None:
    from segsynth_pix2pix.consistency import segmentation_loss

    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:4, :] = 1  # a sparse bar, like a vessel
    right = segmentation_loss(target * 40 - 20, target)
    wrong = segmentation_loss(20 - target * 40, target)
    blank = segmentation_loss(torch.full_like(target, -20.0), target)  # misses the bar: BCE alone is small
    assert float(right) < 0.01
    assert float(wrong) > 10
    assert float(blank) > 0.9  # the Dice half: a prediction without the foreground costs ~1
    empty = torch.zeros_like(target)
    assert float(segmentation_loss(torch.full_like(empty, -20.0), empty)) < 0.01  # nothing to find, nothing found


def test_mask_consistency_is_off_by_default_and_adds_a_trained_segmenter_when_on(tmp_path: Path) -> None:
    assert P().mask_consistency == 0.0 and P().consistency_filters == 8
    off = _translator(32)
    assert off.consistency is None and set(off.state()) == {"generator", "discriminator", "opt_g", "opt_d"}
    on = _translator(32, steps=4, batch_size=2, mask_consistency=5.0, consistency_filters=4)
    assert {"consistency_segmenter", "opt_consistency"} <= set(on.state())
    segmenter = on.consistency.segmenter
    assert not any(isinstance(m, torch.nn.Tanh) for m in segmenter.modules())  # logits out
    before = {k: v.clone() for k, v in segmenter.state_dict().items()}
    on.fit(checks.bar_pairs(4, 32, seed=3), checks.cpu_trainer(tmp_path / "fit"))
    assert set(checks.read_losses(tmp_path / "fit")[0]) == {"step", "d_loss", "g_gan", "g_l1", "s_real", "g_consistency"}
    assert any(not torch.equal(before[k], v) for k, v in segmenter.state_dict().items())
    # the segmenter learns mask-from-image on real pairs (here alone, at a quicker rate)
    from segsynth_pix2pix.consistency import MaskConsistency

    pairs = checks.bar_pairs(4, 32, seed=3)
    learner = MaskConsistency(on.consistency.segmenter, lr=2e-3, betas=(0.5, 0.999))
    trainer = checks.cpu_trainer(tmp_path / "segmenter")
    losses = [float(learner.train_on_real(pairs.images * 2 - 1, pairs.masks, trainer)) for _ in range(40)]
    assert sum(losses[-5:]) < 0.6 * sum(losses[:5]), losses


def test_consistency_term_moves_the_generator_and_never_the_segmenter() -> None:
    t = _translator(32, mask_consistency=1.0, consistency_filters=4)
    pairs = checks.bar_pairs(2, 32)
    fake = t.generator(pairs.masks * 2 - 1)
    loss = t.consistency.generator_loss(fake, pairs.masks, checks.cpu_trainer(Path("unused")))
    loss.backward()
    assert all(p.grad is None for p in t.consistency.segmenter.parameters())
    assert all(p.requires_grad for p in t.consistency.segmenter.parameters())  # unfrozen afterwards
    assert sum(float(p.grad.abs().sum()) for p in t.generator.parameters() if p.grad is not None) > 0


def test_resume_with_mask_consistency_equals_uninterrupted_run(tmp_path: Path) -> None:
    settings = {"batch_size": 2, "mask_consistency": 2.0, "consistency_filters": 4}
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: _translator(32, steps=steps, **settings),
        checks.bar_pairs(4, 32), tmp_path, steps=6, every=3, resumed_seed=77,
    )
    checks.assert_same_state(straight, second, ("generator", "discriminator", "consistency_segmenter"),
                             ("opt_consistency",))
    checks.assert_same_losses(tmp_path)


def test_a_run_started_before_a_new_parameter_resumes_and_lists_only_real_changes(tmp_path: Path) -> None:
    """A run folder written before ``mask_consistency`` existed resumes (the new field at its
    default is no change); setting it is refused, and the message names it alone."""
    import yaml

    from segsynth.folders import RunFolder
    from segsynth.plugins import get_registry
    from segsynth.recipe import load_recipe
    from segsynth.resume_check import check_run_folder

    root = Path(__file__).resolve().parents[2]
    resolved = load_recipe(root / "recipes" / "quickstart.yaml", get_registry()).resolved()
    assert resolved["stage2"]["name"] == "pix2pix"
    old = yaml.safe_load(yaml.safe_dump(resolved))
    del old["stage2"]["params"]["mask_consistency"], old["stage2"]["params"]["consistency_filters"]
    folder = RunFolder(tmp_path)
    folder.resolved_recipe.write_text(yaml.safe_dump(old))
    assert check_run_folder(folder, resolved) == []
    resolved["stage2"]["params"]["mask_consistency"] = 5.0
    with pytest.raises(UserError, match=r"mask_consistency: 0.0 -> 5.0") as refused:
        check_run_folder(folder, resolved)
    assert "consistency_filters" not in str(refused.value)


# ----------------------------------------------------------------------------- small structures
def test_top_hats_keep_only_what_is_narrower_than_the_square() -> None:
    from segsynth.structures import top_hats

    image = torch.full((1, 1, 24, 24), 0.5)
    image[..., 4, :] = 0.3           # a dark 1-px line, 0.2 deep
    image[..., 12:20, :] = 0.1       # a dark band 8 px wide: wider than the 5-px square
    image[..., 2, 10] = 0.9          # a bright 1-px speck, 0.4 high
    dark, bright = top_hats(image, 5)
    assert torch.allclose(dark[..., 4, :], torch.full((24,), 0.2), atol=1e-6)
    assert dark[..., 12:20, :].abs().max() < 1e-6 and dark[..., 8, :].abs().max() < 1e-6
    assert bright[..., 2, 10].item() == pytest.approx(0.4, abs=1e-6)
    assert (bright > 1e-6).sum() == 1 and (dark >= 0).all() and (bright >= 0).all()


def test_structure_l1_pays_for_an_extra_line_and_its_gradient_sits_on_it() -> None:
    from segsynth_pix2pix.losses import structure_l1

    real = torch.full((2, 3, 24, 24), 0.2)
    assert structure_l1(real, real, 5).item() == 0.0
    fake = real.clone().requires_grad_(True)
    with torch.no_grad():
        fake[0, :, :, 9] -= 0.1      # a thin dark line the photograph does not have
    loss = structure_l1(fake, real, 5)
    assert loss.item() == pytest.approx(0.1 * 24 / (24 * 24) / 2, rel=1e-4)  # one column of 24 in image 0 of 2
    loss.backward()
    grad = fake.grad.abs().sum(dim=(0, 1, 2))
    assert grad[9] > 0 and grad[:5].sum() == 0 and grad[14:].sum() == 0  # within two half-squares
    flat = real.clone()
    flat[0] -= 0.1                   # a smooth shift of the whole image: no small structure
    assert structure_l1(flat, real, 5).item() == pytest.approx(0.0, abs=1e-7)


def test_structure_l1_is_off_by_default_and_trains_and_resumes_when_on(tmp_path: Path) -> None:
    assert P().structure_l1 == 0.0 and P().structure_size == 5
    checks.check_rejected(P, {"structure_size": 4}, r"structure_size\n.*must be odd .* use 5")
    checks.check_rejected(P, {"structure_size": 17}, "structure_size")
    on = _translator(32, steps=4, batch_size=2, structure_l1=50.0, structure_size=3)
    on.fit(checks.bar_pairs(4, 32, seed=3), checks.cpu_trainer(tmp_path / "fit"))
    rows = checks.read_losses(tmp_path / "fit")
    assert set(rows[0]) == {"step", "d_loss", "g_gan", "g_l1", "g_structure"}
    assert all(float(r["g_structure"]) > 0 for r in rows)
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: _translator(32, steps=steps, batch_size=2, structure_l1=50.0),
        checks.bar_pairs(4, 32), tmp_path / "resume", steps=6, every=3, resumed_seed=77,
    )
    checks.assert_same_state(straight, second, ("generator", "discriminator"), ())
    checks.assert_same_losses(tmp_path / "resume")
