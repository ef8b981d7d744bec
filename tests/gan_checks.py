"""Checks shared by the tests of the first-party GANs: dcgan / wgan_gp and pix2pix / spade.

The two mask generators and the two translators make the same promises (registration, seeded
binary sampling, rendering that leaves the global RNG alone, checkpoints that reload the same
outputs, resume equal to an uninterrupted run ...). Each promise is written once here and the
test files of both plugins call it with their own component, so the pair cannot drift apart.
Everything runs on tiny networks on the CPU.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segsynth import DatasetInfo, PairSet, Trainer, TrainerSettings, UserError

#: The 32 px single-channel data set most mask-generator tests use.
INFO32 = DatasetInfo(image_channels=1, mask_channels=1, size=(32, 32))

#: Recipe mistakes both mask generators must reject (the fields of ``GanGeneratorParams`` and the
#: ones each declares alike), as ``(params, part of the message)``.
GENERATOR_PARAM_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"lr": 0.0}, "lr must be a positive"),
    ({"ema_decay": 1.0}, "ema_decay must be in"),
    ({"threshold": 1.5}, "threshold"),
    ({"threshold": -1.0}, "threshold"),
    ({"betas": (0.5, 1.0)}, "betas"),
    ({"betas": (0.0, 1.0)}, "betas"),
    ({"base_filters": 64, "max_filters": 32}, "max_filters"),
    ({"steps": 0}, "steps"),
    ({"augment": {"translation": 0, "cutout": 0, "flip": False}}, "augment.enabled"),
]

#: Recipe mistakes both translators must reject, as ``(params, part of the message)``.
TRANSLATOR_PARAM_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"steps": 0}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"lambda_l1": -1.0}, "lambda_l1"),
    ({"lambda_l1": -0.5}, "lambda_l1"),
    ({"norm": "group"}, "norm"),
    ({"disc_layers": 0}, "disc_layers"),
    ({"betas": (1.0, 0.999)}, "betas"),
    ({"betas": (0.5, 1.0)}, "betas"),
    ({"augment": {"translation": 0.5}}, "translation"),
    ({"augment": {"enabled": True, "translation": 0, "cutout": 0, "flip": False}}, "augment.enabled"),
    # the old list spelling of augment is still checked
    ({"augment": ["rotate"]}, "augment"),
    ({"augment": ["cutout", "cutout"]}, "repeated: cutout"),
    ({"augment": ["flip", "flip"]}, "repeated: flip"),
]


# ---------------------------------------------------------------------------- fixtures, data
def params_maker(model: type, **base: Any) -> Callable[..., Any]:
    """``tiny(**changes)``: a ``model`` of a test file's small settings, ``changes`` applied on top."""

    def make(**changes: Any) -> Any:
        return model(**{**base, **changes})

    return make


def seeded_builder(cls: type) -> Callable[..., Any]:
    """``build(params, info=INFO32, seed=0)``: ``cls`` constructed under ``torch.manual_seed(seed)``,
    because weight init draws from the global RNG."""

    def build(params: Any, info: DatasetInfo = INFO32, seed: int = 0) -> Any:
        torch.manual_seed(seed)
        return cls(params, info)

    return build


#: The small settings both mask generators' tests start from: a few 4-filter steps on the CPU.
TINY_GENERATOR: dict[str, Any] = {
    "nz": 8, "base_filters": 4, "max_filters": 32, "batch_size": 4, "steps": 4, "log_every": 1,
    "bn_stat_samples": 16, "sample_batch_size": 8,
}


def generator_kit(cls: type, **settings: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(tiny, build)`` of a mask generator's tests: ``params_maker`` over ``TINY_GENERATOR`` plus
    the model's own ``settings``, and ``seeded_builder(cls)``."""
    return params_maker(cls.Params, **{**TINY_GENERATOR, **settings}), seeded_builder(cls)


def cpu_trainer(
    path: Path, every: int = 0, resume: bool = False, seed: int = 0, precision: str = "fp32",
    channels_last: bool | str = "auto",
) -> Trainer:
    """A quiet CPU trainer in ``path``, checkpointing every ``every`` steps (0: only the final one).

    fp32 unless asked: ``precision: auto`` is bf16 on a CPU with native bf16 and fp32 on others,
    and these tests compare with numbers recorded once, which must not depend on the CPU.
    """
    settings = TrainerSettings(device="cpu", progress=False, checkpoint_every=every, seed=seed,
                               precision=precision, channels_last=channels_last)
    return Trainer(path, settings, resume=resume)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def piece_sizes(masks: torch.Tensor) -> list[int]:
    """Pixel counts of every 8-connected piece in every channel of 0/1 ``masks`` (N, C, H, W)."""
    import numpy as np
    from scipy import ndimage

    return [int(size) for mask in masks for plane in mask
            for size in np.bincount(ndimage.label(plane.numpy() > 0.5, np.ones((3, 3)))[0].ravel())[1:]]


def read_losses(path: Path) -> list[dict[str, str]]:
    """The rows of the loss CSV a trainer wrote in ``path``."""
    with (path / "losses.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def finite_losses(path: Path, rows: int) -> list[dict[str, str]]:
    """The loss CSV in ``path``, checked to hold ``rows`` rows of finite numbers only."""
    logged = read_losses(path)
    assert len(logged) == rows
    assert all(math.isfinite(float(v)) for r in logged for v in r.values())
    return logged


def disks(n: int, size: int = 32, radius: int = 6, seed: int = 0) -> torch.Tensor:
    """``n`` binary masks, each one filled disk at a random place: a simple shape to learn."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.zeros(n, 1, size, size)
    for i in range(n):
        cy, cx = torch.randint(radius + 2, size - radius - 2, (2,), generator=g).tolist()
        out[i, 0] = (((ys - cy) ** 2 + (xs - cx) ** 2) <= radius * radius).float()
    return out


def bar_pairs(n: int, size: int, seed: int = 0, channels: int = 1) -> PairSet:
    """Masks of random vertical/horizontal bars; images a smooth function of the mask plus a ramp.

    The image is fully determined by the mask, so a translator can learn the mapping.
    """
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(3):
            c = int(torch.randint(2, size - 4, (1,), generator=g))
            if torch.rand(1, generator=g) < 0.5:
                masks[i, 0, :, c : c + 3] = 1.0
            else:
                masks[i, 0, c : c + 3, :] = 1.0
    ramp = torch.linspace(0.1, 0.3, size).view(1, 1, 1, size)
    blurred = F.avg_pool2d(F.pad(masks, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    images = (ramp + 0.6 * blurred).clamp(0, 1).repeat(1, channels, 1, 1)
    return PairSet(images=images, masks=masks)


# ---------------------------------------------------------------------------- registration
def check_registration(entry_name: str, hook: str, cls: type, kind: type, name: str, *models: type) -> None:
    """The ``segsynth`` entry point ``entry_name`` is the package's ``plugin`` module, whose
    ``segsynth_register_components`` registers exactly ``cls`` among its classes of ``kind``
    (``hook`` names the API-1 per-kind hook, no longer called), a ``kind`` called ``name`` with a
    one-line description, and every
    field of ``cls.Params`` and of the nested ``models`` is documented (``synth plugins show``)."""
    (entry,) = [e for e in entry_points(group="segsynth") if e.name == entry_name]
    assert entry.value == f"{cls.__module__.split('.')[0]}.plugin"
    assert [c for c in entry.load().segsynth_register_components() if c.kind == kind.kind] == [cls]
    assert issubclass(cls, kind)
    assert cls.name == name
    assert cls.description and "\n" not in cls.description
    for model in (cls.Params, *models):
        for field_name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{field_name} has no description"


def check_rejected(model: type, params: dict[str, Any], message: str) -> None:
    """``model(**params)`` fails validation with ``message`` in the error."""
    with pytest.raises(ValueError, match=message):
        model(**params)


# ---------------------------------------------------------------------------- mask generators
def check_generator_and_critic(G: nn.Module, D: nn.Module, nz: int, channels: int, size: int) -> None:
    """G maps ``(N, nz)`` codes (or ``(N, nz, 1, 1)``) to tanh masks that D scores one number each,
    and no layer of either is wider than the 16-channel cap the caller built them with."""
    z = torch.randn(3, nz)
    out = G(z)
    assert out.shape == (3, channels, size, size)
    assert out.min() >= -1.0 and out.max() <= 1.0  # tanh range
    assert torch.equal(G(z[:, :, None, None]), out)  # (N, nz) and (N, nz, 1, 1) agree
    assert D(out).shape == (3,)
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    assert max(m.out_channels for m in [*G.modules(), *D.modules()] if isinstance(m, convs)) <= 16


def tiny_networks(generator: type, discriminator: type, size: int, channels: int) -> tuple[nn.Module, nn.Module]:
    """A mask GAN's generator (``nz`` 8) and discriminator for ``channels`` x ``size`` masks,
    4 filters wide and capped at 16, built under seed 0."""
    torch.manual_seed(0)
    G = generator(nz=8, out_channels=channels, size=(size, size), base_filters=4, max_filters=16)
    D = discriminator(channels, (size, size), base_filters=4, max_filters=16)
    return G, D


def check_network_depth(G: Any, D: Any, size: int, channels: int, depth_of: Callable[[tuple[int, int]], int]) -> int:
    """The nets of ``tiny_networks(..., size, channels)`` have one up/down block per halving of
    the mask side down to 4 (``depth_of`` agrees) and pass ``check_generator_and_critic``;
    returns the depth."""
    depth = int(math.log2(size)) - 2
    assert G.depth == D.depth == depth == depth_of((size, size))
    check_generator_and_critic(G, D, nz=8, channels=channels, size=size)
    return depth


def check_unsupported_size(cls: type, params: Any, size: tuple[int, int]) -> None:
    """A size the networks cannot be built for is a user error naming the size and the range."""
    info = DatasetInfo(image_channels=1, mask_channels=1, size=size)
    with pytest.raises(UserError, match=r"32 and 1024") as caught:
        cls(params, info)
    assert f"{size[0]}x{size[1]}" in str(caught.value)


def check_sampling(build: Callable[..., Any], tiny: Callable[..., Any], tmp_path: Path) -> None:
    """Samples are binary float masks of the data set's shape, reproducible from the given
    generator alone (the global RNG is untouched) and leave the train/eval mode as it was."""
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
    assert model.generator.training


def check_threshold_on_tanh_scale(build: Callable[..., Any], tiny: Callable[..., Any], tmp_path: Path) -> None:
    """``threshold`` cuts the tanh output: near -1 all pixels are foreground, near +1 none."""
    low = build(tiny(threshold=-0.99)).sample(8, seeded(0)).mean().item()
    high = build(tiny(threshold=0.99)).sample(8, seeded(0)).mean().item()
    assert low > 0.99 and high < 0.01  # an untrained tanh output stays near 0


def check_fit_rejects_wrong_masks(build: Callable[..., Any], tiny: Callable[..., Any], tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"\(N, 1, 32, 32\)"):
        build(tiny()).fit(torch.zeros(4, 1, 16, 16), cpu_trainer(tmp_path))


def check_final_checkpoint_reloads_sampler(
    build: Callable[..., Any], tiny: Callable[..., Any], tmp_path: Path
) -> None:
    """A differently initialised model samples exactly like the trained one once it loads
    the final checkpoint (so later commands can sample a finished run), also when it was trained
    on the CPU fast path (bf16, channels-last) and is loaded by a plain trainer."""
    model = build(tiny(steps=3))
    model.fit(disks(4), cpu_trainer(tmp_path, precision="bf16", channels_last=True))
    expected = model.sample(6, seeded(7))
    fresh = build(tiny(steps=3), seed=42)
    assert not torch.equal(fresh.sample(6, seeded(7)), expected)  # differs before loading
    assert cpu_trainer(tmp_path).load_final(fresh.state())
    assert torch.equal(fresh.sample(6, seeded(7)), expected)


def check_variant_trains(model: Any, critic: str, steps: int, tmp_path: Path) -> list[dict[str, str]]:
    """A short ``fit`` of a parameter variant moves the critic, logs ``steps`` rows of finite
    losses (returned), keeps a weight average exactly when ``ema_decay > 0``, samples binary
    masks and writes the final checkpoint."""
    net = getattr(model, critic)
    before = [t.detach().clone() for t in net.parameters()]
    model.fit(disks(4), cpu_trainer(tmp_path))
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    rows = finite_losses(tmp_path, steps)
    assert (model.ema is None) == (model.params.ema_decay == 0)
    assert set(torch.unique(model.sample(3, seeded(0))).tolist()) <= {0.0, 1.0}
    assert (tmp_path / "checkpoints" / "final.pt").exists()
    return rows


def learn_disks(model: Any, tmp_path: Path) -> tuple[float, float, float]:
    """Fit ``model`` on eight disk masks; return the real foreground fraction and the sampled
    one before and after training (256 samples of seed 123), checking that the untrained model
    is far off (noise around half foreground)."""
    masks = disks(8)
    real = masks.mean().item()  # about 0.11
    before = model.sample(256, seeded(123)).mean().item()
    model.fit(masks, cpu_trainer(tmp_path))
    after = model.sample(256, seeded(123)).mean().item()
    assert abs(before - real) > 0.2
    return real, before, after


#: The promises of a mask generator that need nothing but ``(build, tiny, tmp_path)``; each test
#: file runs them all on its own component (``test_shared_checks``).
MASK_GENERATOR_CHECKS: list[Callable[[Callable[..., Any], Callable[..., Any], Path], None]] = [
    check_sampling,
    check_threshold_on_tanh_scale,
    check_fit_rejects_wrong_masks,
    check_final_checkpoint_reloads_sampler,
]


# ---------------------------------------------------------------------------- resume
def fit_straight_and_resumed(
    make: Callable[[int], Any], data: Any, tmp_path: Path, steps: int, every: int, resumed_seed: int
) -> tuple[Any, Any]:
    """Train ``make(steps)`` straight through in ``straight/``; in ``resumed/`` train
    ``make(every)``, then a ``make(steps)`` built under another global seed that resumes from
    its checkpoint. Returns the straight and the resumed model."""
    torch.manual_seed(0)
    straight = make(steps)
    straight.fit(data, cpu_trainer(tmp_path / "straight", every=every))
    torch.manual_seed(0)
    first = make(every)
    first.fit(data, cpu_trainer(tmp_path / "resumed", every=every))
    torch.manual_seed(resumed_seed)  # different init: everything must come from the checkpoint
    second = make(steps)
    second.fit(data, cpu_trainer(tmp_path / "resumed", every=every, resume=True))
    return straight, second


def assert_same_state(a: Any, b: Any, modules: Sequence[str], optimizers: Sequence[str] = ()) -> None:
    """Every tensor of the named modules, and Adam's first moments of the named optimizers, agree."""
    for name in modules:
        sa, sb = a.state()[name].state_dict(), b.state()[name].state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key} differs after resume"
    for name in optimizers:
        ma = a.state()[name].state_dict()["state"][0]["exp_avg"]
        mb = b.state()[name].state_dict()["state"][0]["exp_avg"]
        assert torch.equal(ma, mb), name


def assert_same_losses(tmp_path: Path) -> None:
    """The straight and the resumed run of ``fit_straight_and_resumed`` logged the same CSV."""
    assert (tmp_path / "straight/losses.csv").read_text() == (tmp_path / "resumed/losses.csv").read_text()


# ---------------------------------------------------------------------------- translators
def check_translate_is_seeded(t: Any, masks: torch.Tensor) -> torch.Tensor:
    """Rendering with noise depends on the given generator only: same seed, same images; another
    seed, other images; the global RNG untouched; the generator's stream advances. Returns the
    images of seed 7."""
    rng_before = torch.get_rng_state()
    a = t.translate(masks, seeded(7))
    b = t.translate(masks, seeded(7))
    c = t.translate(masks, seeded(8))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global stream is untouched
    assert a.shape == (len(masks), 1, 32, 32)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3
    g = seeded(7)
    assert not torch.equal(t.translate(masks, g), t.translate(masks, g))  # the stream advances
    return a


def check_translate_rejects_wrong_masks(t: Any) -> None:
    """Masks of the wrong size or channel count are user errors; no masks render no images."""
    with pytest.raises(UserError, match=r"\(N, 1, 32, 32\)"):
        t.translate(torch.zeros(2, 1, 64, 64), torch.Generator())
    with pytest.raises(UserError):
        t.translate(torch.zeros(2, 2, 32, 32), torch.Generator())
    assert t.translate(torch.zeros(0, 1, 32, 32), torch.Generator()).shape == (0, 1, 32, 32)


def check_generator_step_leaves_discriminator(t: Any, masks: torch.Tensor, images: torch.Tensor, tmp_path: Path) -> None:
    """After one training step no gradient is left on D (the G step must not leak into it)."""
    t._train_step(masks, images, cpu_trainer(tmp_path))
    assert all(p.grad is None for p in t.discriminator.parameters())
    assert all(p.requires_grad for p in t.discriminator.parameters())


def check_learning_rates_decay(t: Any, tmp_path: Path, lr_g: float, lr_d: float) -> None:
    """``t`` (6 steps, decay from half-way) ends at a quarter of its learning rates."""
    t.fit(bar_pairs(2, 32), cpu_trainer(tmp_path))
    # steps 4..6 decay: at the last step the factor is 1 - 3 / 4
    assert t.opt_g.param_groups[0]["lr"] == pytest.approx(lr_g * 0.25)
    assert t.opt_d.param_groups[0]["lr"] == pytest.approx(lr_d * 0.25)


def check_final_checkpoint_reloads_translator(make: Callable[[], Any], tmp_path: Path) -> None:
    """A differently initialised translator renders exactly like the trained one once it loads
    the final checkpoint: trained on the CPU fast path (bf16, channels-last), loaded by a plain
    trainer, as ``synth sample`` loads a run's checkpoints."""
    pairs = bar_pairs(3, 32)
    t = make()
    t.fit(pairs, cpu_trainer(tmp_path, precision="bf16", channels_last=True))
    torch.manual_seed(42)
    fresh = make()
    a = t.translate(pairs.masks, seeded(3))
    assert not torch.equal(a, fresh.translate(pairs.masks, seeded(3)))
    assert cpu_trainer(tmp_path).load_final(fresh.state())
    assert torch.equal(a, fresh.translate(pairs.masks, seeded(3)))


def check_translator_variant_trains(t: Any, steps: int, tmp_path: Path) -> None:
    """A short ``fit`` of a 3-channel parameter variant logs ``steps`` rows of finite losses,
    finishes its trainer and renders images of the data set's shape."""
    trainer = cpu_trainer(tmp_path)
    t.fit(bar_pairs(3, 32, channels=3), trainer)
    finite_losses(tmp_path, steps)
    assert trainer.is_finished()
    assert t.translate(bar_pairs(2, 32).masks, seeded(0)).shape == (2, 3, 32, 32)


def check_old_translator_spellings(params: type, betas: tuple[float, float]) -> None:
    """``beta1``/``beta2`` and the list spelling of ``augment`` still validate, to the new
    spelling, with a ``DeprecationWarning`` that names it; writing both spellings is an error."""
    with pytest.warns(DeprecationWarning, match=r"beta1 -> betas: \[0.3, " + str(betas[1])):
        assert params(beta1=0.3).betas == (0.3, betas[1])
    with pytest.warns(DeprecationWarning, match=r"beta1/beta2 -> betas: \[0.1, 0.2\]"):
        assert params(beta1=0.1, beta2=0.2).betas == (0.1, 0.2)
    check_rejected(params, {"beta1": 0.1, "betas": (0.1, 0.2)}, "write only betas")
    with pytest.warns(DeprecationWarning, match=r"augment: true -> augment: \{enabled: true"):
        assert params(augment=True).augment == params(augment={"enabled": True}).augment
    with pytest.warns(DeprecationWarning, match="augment: false"):
        assert params(augment=False).augment == params().augment
    with pytest.warns(DeprecationWarning, match="order translation, cutout, flip"):
        cut = params(augment="flip, cutout").augment
    assert (cut.enabled, cut.translation, cut.cutout, cut.flip) == (True, 0.0, 0.5, True)
