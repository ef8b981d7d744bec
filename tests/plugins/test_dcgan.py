"""Tests of the Stage-I ``dcgan`` mask generator plugin (segsynth_dcgan).

Everything runs on tiny networks (base_filters 4-8) and 32 px masks on the CPU, so the whole
file stays within seconds; the one learning test trains 300 steps of an 8-filter model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import segsynth
import gan_checks as checks
from segsynth_dcgan.augment import AugmentParams, DiffAugment
from segsynth_dcgan.component import DCGANMaskGenerator
from segsynth_dcgan.losses import (
    discriminator_loss,
    generator_loss,
    kl_to_standard_normal,
    r1_penalty,
    reconstruction_loss,
)
from segsynth_dcgan.networks import DCGANDiscriminator, DCGANEncoder, DCGANGenerator, dcgan_depth

Params = DCGANMaskGenerator.Params


# ---------------------------------------------------------------------------- helpers
tiny, build = checks.generator_kit(DCGANMaskGenerator)


# ---------------------------------------------------------------------------- registration
def test_plugin_registers_dcgan_through_entry_point() -> None:
    checks.check_registration(
        "dcgan", "segsynth_register_mask_generators", DCGANMaskGenerator, segsynth.MaskGenerator,
        "dcgan", AugmentParams,
    )


# ---------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 2])
def test_network_shapes_and_depth(size: int, channels: int) -> None:
    G, D = checks.tiny_networks(DCGANGenerator, DCGANDiscriminator, size, channels)
    depth = checks.check_network_depth(G, D, size, channels, dcgan_depth)
    assert G.num_up_blocks == depth
    assert D.num_down_blocks == depth
    # channels double per halving of the size and are capped at max_filters
    first = G.net[0]
    assert isinstance(first, nn.ConvTranspose2d)
    assert first.out_channels == min(4 * 2 ** (depth - 1), 16)


def test_default_filters_stay_capped_at_512_pixels() -> None:
    G = DCGANGenerator(nz=100, out_channels=1, size=(512, 512))  # base 64, cap 512
    assert G.num_up_blocks == 7
    assert max(m.out_channels for m in G.modules() if isinstance(m, nn.ConvTranspose2d)) == 512
    assert sum(p.numel() for p in G.parameters()) < 20_000_000  # uncapped would be ~1.2e9


def test_dcgan_weight_init_statistics() -> None:
    torch.manual_seed(0)
    G = DCGANGenerator(nz=64, out_channels=1, size=(64, 64), base_filters=32)
    conv = G.net[0].weight
    assert abs(conv.mean().item()) < 2e-3
    assert conv.std().item() == pytest.approx(0.02, rel=0.05)
    bn = G.net[1].weight
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)
    assert bn.std().item() == pytest.approx(0.02, rel=0.3)


def test_spectral_norm_discriminator_has_no_batchnorm() -> None:
    D = DCGANDiscriminator(1, (32, 32), base_filters=4, spectral_norm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    plain = DCGANDiscriminator(1, (32, 32), base_filters=4)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules()) == plain.depth - 1


@pytest.mark.parametrize("size", [(48, 48), (64, 32), (16, 16), (2048, 2048)])
def test_unsupported_size_raises_user_error(size: tuple[int, int]) -> None:
    checks.check_unsupported_size(DCGANMaskGenerator, tiny(), size)


# ---------------------------------------------------------------------------- params
def test_params_defaults() -> None:
    p = Params()
    assert (p.nz, p.base_filters, p.max_filters) == (100, 64, 512)
    assert (p.loss, p.spectral_norm, p.r1_gamma) == ("nonsaturating", False, 0.0)
    assert (p.lr, p.betas, p.steps, p.batch_size) == (2e-4, (0.5, 0.999), 2000, 32)
    assert (p.ema_decay, p.threshold, p.log_every) == (0.999, 0.0, 10)
    assert p.augment.enabled and not p.augment.adaptive
    recipe = Params.model_validate({"loss": "hinge", "augment": {"adaptive": True, "target": 0.7}})
    assert recipe.loss == "hinge" and recipe.augment.adaptive and recipe.augment.target == 0.7


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        *checks.GENERATOR_PARAM_ERRORS,
        ({"lr": -1e-4}, "lr must be a positive"),
        ({"learning_rate": 1e-3}, "learning_rate"),
        ({"augment": {"rotation": 0.1}}, "rotation"),
        ({"loss": "wasserstein"}, "nonsaturating"),
        ({"augment": {"translation": 0.6}}, "translation"),
        ({"augment": {"target": 1.0}}, "target"),
    ],
)
def test_params_validation_errors(changes: dict[str, object], message: str) -> None:
    checks.check_rejected(Params, changes, message)


# ---------------------------------------------------------------------------- losses
def test_loss_values() -> None:
    zero = torch.zeros(4)
    assert discriminator_loss("nonsaturating", zero, zero).item() == pytest.approx(2 * math.log(2))
    assert generator_loss("nonsaturating", zero).item() == pytest.approx(math.log(2))
    assert discriminator_loss("hinge", zero, zero).item() == pytest.approx(2.0)
    assert discriminator_loss("hinge", torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0
    assert generator_loss("hinge", torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)
    # a confident, correct discriminator has a small loss, a fooled one a large loss
    good = discriminator_loss("nonsaturating", torch.full((4,), 5.0), torch.full((4,), -5.0))
    bad = discriminator_loss("nonsaturating", torch.full((4,), -5.0), torch.full((4,), 5.0))
    assert good.item() < 0.02 < 9.0 < bad.item()


def test_r1_penalty_is_squared_input_gradient_and_trains_d() -> None:
    w = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]], requires_grad=True)
    def linear_d(x: torch.Tensor) -> torch.Tensor:  # D(x) = <w, x>, so dD/dx = w
        return (x * w).sum(dim=(1, 2, 3))

    penalty = r1_penalty(linear_d, torch.randn(5, 1, 2, 2))
    assert penalty.item() == pytest.approx(1 + 4 + 9 + 0.25)
    penalty.backward()
    assert torch.allclose(w.grad, 2 * w.detach())  # d||w||^2 / dw


def test_r1_penalty_of_a_patch_discriminator_uses_each_samples_mean_logit() -> None:
    w = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])
    def pixel_d(x: torch.Tensor) -> torch.Tensor:  # one logit per pixel, flattened as D gives them
        return (x * w).flatten()

    # the mean of the 4 logits has gradient w / 4: the penalty is |w|^2 / 16, not |w|^2
    assert r1_penalty(pixel_d, torch.randn(5, 1, 2, 2)).item() == pytest.approx((1 + 4 + 9 + 0.25) / 16)


# ---------------------------------------------------------------------------- augmentation
def test_augmentation_is_differentiable_and_keeps_shape() -> None:
    torch.manual_seed(0)
    aug = DiffAugment(AugmentParams())
    x = (torch.rand(16, 2, 32, 32) * 2 - 1).requires_grad_(True)
    y = aug(x)
    assert y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # binary masks stay -1/+1, apart from cutout's neutral 0: nothing is interpolated
    binary = torch.where(torch.rand(16, 1, 32, 32) > 0.7, 1.0, -1.0)
    assert set(torch.unique(aug(binary)).tolist()) <= {-1.0, 0.0, 1.0}


def test_d_does_not_mirror_fakes_when_the_real_masks_are_already_mirrored() -> None:
    """A coin-toss flip of everything D sees (ADA at p = 1) hides which way a mask is mirrored,
    so G may draw one of each mirror pair only; with geometry.flip_h the flip is left out of D's
    augmentation, and nothing else of it changes."""
    info = segsynth.DatasetInfo(image_channels=1, mask_channels=1, size=(32, 32))
    asym = -torch.ones(64, 1, 32, 32)
    asym[:, 0, :, :4] = 1.0  # a bar on the left: its mirror has it on the right
    mirrored = DCGANMaskGenerator(Params(base_filters=4, geometry={"flip_h": True}), info)
    assert mirrored.augment.settings.flip is False
    assert mirrored.augment.settings.translation == AugmentParams().translation
    assert mirrored.augment.settings.cutout == AugmentParams().cutout  # only the flip is gone
    plain = DCGANMaskGenerator(Params(base_filters=4, augment={"translation": 0, "cutout": 0}), info)
    unflipped = DCGANMaskGenerator(
        Params(base_filters=4, augment={"translation": 0, "cutout": 0}, geometry={"flip_h": True}), info
    )
    torch.manual_seed(4)
    assert (plain.augment(asym)[:, 0, :, -4:] > 0).all(dim=(1, 2)).sum() > 16  # p = 1: about half flipped
    assert torch.equal(unflipped.augment(asym), asym)


def test_cutout_gradient_is_zero_exactly_in_the_cut() -> None:
    torch.manual_seed(1)
    aug = DiffAugment(AugmentParams(translation=0, flip=False, cutout=0.5))
    x = torch.where(torch.rand(8, 1, 32, 32) > 0.5, 1.0, -1.0).requires_grad_(True)
    y = aug(x)
    y.sum().backward()
    cut = y == 0.0
    assert torch.equal(x.grad, (~cut).float())
    area = cut.flatten(1).sum(1)
    assert ((area >= 8 * 8) & (area <= 16 * 16)).all()  # p = 1: every sample is cut


def test_translation_moves_content_by_whole_pixels() -> None:
    torch.manual_seed(2)
    aug = DiffAugment(AugmentParams(translation=0.125, cutout=0, flip=False))
    x = -torch.ones(32, 1, 32, 32)
    x[:, 0, 16, 16] = 1.0
    x.requires_grad_(True)
    y = aug(x)
    shifts = set()
    for i in range(32):
        (pos,) = (y[i, 0] == 1.0).nonzero().tolist()  # exactly one foreground pixel survives
        dy, dx = pos[0] - 16, pos[1] - 16
        assert abs(dy) <= 4 and abs(dx) <= 4  # 0.125 * 32
        shifts.add((dy, dx))
    assert len(shifts) > 5
    assert set(torch.unique(y).tolist()) == {-1.0, 1.0}  # gaps are filled with background
    y.sum().backward()
    assert x.grad[:, 0, 16, 16].eq(1.0).all()


def test_flip_gives_mirror_or_original() -> None:
    torch.manual_seed(3)
    aug = DiffAugment(AugmentParams(translation=0, cutout=0, flip=True))
    x = torch.randn(64, 1, 8, 8)
    y = aug(x)
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 16 < sum(flipped) < 48  # a fair coin per sample


def test_adaptive_starts_as_identity() -> None:
    aug = DiffAugment(AugmentParams(adaptive=True))
    assert aug.p.item() == 0.0
    x = torch.randn(8, 1, 32, 32)
    assert torch.equal(aug(x), x)
    off = DiffAugment(AugmentParams(enabled=False))
    assert off(x) is x


def test_adaptive_p_follows_the_overfitting_signal() -> None:
    aug = DiffAugment(AugmentParams(adaptive=True, interval=2, speed=0.05, target=0.6))
    aug.p.fill_(0.5)
    overfit = torch.full((8,), 3.0)  # D says "real" to every real sample: r_t = 1
    aug.update(overfit, step=1)
    assert aug.p.item() == 0.5  # waits for the end of the window
    aug.update(overfit, step=2)
    assert aug.p.item() == pytest.approx(0.6)  # + speed * interval
    assert aug.r_t.item() == 1.0
    healthy = torch.tensor([1.0, -1.0] * 4)  # r_t = 0 < target
    aug.update(healthy, step=3)
    aug.update(healthy, step=4)
    assert aug.p.item() == pytest.approx(0.5)
    assert aug.r_t.item() == 0.0
    for step in range(5, 100):
        aug.update(overfit, step)
    assert aug.p.item() == 1.0  # clamped
    fixed = DiffAugment(AugmentParams(adaptive=False))
    fixed.update(overfit, step=2)
    assert fixed.p.item() == 1.0


# ---------------------------------------------------------------------------- sampling, training
@pytest.mark.parametrize("check", checks.MASK_GENERATOR_CHECKS, ids=lambda check: check.__name__)
def test_shared_checks(check: Callable[..., None], tmp_path: Path) -> None:
    check(build, tiny, tmp_path)


def test_learns_the_foreground_fraction(tmp_path: Path) -> None:
    model = build(tiny(nz=16, base_filters=8, batch_size=16, steps=300, log_every=50, bn_stat_samples=128))
    real, before, after = checks.learn_disks(model, tmp_path)
    assert abs(after - real) < 0.06  # 8 seeds measured: at most 0.039
    assert abs(after - real) < 0.2 * abs(before - real)
    rows = checks.read_losses(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(50, 301, 50))
    assert all(math.isfinite(float(r["d_loss"])) and math.isfinite(float(r["g_loss"])) for r in rows)
    # D has not simply won: a memorising D would be near 0 (and G's loss climbing past 4)
    assert float(rows[-1]["d_loss"]) > 0.1


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    params = tiny(
        steps=8, r1_gamma=1.0, r1_every=3, log_every=2,
        augment={"adaptive": True, "interval": 2, "speed": 0.05},
    )
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: DCGANMaskGenerator(params.model_copy(update={"steps": steps}), checks.INFO32),
        checks.disks(6), tmp_path, steps=8, every=4, resumed_seed=99,
    )
    assert straight.augment.p.item() > 0.0  # ADA moved, so its state is part of the comparison
    checks.assert_same_state(straight, second, ("generator", "discriminator", "ema", "augment"), ("opt_g",))
    checks.assert_same_losses(tmp_path)
    assert torch.equal(straight.sample(6, checks.seeded(5)), second.sample(6, checks.seeded(5)))


@pytest.mark.parametrize(
    "changes",
    [
        {"loss": "hinge"},
        {"spectral_norm": True},
        {"r1_gamma": 10.0, "r1_every": 2},
        {"loss": "hinge", "spectral_norm": True, "r1_gamma": 1.0, "r1_every": 1},
        {"straight_through": False},
        {"ema_decay": 0.0},
        {"augment": {"enabled": False}},
        {"augment": {"adaptive": True, "interval": 1}},
        {"minibatch_std": True, "mode_seeking": 0.5},
        {"geometry": {"flip_h": True, "flip_v": True, "degrees": 20, "scale": 0.1}},
        {"diversity": 2.0},
        {"spatial_latent": True},
        {"patch_depth": 2, "r1_gamma": 1.0, "r1_every": 1, "augment": {"adaptive": True, "interval": 1}},
        {"encoder": {"reconstruction": 10.0}, "geometry": {"flip_h": True}},
        {"disc_filters": 2},
        {"thin_channel": True, "r1_gamma": 1.0, "r1_every": 1, "augment": {"adaptive": True, "interval": 1}},
    ],
    ids=["hinge", "spectral_norm", "r1", "hinge+sn+r1", "soft_fakes", "no_ema", "no_augment", "ada",
         "mbstd+mode_seeking", "geometry", "diversity", "spatial_latent", "patch+r1+ada", "encoder",
         "narrow_d", "thin_channel+r1+ada"],
)
def test_variants_train_a_few_steps(tmp_path: Path, changes: dict[str, object]) -> None:
    model = build(tiny(steps=3, **changes))
    rows = checks.check_variant_trains(model, "discriminator", 3, tmp_path)
    if model.params.augment.adaptive:
        assert {"p", "r_t"} <= rows[0].keys()
    if model.encoder is not None:
        assert float(rows[0]["rec"]) > 0.0


def test_thin_channel_shows_d_the_one_pixel_structures_and_passes_gradients() -> None:
    from segsynth_dcgan.thin_view import thin_part, with_thin_channels

    mask = torch.zeros(1, 1, 12, 12)
    mask[0, 0, 1, 1:10] = 1      # a 1-px line: all thin
    mask[0, 0, 4:6, 1:10] = 1    # a 2-px band: none of it
    mask[0, 0, 8:11, 1:10] = 1   # 3 px: none
    mask[0, 0, 4, 11] = 1        # a lone pixel: thin
    thin = thin_part(mask)
    assert torch.equal(thin[0, 0, 1, 1:10], torch.ones(9)) and float(thin[0, 0, 4, 11]) == 1.0
    assert float(thin.sum()) == 10.0
    assert float(thin_part(torch.ones(1, 1, 6, 6)).sum()) == 0.0
    x = (mask * 2 - 1).requires_grad_(True)
    shown = with_thin_channels(x)
    assert shown.shape == (1, 2, 12, 12) and torch.equal(shown[:, :1], x)
    assert set(shown[:, 1].unique().tolist()) == {-1.0, 1.0}
    shown[:, 1].sum().backward()  # the straight-through gradient reaches the generator's output
    assert float(x.grad.abs().sum()) > 0
    model = build(tiny(thin_channel=True))
    assert model.discriminator(torch.zeros(2, 2, 32, 32)).shape[0] == 2  # D takes the two channels


# ---------------------------------------------------------------------------- encoder (VAE-GAN)
def test_reconstruction_and_kl_formulas() -> None:
    real = torch.tensor([[[[1.0, -1.0], [-1.0, -1.0]]]])
    # binary: cross-entropy of (out + 1) / 2, kept off 0 and 1 by 1e-4 so a saturated wrong pixel
    # still has a gradient
    assert reconstruction_loss(real, real, class_logits=False).item() == pytest.approx(1e-4, rel=1e-3)
    assert reconstruction_loss(torch.zeros_like(real), real, class_logits=False).item() == pytest.approx(math.log(2))
    assert reconstruction_loss(-real, real, class_logits=False).item() == pytest.approx(-math.log(1e-4), rel=1e-3)
    # class maps: foreground channels in [-1, 1] (class 1 at the top left, class 2 at the top right)
    two = torch.tensor([[[[1.0, -1.0], [-1.0, -1.0]], [[-1.0, 1.0], [-1.0, -1.0]]]])
    logits = torch.full((1, 3, 2, 2), -20.0)
    logits[0, 1, 0, 0] = logits[0, 2, 0, 1] = logits[0, 0, 1, 0] = logits[0, 0, 1, 1] = 20.0
    assert reconstruction_loss(logits, two, class_logits=True).item() < 1e-6
    assert reconstruction_loss(logits.flip(1), two, class_logits=True).item() > 10.0
    zero = torch.zeros(3, 5)
    assert kl_to_standard_normal(zero, zero).item() == 0.0
    # one unit of mean in each of 5 dimensions: KL = 5 * 1/2
    assert kl_to_standard_normal(torch.ones(3, 5), zero).item() == pytest.approx(2.5)
    # variance e instead of 1 in each of 5 dimensions: 5 * (e - 1 - 1) / 2
    assert kl_to_standard_normal(zero, torch.ones(3, 5)).item() == pytest.approx(2.5 * (math.e - 2))


def test_encoder_gives_a_gaussian_per_mask() -> None:
    encoder = DCGANEncoder(1, (32, 32), nz=7, base_filters=4, max_filters=16)
    mean, log_var = encoder(torch.randn(5, 1, 32, 32))
    assert mean.shape == log_var.shape == (5, 7)


def test_encoder_is_checkpointed_and_trained_with_the_generator(tmp_path: Path) -> None:
    params = tiny(steps=8, log_every=2, encoder={"reconstruction": 10.0})
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: DCGANMaskGenerator(params.model_copy(update={"steps": steps}), checks.INFO32),
        checks.disks(6), tmp_path, steps=8, every=4, resumed_seed=99,
    )
    checks.assert_same_state(straight, second, ("generator", "discriminator", "ema", "encoder"), ("opt_g",))
    checks.assert_same_losses(tmp_path)
    # the encoder's weights are the optimizer's second group: one step moves G and E together
    assert len(straight.opt_g.param_groups) == 2
    assert straight.opt_g.param_groups[1]["params"][0] is next(straight.encoder.parameters())


def test_reconstruction_term_teaches_generator_and_encoder_to_redraw_real_masks(tmp_path: Path) -> None:
    """Steps on the reconstruction term alone (no adversary): G, fed the encoder's codes, comes
    to redraw each of 8 distinct disks, which needs codes that tell the disks apart."""
    masks = checks.disks(8)
    real = masks * 2 - 1
    model = build(tiny(nz=16, base_filters=16, encoder={"reconstruction": 1.0, "kl": 0.001}))
    trainer = checks.cpu_trainer(tmp_path)
    encoder_before = [t.detach().clone() for t in model.encoder.parameters()]
    optimizer = torch.optim.Adam([*model.generator.parameters(), *model.encoder.parameters()], lr=2e-3, betas=(0.5, 0.999))
    for _ in range(150):
        loss = model._reconstruction_term(model.generator, real, trainer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters()))
    model.encoder.eval()
    model.generator.eval()
    with torch.no_grad():
        mean, _ = model.encoder(real)
        redrawn = model.generator(mean)
    wrong = ((redrawn > 0) != (real > 0)).float().mean().item()
    # drawing background everywhere gets the foreground share wrong (about 0.11); drawing the
    # one best average disk for all eight would still miss most of each disk
    assert wrong < 0.25 * masks.mean().item()


def test_encoder_refuses_a_spatial_latent() -> None:
    with pytest.raises(segsynth.UserError, match="spatial_latent"):
        build(tiny(spatial_latent=True, encoder={"reconstruction": 1.0}))


# ---------------------------------------------------------------------------- against collapse
def test_disc_filters_narrows_the_discriminator_only() -> None:
    plain = build(tiny(base_filters=8))
    narrow = build(tiny(base_filters=8, disc_filters=4))
    assert narrow.discriminator.net[0].out_channels == 4 and plain.discriminator.net[0].out_channels == 8
    assert sum(t.numel() for t in narrow.discriminator.parameters()) < sum(
        t.numel() for t in plain.discriminator.parameters()) / 3
    assert all(torch.equal(a, b) for a, b in zip(plain.generator.parameters(), narrow.generator.parameters()))


def test_minibatch_std_adds_one_input_to_the_last_layer() -> None:
    plain = DCGANDiscriminator(1, (32, 32), 4, 32)
    with_std = DCGANDiscriminator(1, (32, 32), 4, 32, minibatch_std=True)
    last_plain, last_std = plain.net[-1], with_std.net[-1]
    assert last_std.in_channels == last_plain.in_channels + 1
    assert with_std(torch.randn(4, 1, 32, 32)).shape == (4,)


def test_patch_discriminator_judges_every_patch_of_the_mask() -> None:
    torch.manual_seed(0)
    patch = DCGANDiscriminator(1, (64, 64), 4, 32, patch_depth=2)
    whole = DCGANDiscriminator(1, (64, 64), 4, 32)
    assert patch.num_down_blocks == 2 and whole.num_down_blocks == 4
    masks = torch.randn(3, 1, 64, 64)
    assert patch(masks).shape == (3 * 16 * 16,)  # one logit per position of the 16x16 map
    assert whole(masks).shape == (3,)
    # each logit sees a patch: changing one corner leaves the logits of the far corner alone
    # (in eval mode: training-mode batch norm couples every position through its statistics)
    patch.eval()
    changed = masks.clone()
    changed[:, :, :16, :16] = -1.0
    before, after = patch(masks).view(3, 16, 16), patch(changed).view(3, 16, 16)
    assert not torch.equal(before[:, :4, :4], after[:, :4, :4])
    assert torch.equal(before[:, 8:, 8:], after[:, 8:, 8:])


@pytest.mark.parametrize("depth", [-1, 4])
def test_patch_depth_must_leave_a_map(depth: int) -> None:
    with pytest.raises(segsynth.UserError, match="patch_depth must be 0 .* between 1 and 3 for 64x64"):
        DCGANDiscriminator(1, (64, 64), 4, 32, patch_depth=depth)


def test_min_piece_pixels_clears_speckle_from_samples() -> None:
    model = build(tiny(min_piece_pixels=5, threshold=0.0))
    keep = build(tiny(min_piece_pixels=0, threshold=0.0))
    cleaned = model.sample(6, checks.seeded(1))
    raw = keep.sample(6, checks.seeded(1))
    sizes = checks.piece_sizes(cleaned)
    assert all(s >= 5 for s in sizes)
    assert cleaned.sum() <= raw.sum() and torch.all(cleaned <= raw)


def test_spatial_latent_draws_a_4x4_map_of_codes() -> None:
    model = build(tiny(spatial_latent=True))
    assert model.code_shape == (8, 4, 4)
    first = model.generator.net[0]
    assert isinstance(first, nn.Conv2d) and first.kernel_size == (3, 3)
    masks = model.sample(3, checks.seeded(0))
    assert masks.shape == (3, 1, 32, 32) and set(masks.unique().tolist()) <= {0.0, 1.0}
    assert build(tiny()).code_shape == (8, 1, 1)
