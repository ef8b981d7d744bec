"""Tests of the Stage-I ``dcgan`` mask generator plugin (segsynth_dcgan).

Everything runs on tiny networks (base_filters 4-8) and 32 px masks on the CPU, so the whole
file stays within seconds; the one learning test trains 300 steps of an 8-filter model.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

import segsynth
from segsynth import DatasetInfo, Trainer, TrainerSettings, UserError
from segsynth_dcgan.augment import AugmentParams, DiffAugment
from segsynth_dcgan.component import DCGANMaskGenerator
from segsynth_dcgan.losses import discriminator_loss, generator_loss, r1_penalty
from segsynth_dcgan.networks import DCGANDiscriminator, DCGANGenerator, dcgan_depth

Params = DCGANMaskGenerator.Params
INFO32 = DatasetInfo(image_channels=1, mask_channels=1, size=(32, 32))


# ---------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: a second intra-op thread only adds barrier waits, and on a shared 2-core
    machine a descheduled OpenMP worker makes each op wait for its time slice (a 3 s test
    measured 125 s that way). Restored afterwards for whatever runs next in the session."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def disks(n: int, size: int = 32, radius: int = 6, seed: int = 0) -> torch.Tensor:
    """``n`` binary masks, each one filled disk at a random place: a simple shape to learn."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.zeros(n, 1, size, size)
    for i in range(n):
        cy, cx = torch.randint(radius + 2, size - radius - 2, (2,), generator=g).tolist()
        out[i, 0] = (((ys - cy) ** 2 + (xs - cx) ** 2) <= radius * radius).float()
    return out


def tiny(**changes: object) -> Params:
    base: dict[str, object] = dict(
        nz=8, base_filters=4, max_filters=32, batch_size=4, steps=4, log_every=1,
        bn_stat_samples=16, sample_batch_size=8,
    )
    base.update(changes)
    return Params(**base)


def make_trainer(path: Path, every: int = 0, resume: bool = False, seed: int = 0) -> Trainer:
    settings = TrainerSettings(device="cpu", progress=False, checkpoint_every=every, seed=seed)
    return Trainer(path, settings, resume=resume)


def build(params: Params, info: DatasetInfo = INFO32, seed: int = 0) -> DCGANMaskGenerator:
    torch.manual_seed(seed)  # weight init draws from the global RNG
    return DCGANMaskGenerator(params, info)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def read_losses(path: Path) -> list[dict[str, str]]:
    import csv

    with (path / "losses.csv").open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- registration
def test_plugin_registers_dcgan_through_entry_point() -> None:
    (entry,) = [e for e in importlib.metadata.entry_points(group="segsynth") if e.name == "dcgan"]
    module = entry.load()
    classes = module.segsynth_register_mask_generators()
    assert classes == [DCGANMaskGenerator]
    cls = classes[0]
    assert issubclass(cls, segsynth.MaskGenerator)
    assert cls.name == "dcgan"
    assert cls.description and "\n" not in cls.description
    for field_name, field in Params.model_fields.items():
        assert field.description, f"Params.{field_name} has no description"
    for field_name, field in AugmentParams.model_fields.items():
        assert field.description, f"augment.{field_name} has no description"


# ---------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 2])
def test_network_shapes_and_depth(size: int, channels: int) -> None:
    torch.manual_seed(0)
    depth = int(math.log2(size)) - 2
    G = DCGANGenerator(nz=8, out_channels=channels, size=(size, size), base_filters=4, max_filters=16)
    D = DCGANDiscriminator(channels, (size, size), base_filters=4, max_filters=16)
    assert G.depth == D.depth == depth == dcgan_depth((size, size))
    assert G.num_up_blocks == depth
    assert D.num_down_blocks == depth
    z = torch.randn(3, 8)
    out = G(z)
    assert out.shape == (3, channels, size, size)
    assert out.min() >= -1.0 and out.max() <= 1.0  # tanh range
    assert torch.equal(G(z[:, :, None, None]), out)  # (N, nz) and (N, nz, 1, 1) agree
    logits = D(out)
    assert logits.shape == (3,)
    # channels double per halving of the size and are capped at max_filters
    first = G.net[0]
    assert isinstance(first, nn.ConvTranspose2d)
    assert first.out_channels == min(4 * 2 ** (depth - 1), 16)
    widths = [m.out_channels for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    widths += [m.out_channels for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert max(widths) <= 16


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
    info = DatasetInfo(image_channels=1, mask_channels=1, size=size)
    with pytest.raises(UserError, match=r"32 and 1024") as caught:
        DCGANMaskGenerator(tiny(), info)
    assert f"{size[0]}x{size[1]}" in str(caught.value)


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
        ({"lr": -1e-4}, "lr must be a positive"),
        ({"lr": 0.0}, "lr must be a positive"),
        ({"learning_rate": 1e-3}, "learning_rate"),
        ({"augment": {"rotation": 0.1}}, "rotation"),
        ({"ema_decay": 1.0}, "ema_decay must be in"),
        ({"threshold": 1.5}, "threshold"),
        ({"betas": (0.5, 1.0)}, "betas"),
        ({"base_filters": 64, "max_filters": 32}, "max_filters"),
        ({"loss": "wasserstein"}, "nonsaturating"),
        ({"steps": 0}, "steps"),
        ({"augment": {"translation": 0.6}}, "translation"),
        ({"augment": {"translation": 0, "cutout": 0, "flip": False}}, "augment.enabled"),
        ({"augment": {"target": 1.0}}, "target"),
    ],
)
def test_params_validation_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Params(**changes)


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


# ---------------------------------------------------------------------------- sampling
def test_sample_is_binary_shaped_and_deterministic() -> None:
    info = DatasetInfo(image_channels=3, mask_channels=2, size=(64, 64))
    model = build(tiny(sample_batch_size=2), info)
    rng_before = torch.get_rng_state()
    a = model.sample(5, seeded(11))
    assert torch.equal(torch.get_rng_state(), rng_before)  # only the given generator is used
    assert a.shape == (5, 2, 64, 64) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}
    assert torch.equal(a, model.sample(5, seeded(11)))
    assert not torch.equal(a, model.sample(5, seeded(12)))
    assert model.sample(0, seeded(1)).shape == (0, 2, 64, 64)
    assert model.generator.training  # sampling leaves the train/eval mode as it found it


def test_threshold_is_on_tanh_scale() -> None:
    low = build(tiny(threshold=-0.99)).sample(8, seeded(0)).mean().item()
    high = build(tiny(threshold=0.99)).sample(8, seeded(0)).mean().item()
    assert low > 0.99 and high < 0.01  # an untrained tanh output stays near 0


# ---------------------------------------------------------------------------- training
def test_fit_rejects_masks_of_the_wrong_shape(tmp_path: Path) -> None:
    model = build(tiny())
    with pytest.raises(UserError, match=r"\(N, 1, 32, 32\)"):
        model.fit(torch.zeros(4, 1, 16, 16), make_trainer(tmp_path))


def test_learns_the_foreground_fraction(tmp_path: Path) -> None:
    masks = disks(8)
    real = masks.mean().item()  # about 0.11
    model = build(tiny(nz=16, base_filters=8, batch_size=16, steps=300, log_every=50, bn_stat_samples=128))
    before = model.sample(256, seeded(123)).mean().item()
    model.fit(masks, make_trainer(tmp_path))
    after = model.sample(256, seeded(123)).mean().item()
    assert abs(before - real) > 0.2  # untrained: noise around half foreground
    assert abs(after - real) < 0.06  # 8 seeds measured: at most 0.039
    assert abs(after - real) < 0.2 * abs(before - real)
    rows = read_losses(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(50, 301, 50))
    assert all(math.isfinite(float(r["d_loss"])) and math.isfinite(float(r["g_loss"])) for r in rows)
    # D has not simply won: a memorising D would be near 0 (and G's loss climbing past 4)
    assert float(rows[-1]["d_loss"]) > 0.1


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    masks = disks(6)
    params = tiny(
        steps=8, r1_gamma=1.0, r1_every=3, log_every=2,
        augment={"adaptive": True, "interval": 2, "speed": 0.05},
    )
    half = params.model_copy(update={"steps": 4})

    straight = build(params)
    straight.fit(masks, make_trainer(tmp_path / "straight", every=4))

    first = build(half)
    first.fit(masks, make_trainer(tmp_path / "resumed", every=4))
    second = build(params, seed=99)  # different init: everything must come from the checkpoint
    second.fit(masks, make_trainer(tmp_path / "resumed", every=4, resume=True))

    assert straight.augment.p.item() > 0.0  # ADA moved, so its state is part of the comparison
    for name in ("generator", "discriminator", "ema", "augment"):
        a, b = straight.state()[name].state_dict(), second.state()[name].state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs after resume"
    assert straight.opt_g.state_dict()["state"][0]["exp_avg"].equal(
        second.opt_g.state_dict()["state"][0]["exp_avg"]
    )
    assert (tmp_path / "straight/losses.csv").read_text() == (tmp_path / "resumed/losses.csv").read_text()
    assert torch.equal(straight.sample(6, seeded(5)), second.sample(6, seeded(5)))


def test_final_checkpoint_reloads_identical_sampler(tmp_path: Path) -> None:
    model = build(tiny(steps=3))
    model.fit(disks(4), make_trainer(tmp_path))
    expected = model.sample(6, seeded(7))
    fresh = build(tiny(steps=3), seed=42)
    assert not torch.equal(fresh.sample(6, seeded(7)), expected)  # differs before loading
    assert make_trainer(tmp_path).load_final(fresh.state())
    assert torch.equal(fresh.sample(6, seeded(7)), expected)


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
    ],
    ids=["hinge", "spectral_norm", "r1", "hinge+sn+r1", "soft_fakes", "no_ema", "no_augment", "ada"],
)
def test_variants_train_a_few_steps(tmp_path: Path, changes: dict[str, object]) -> None:
    model = build(tiny(steps=3, **changes))
    before = [t.detach().clone() for t in model.discriminator.parameters()]
    model.fit(disks(4), make_trainer(tmp_path))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.discriminator.parameters()))
    rows = read_losses(tmp_path)
    assert len(rows) == 3
    for row in rows:
        assert all(math.isfinite(float(v)) for k, v in row.items() if k != "step")
    if model.params.augment.adaptive:
        assert {"p", "r_t"} <= rows[0].keys()
    assert (model.ema is None) == (model.params.ema_decay == 0)
    samples = model.sample(3, seeded(0))
    assert set(torch.unique(samples).tolist()) <= {0.0, 1.0}
    assert (tmp_path / "checkpoints" / "final.pt").exists()
