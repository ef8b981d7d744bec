"""Tests of the Stage-I ``wgan_gp`` mask generator plugin (segsynth_wgan).

Everything runs on tiny networks (base_filters 4-8) and 32 px masks on the CPU; the one
learning test trains 150 generator steps (750 critic steps) of an 8-filter model.
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
from segsynth_wgan.augment import AugmentParams, MaskAugment
from segsynth_wgan.component import WGANGPMaskGenerator
from segsynth_wgan.losses import critic_loss, generator_loss, gradient_penalty, interpolate
from segsynth_wgan.networks import Critic, Generator, wgan_depth

Params = WGANGPMaskGenerator.Params


# ---------------------------------------------------------------------------- helpers
tiny, build = checks.generator_kit(WGANGPMaskGenerator, n_critic=2)


# ---------------------------------------------------------------------------- registration
def test_plugin_registers_wgan_gp_through_entry_point() -> None:
    checks.check_registration(
        "wgan", "segsynth_register_mask_generators", WGANGPMaskGenerator, segsynth.MaskGenerator,
        "wgan_gp", AugmentParams,
    )


# ---------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 2])
def test_network_shapes_and_depth(size: int, channels: int) -> None:
    G, C = checks.tiny_networks(Generator, Critic, size, channels)
    depth = checks.check_network_depth(G, C, size, channels, wgan_depth)
    assert sum(isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) for m in G.modules()) == depth
    assert sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in C.modules()) == depth


@pytest.mark.parametrize("base_filters", [4, 32])
def test_generator_outputs_start_spread_around_the_threshold(base_filters: int) -> None:
    """Binarised fakes need pre-tanh outputs that are not all within a hair of 0 (see init_output_layer)."""
    torch.manual_seed(0)
    G = Generator(nz=16, out_channels=1, size=(64, 64), base_filters=base_filters)
    pre_tanh = G.net[:-1](torch.randn(32, 16, 1, 1))
    assert 0.7 < pre_tanh.std().item() < 1.4
    conv = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)][0]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.1)  # DCGAN init elsewhere


def test_critic_has_no_batch_norm_and_layer_norm_is_per_sample() -> None:
    torch.manual_seed(0)
    C = Critic(1, (32, 32), base_filters=4, norm="layer")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in C.modules())
    assert sum(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in C.modules()) == C.depth - 1
    x = torch.randn(5, 1, 32, 32)
    # a sample's score does not depend on the rest of its batch (what the per-sample GP needs)
    assert torch.allclose(C(x)[:2], C(x[:2]), atol=1e-6)
    bare = Critic(1, (32, 32), base_filters=4, norm="none")
    assert not any(isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)) for m in bare.modules())


@pytest.mark.parametrize("size", [(48, 48), (64, 32), (16, 16), (2048, 2048)])
def test_unsupported_size_raises_user_error(size: tuple[int, int]) -> None:
    checks.check_unsupported_size(WGANGPMaskGenerator, tiny(), size)


# ---------------------------------------------------------------------------- params
def test_params_defaults_follow_the_paper() -> None:
    p = Params()
    assert (p.gp_lambda, p.n_critic, p.lr, p.betas) == (10.0, 5, 1e-4, (0.0, 0.9))
    assert (p.nz, p.base_filters, p.max_filters, p.critic_norm) == (128, 64, 512, "layer")
    assert (p.ema_decay, p.threshold, p.straight_through, p.steps, p.batch_size) == (0.999, 0.0, True, 2000, 32)
    assert p.augment.enabled and p.augment.flip
    model = build(tiny())
    assert model.opt_c.param_groups[0]["betas"] == (0.0, 0.9)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        *checks.GENERATOR_PARAM_ERRORS,
        ({"gp_lambda": -1.0}, "gp_lambda"),
        ({"n_critic": 0}, "n_critic"),
        ({"critic_norm": "batch"}, "critic_norm"),
        ({"augment": {"translation": 0.5}}, "translation"),
        ({"n_critics": 3}, "n_critics"),
    ],
)
def test_params_validation_errors(changes: dict[str, object], message: str) -> None:
    checks.check_rejected(Params, changes, message)


# ---------------------------------------------------------------------------- losses
def _linear_critic(w: torch.Tensor):  # type: ignore[no-untyped-def]
    """C(x) = <w, x>: its input gradient is ``w`` everywhere."""
    return lambda x: (x * w).sum(dim=(1, 2, 3))


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    w = torch.randn(1, 1, 4, 4)
    w = w / w.norm()
    points = torch.randn(6, 1, 4, 4)
    assert gradient_penalty(_linear_critic(w), points).item() == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(_linear_critic(3 * w), points).item() == pytest.approx(4.0, rel=1e-5)
    assert gradient_penalty(_linear_critic(0.5 * w), points).item() == pytest.approx(0.25, rel=1e-5)
    # differentiable in the critic's weights: d/dv (||v|| - 1)^2 = 2 (||v|| - 1) v / ||v||,
    # which is v itself at ||v|| = 2
    v = (2 * w).requires_grad_(True)
    gradient_penalty(_linear_critic(v), points).backward()
    assert torch.allclose(v.grad, v.detach(), atol=1e-6)
    # a critic with zero gradient is penalised by exactly 1 and its penalty gradient is finite
    flat = torch.zeros(1, 1, 4, 4, requires_grad=True)
    gp = gradient_penalty(_linear_critic(flat), points)
    gp.backward()
    assert gp.item() == pytest.approx(1.0, abs=1e-5) and torch.isfinite(flat.grad).all()


def test_gradient_penalty_on_a_real_critic_is_positive() -> None:
    torch.manual_seed(1)
    critic = Critic(1, (32, 32), base_filters=4)
    gp = gradient_penalty(critic, torch.randn(4, 1, 32, 32))
    assert gp.item() > 0.01
    gp.backward()
    # every weight shapes the input gradient (the score's final bias alone cannot)
    weights = [p for name, p in critic.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_interpolates_lie_on_the_segments_between_pairs() -> None:
    torch.manual_seed(2)
    real, fake = torch.randn(8, 2, 5, 5), torch.randn(8, 2, 5, 5)
    x = interpolate(real, fake)
    eps = (x - fake) / (real - fake)
    per_sample = eps.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-4)
    assert (per_sample >= -1e-4).all() and (per_sample <= 1 + 1e-4).all()
    assert per_sample[:, 0].std() > 0.1  # one eps per sample, not one for the batch
    assert not x.requires_grad


def test_wasserstein_losses() -> None:
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([-1.0, 0.0])
    assert critic_loss(real, fake).item() == pytest.approx(-0.5 - 3.0)
    assert generator_loss(fake).item() == pytest.approx(0.5)


# ---------------------------------------------------------------------------- augmentation
def test_augmentation_keeps_masks_binary_and_passes_gradients() -> None:
    torch.manual_seed(0)
    aug = MaskAugment(AugmentParams())
    binary = torch.where(torch.rand(16, 2, 32, 32) > 0.7, 1.0, -1.0).requires_grad_(True)
    y = aug(binary)
    assert y.shape == binary.shape
    assert set(torch.unique(y).tolist()) <= {-1.0, 0.0, 1.0}  # cutout's neutral 0 only
    assert (y == 0.0).flatten(1).sum(1).eq(2 * 16 * 16).all()  # a 16x16 cut in both channels
    (y * torch.randn_like(y)).sum().backward()
    assert binary.grad is not None and binary.grad.abs().sum() > 0
    off = MaskAugment(AugmentParams(enabled=False))
    assert off(binary) is binary


def test_translation_moves_by_whole_pixels_and_fills_with_background() -> None:
    torch.manual_seed(2)
    aug = MaskAugment(AugmentParams(translation=0.125, cutout=0, flip=False))
    x = -torch.ones(32, 1, 32, 32)
    x[:, 0, 16, 16] = 1.0
    y = aug(x)
    shifts = set()
    for i in range(32):
        (pos,) = (y[i, 0] == 1.0).nonzero().tolist()
        assert abs(pos[0] - 16) <= 4 and abs(pos[1] - 16) <= 4  # 0.125 * 32
        shifts.add((pos[0] - 16, pos[1] - 16))
    assert len(shifts) > 5
    assert set(torch.unique(y).tolist()) == {-1.0, 1.0}


# ---------------------------------------------------------------------------- sampling, training
@pytest.mark.parametrize("check", checks.MASK_GENERATOR_CHECKS, ids=lambda check: check.__name__)
def test_shared_checks(check: Callable[..., None], tmp_path: Path) -> None:
    check(build, tiny, tmp_path)


def test_learns_the_foreground_fraction(tmp_path: Path) -> None:
    # lr 3e-4 rather than the paper's 1e-4 so that 150 steps (750 critic steps) suffice
    model = build(tiny(nz=16, base_filters=8, batch_size=16, steps=150, n_critic=5, lr=3e-4,
                       log_every=30, bn_stat_samples=128, sample_batch_size=64))
    real, before, after = checks.learn_disks(model, tmp_path)
    # measured over run seeds 0-5: |after - real| between 0.007 and 0.048 (0.040 for seed 0)
    assert abs(after - real) < 0.06, (before, after, real)
    assert abs(after - real) < 0.15 * abs(before - real)
    rows = checks.read_losses(tmp_path)
    assert [int(r["step"]) for r in rows] == [30, 60, 90, 120, 150]
    assert set(rows[0]) == {"step", "w_dist", "gp", "g_loss"}
    assert all(math.isfinite(float(v)) for r in rows for v in r.values())
    assert all(float(r["w_dist"]) > 0 for r in rows)  # the critic tells reals from fakes
    assert all(float(r["gp"]) < 1.0 for r in rows)  # and is kept near 1-Lipschitz


def test_critic_runs_n_critic_updates_per_generator_update(tmp_path: Path) -> None:
    model = build(tiny(n_critic=3, ema_decay=0.0))
    model.fit(checks.disks(4), checks.cpu_trainer(tmp_path))  # 4 steps
    assert model.opt_c.state_dict()["state"][0]["step"].item() == 12
    assert model.opt_g.state_dict()["state"][0]["step"].item() == 4


def test_initial_weights_depend_on_the_run_seed_only(tmp_path: Path) -> None:
    models = [build(tiny(steps=1), seed=s) for s in (1, 2)]
    for i, m in enumerate(models):
        m.fit(checks.disks(4), checks.cpu_trainer(tmp_path / str(i)))
    for name in ("generator", "critic", "ema"):
        a, b = models[0].state()[name].state_dict(), models[1].state()[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    params = tiny(steps=6, log_every=1)
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: WGANGPMaskGenerator(params.model_copy(update={"steps": steps}), checks.INFO32),
        checks.disks(6), tmp_path, steps=6, every=3, resumed_seed=99,
    )
    checks.assert_same_state(straight, second, ("generator", "critic", "ema"), ("opt_g", "opt_c"))
    checks.assert_same_losses(tmp_path)
    assert torch.equal(straight.sample(6, checks.seeded(5)), second.sample(6, checks.seeded(5)))


@pytest.mark.parametrize(
    "changes",
    [
        {"critic_norm": "none"},
        {"straight_through": False},
        {"ema_decay": 0.0},
        {"augment": {"enabled": False}},
        {"gp_lambda": 0.0, "n_critic": 1},
    ],
    ids=["no_norm", "soft_fakes", "no_ema", "no_augment", "no_gp"],
)
def test_variants_train_a_few_steps(tmp_path: Path, changes: dict[str, object]) -> None:
    checks.check_variant_trains(build(tiny(steps=2, **changes)), "critic", 2, tmp_path)
