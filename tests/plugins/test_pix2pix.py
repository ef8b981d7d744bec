"""Tests of the pix2pix Stage-II translator: networks, params, learning, rendering, resuming."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segsynth import DatasetInfo, PairSet, Trainer, TrainerSettings, Translator, UserError
from segsynth_pix2pix import plugin
from segsynth_pix2pix.augment import PairAugment
from segsynth_pix2pix.discriminator import PatchDiscriminator, output_size, receptive_field
from segsynth_pix2pix.generator import UNetGenerator
from segsynth_pix2pix.translator import Pix2PixTranslator

P = Pix2PixTranslator.Params


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny convolutions run fastest on one thread, and a shared 2-core box stays responsive."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _trainer(path: Path, every: int = 0, resume: bool = False) -> Trainer:
    return Trainer(path, TrainerSettings(device="cpu", progress=False, checkpoint_every=every), resume=resume)


def _pairs(n: int, size: int, seed: int = 0, channels: int = 1) -> PairSet:
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


def _translator(size: int = 32, image_channels: int = 1, **params: object) -> Pix2PixTranslator:
    base = {"base_filters": 8, "log_every": 1}
    base.update(params)
    return Pix2PixTranslator(P(**base), DatasetInfo(image_channels, 1, (size, size)))


# ----------------------------------------------------------------------------- registration
def test_plugin_registers_the_translator() -> None:
    classes = plugin.segsynth_register_translators()
    assert classes == [Pix2PixTranslator]
    assert issubclass(Pix2PixTranslator, Translator)
    assert Pix2PixTranslator.name == "pix2pix"
    assert Pix2PixTranslator.description
    points = {e.name: e.value for e in entry_points(group="segsynth")}
    assert points.get("pix2pix") == "segsynth_pix2pix.plugin"


def test_every_param_is_documented() -> None:
    for name, field in P.model_fields.items():
        assert field.description, f"{name} has no description"


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
    out = PairAugment(["translation", "cutout", "flip"])(torch.cat([mask, image], dim=1))
    assert out.shape == (4, 2, 32, 32)
    assert torch.equal(out[:, 0], out[:, 1])
    assert not torch.equal(out[:, 1], image.detach()[:, 0])
    out[:, 1].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- params
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"lambda_l1": -1.0}, "lambda_l1"),
        ({"norm": "group"}, "norm"),
        ({"gan_loss": "wgan"}, "gan_loss"),
        ({"dropout": 1.0}, "dropout"),
        ({"disc_layers": 0}, "disc_layers"),
        ({"beta1": 1.0}, "beta1"),
        ({"augment": ["rotate"]}, "augment"),
        ({"augment": ["cutout", "cutout"]}, "repeated: cutout"),
        ({"lamda_l1": 10}, "lamda_l1"),
    ],
)
def test_params_validation_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        P(**params)


def test_params_defaults_and_augment_shorthand() -> None:
    p = P()
    assert (p.steps, p.batch_size, p.base_filters, p.lambda_l1, p.lr) == (2000, 1, 64, 100.0, 2e-4)
    assert (p.beta1, p.beta2, p.disc_layers, p.norm, p.gan_loss) == (0.5, 0.999, 3, "batch", "bce")
    assert p.dropout_at_inference is True and p.augment == [] and p.log_every == 10
    assert P(augment=True).augment == ["translation", "cutout", "flip"]
    assert P(augment=False).augment == []
    assert P(augment="translation, cutout").augment == ["translation", "cutout"]


# ----------------------------------------------------------------------------- learning
def test_learns_one_fixed_pair(tmp_path: Path) -> None:
    pair = _pairs(1, 32, seed=1)
    t = _translator(32, steps=150, base_filters=16, flip=False, dropout_at_inference=False)
    trainer = _trainer(tmp_path)
    before = F.l1_loss(t.translate(pair.masks, torch.Generator()), pair.images).item()
    t.fit(pair, trainer)
    after = F.l1_loss(t.translate(pair.masks, torch.Generator()), pair.images).item()
    assert after < 0.5 * before, (before, after)
    assert after < 0.05
    with (tmp_path / "losses.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"step", "d_loss", "g_gan", "g_l1"}
    assert len(rows) == 150
    first = sum(float(r["g_l1"]) for r in rows[:10]) / 10
    last = sum(float(r["g_l1"]) for r in rows[-10:]) / 10
    assert last < 0.5 * first


def test_discriminator_gradients_do_not_leak_from_the_generator_step(tmp_path: Path) -> None:
    t = _translator(32)
    pairs = _pairs(2, 32)
    t._train_step(pairs.masks * 2 - 1, pairs.images * 2 - 1, _trainer(tmp_path))
    assert all(p.grad is None for p in t.discriminator.parameters())
    assert all(p.requires_grad for p in t.discriminator.parameters())


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("gan_loss", ["bce", "lsgan"])
def test_norm_and_loss_variants_train(tmp_path: Path, norm: str, gan_loss: str) -> None:
    t = _translator(32, image_channels=3, steps=4, batch_size=2, norm=norm, gan_loss=gan_loss,
                    augment=True)
    expected = torch.nn.BatchNorm2d if norm == "batch" else torch.nn.InstanceNorm2d
    assert any(isinstance(m, expected) for m in t.generator.modules())
    assert any(isinstance(m, expected) for m in t.discriminator.modules())
    trainer = _trainer(tmp_path)
    t.fit(_pairs(3, 32, channels=3), trainer)
    with (tmp_path / "losses.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(math.isfinite(float(v)) for r in rows for v in r.values())
    assert trainer.is_finished()
    out = t.translate(_pairs(2, 32).masks, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 32, 32)


def test_learning_rate_decays_linearly_after_its_start(tmp_path: Path) -> None:
    t = _translator(32, steps=6, lr=1e-3, lr_decay_start=0.5)
    t.fit(_pairs(2, 32), _trainer(tmp_path))
    # steps 4..6 decay: at the last step the factor is 1 - 3 / 4
    assert t.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25)
    assert t.opt_d.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25)


# ----------------------------------------------------------------------------- rendering
def test_translate_is_seeded_by_the_generator(tmp_path: Path) -> None:
    t = _translator(32, translate_batch_size=3, steps=20)
    masks = _pairs(5, 32).masks
    t.fit(_pairs(4, 32, seed=5), _trainer(tmp_path))  # untrained, dropout barely shows
    rng_before = torch.get_rng_state()
    a = t.translate(masks, torch.Generator().manual_seed(7))
    b = t.translate(masks, torch.Generator().manual_seed(7))
    c = t.translate(masks, torch.Generator().manual_seed(8))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global stream is untouched
    assert a.shape == (5, 1, 32, 32)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3
    g = torch.Generator().manual_seed(7)
    assert not torch.equal(t.translate(masks, g), t.translate(masks, g))  # the stream advances


def test_translate_without_inference_dropout_is_deterministic() -> None:
    t = _translator(32, dropout_at_inference=False)
    masks = _pairs(3, 32).masks
    a = t.translate(masks, torch.Generator().manual_seed(1))
    b = t.translate(masks, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert t.generator.training  # rendering leaves the training mode as it was


def test_translate_rejects_wrong_masks_and_handles_none() -> None:
    t = _translator(32)
    with pytest.raises(UserError, match=r"\(N, 1, 32, 32\)"):
        t.translate(torch.zeros(2, 1, 64, 64), torch.Generator())
    with pytest.raises(UserError):
        t.translate(torch.zeros(2, 2, 32, 32), torch.Generator())
    assert t.translate(torch.zeros(0, 1, 32, 32), torch.Generator()).shape == (0, 1, 32, 32)


# ----------------------------------------------------------------------------- checkpoints
def test_final_checkpoint_reloads_to_identical_outputs(tmp_path: Path) -> None:
    pairs = _pairs(3, 32)
    t = _translator(32, steps=5, batch_size=2)
    t.fit(pairs, _trainer(tmp_path))
    fresh = _translator(32, steps=5, batch_size=2)
    assert _trainer(tmp_path).load_final(fresh.state())
    a = t.translate(pairs.masks, torch.Generator().manual_seed(3))
    b = fresh.translate(pairs.masks, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    n = 3
    pairs = _pairs(4, 32)
    settings = {"batch_size": 2, "augment": True, "flip": True}
    straight = _translator(32, steps=2 * n, **settings)
    straight.fit(pairs, _trainer(tmp_path / "straight", every=n))

    first = _translator(32, steps=n, **settings)
    first.fit(pairs, _trainer(tmp_path / "resumed", every=n))
    torch.manual_seed(1234)  # whatever runs in between must not matter
    second = _translator(32, steps=2 * n, **settings)
    second.fit(pairs, _trainer(tmp_path / "resumed", every=n, resume=True))

    for name in ("generator", "discriminator"):
        a = straight.state()[name].state_dict()
        b = second.state()[name].state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs"
    with (tmp_path / "resumed" / "losses.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 2 * n + 1))
