"""K exclusive classes through the built-in models (issue #13): Stage I makes one-hot class maps,
Stage II renders them, and binary data keep exactly the results they had before classes existed.

Every generator (``dcgan``, ``wgan_gp``, ``diffusion_masks``) and translator (``pix2pix``,
``spade``, ``diffusion_translator``, the example plugin's ``example_residual``) trains a few
steps on the K = 3 toy of ``tests/multiclass_data.py`` on the CPU, with tiny networks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import gan_checks as checks
from multiclass_data import K, toy_info, toy_pairs
from segsynth import DatasetInfo, UserError
from segsynth.gan import one_hot_masks, straight_through_one_hot
from segsynth.labels import LabelTable, class_index
from segsynth_dcgan.component import DCGANMaskGenerator
from segsynth_dcgan.joint import JointDCGAN
from segsynth_pix2pix.translator import Pix2PixTranslator
from segsynth_spade.translator import SpadeTranslator
from segsynth_wgan.component import WGANGPMaskGenerator

pytest.importorskip("diffusers")
from segsynth_diffusion.masks import DiffusionMaskGenerator  # noqa: E402
from segsynth_diffusion.translator import DiffusionTranslator  # noqa: E402

segsynth_example = pytest.importorskip("segsynth_example.translator")

SIZE = 32  # the GANs' smallest size
INFO = toy_info(SIZE)
DIFFUSION = {"widths": [8, 8], "norm_groups": 4, "sampling_steps": 3, "log_every": 1}

#: name -> (class, tiny params for ``steps`` steps)
GENERATORS: dict[str, tuple[type, Callable[[int], Any]]] = {
    "dcgan": (DCGANMaskGenerator, lambda steps: DCGANMaskGenerator.Params(
        **{**checks.TINY_GENERATOR, "steps": steps, "batch_size": 8})),
    "wgan_gp": (WGANGPMaskGenerator, lambda steps: WGANGPMaskGenerator.Params(
        **{**checks.TINY_GENERATOR, "steps": steps, "batch_size": 8, "n_critic": 2})),
    "diffusion_masks": (DiffusionMaskGenerator, lambda steps: DiffusionMaskGenerator.Params(
        **DIFFUSION, steps=steps, batch_size=4)),
}
TRANSLATORS: dict[str, tuple[type, Callable[[int], Any]]] = {
    "pix2pix": (Pix2PixTranslator, lambda steps: Pix2PixTranslator.Params(
        base_filters=4, batch_size=2, steps=steps, log_every=1)),
    "spade": (SpadeTranslator, lambda steps: SpadeTranslator.Params(
        base_filters=4, spade_hidden=8, batch_size=2, steps=steps, log_every=1)),
    "diffusion_translator": (DiffusionTranslator, lambda steps: DiffusionTranslator.Params(
        **DIFFUSION, steps=steps, batch_size=2)),
    "example_residual": (segsynth_example.ResidualTranslator, lambda steps: segsynth_example.ResidualTranslator.Params(
        width=8, blocks=2, max_dilation=2, batch_size=2, steps=steps, log_every=1)),
}


def _build(kind: dict[str, tuple[type, Callable[[int], Any]]], name: str, steps: int,
           info: DatasetInfo = INFO, seed: int = 0) -> Any:
    cls, params = kind[name]
    torch.manual_seed(seed)
    return cls(params(steps), info)


def assert_one_hot(masks: torch.Tensor, n: int, k: int = K) -> None:
    """``(n, k, SIZE, SIZE)`` masks of exact 0/1 with each pixel in at most one channel."""
    assert masks.shape == (n, k, SIZE, SIZE)
    assert set(torch.unique(masks).tolist()) <= {0.0, 1.0}
    assert masks.sum(dim=1).max() <= 1.0


# ---------------------------------------------------------------------------- the shared pieces
def test_straight_through_one_hot_is_exact_forward_and_softmax_backward() -> None:
    logits = torch.randn(2, K + 1, 8, 8, requires_grad=True)
    hot = straight_through_one_hot(logits)
    expected = torch.nn.functional.one_hot(logits.argmax(1), K + 1).movedim(-1, 1)[:, 1:] * 2.0 - 1.0
    assert torch.equal(hot, expected)  # exact +-1, not merely close
    weights = torch.randn_like(hot)
    (hot * weights).sum().backward()
    soft = logits.detach().clone().requires_grad_(True)
    (soft.softmax(1)[:, 1:] * 2.0 * weights).sum().backward()
    assert logits.grad is not None and torch.allclose(logits.grad, soft.grad)
    assert logits.grad.abs().sum() > 0


def test_one_hot_masks_take_each_pixels_highest_score() -> None:
    scores = torch.randn(3, K + 1, 8, 8)
    masks = one_hot_masks(scores)
    assert masks.shape == (3, K, 8, 8)
    assert torch.equal(class_index(masks), scores.argmax(1))


# ---------------------------------------------------------------------------- Stage I
@pytest.mark.parametrize("name", GENERATORS)
def test_generator_trains_and_samples_exact_k_class_maps(name: str, tmp_path: Path) -> None:
    masks = toy_pairs(16, SIZE).masks
    models = []
    for run in ("a", "b"):  # the same seeds twice: the same training, the same samples
        model = _build(GENERATORS, name, steps=6)
        model.fit(masks, checks.cpu_trainer(tmp_path / run))
        models.append(model)
    samples = models[0].sample(12, checks.seeded(3))
    assert_one_hot(samples, 12)
    assert len(set(class_index(samples).unique().tolist()) - {0}) > 1  # more than one class made
    assert torch.equal(samples, models[0].sample(12, checks.seeded(3)))
    assert torch.equal(samples, models[1].sample(12, checks.seeded(3)))
    assert not torch.equal(samples, models[0].sample(12, checks.seeded(4)))
    assert models[0].sample(0, checks.seeded(0)).shape == (0, K, SIZE, SIZE)


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_resumes_k_class_training(name: str, tmp_path: Path) -> None:
    straight, resumed = checks.fit_straight_and_resumed(
        lambda steps: _build(GENERATORS, name, steps), toy_pairs(8, SIZE).masks, tmp_path,
        steps=4, every=2, resumed_seed=99,
    )
    checks.assert_same_losses(tmp_path)
    assert torch.equal(straight.sample(6, checks.seeded(5)), resumed.sample(6, checks.seeded(5)))


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp"])
def test_discriminator_sees_exact_one_hot_fakes(name: str) -> None:
    model = _build(GENERATORS, name, steps=1)
    assert model.generator_channels == K + 1
    fake = model._for_discriminator(model.generator(torch.randn(4, *model.code_shape)))
    assert fake.shape == (4, K, SIZE, SIZE)
    assert set(torch.unique(fake).tolist()) == {-1.0, 1.0}
    assert ((fake + 1) / 2).sum(dim=1).max() <= 1.0
    fake.sum().backward()  # the gradient reaches the generator through the softmax
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())
    plain = model.__class__(model.params.model_copy(update={"straight_through": False}), INFO)
    shown = plain._for_discriminator(plain.generator(torch.randn(4, *plain.code_shape)))
    assert shown.min() > -1.0 and shown.max() < 1.0  # class probabilities, not a one-hot map


def test_dcgan_joint_refuses_exclusive_classes() -> None:
    with pytest.raises(UserError, match=r"dcgan_joint generates binary masks only.*3 exclusive classes"):
        JointDCGAN(JointDCGAN.Params(**checks.TINY_GENERATOR), INFO)


# ---------------------------------------------------------------------------- binary is unchanged
#: sha256 (first 16 hex digits) of the uint8 masks ``_binary_samples`` gave before K-class
#: support existed (commit 1a62eed), and their foreground pixel counts.
BINARY_REFERENCE = {
    ("dcgan", 1): ("a9849e1dec40cec3", 5231),
    ("dcgan", 2): ("68d88ded4f9dca2f", 8635),  # independent channels (no class table), as BBBC's
    ("wgan_gp", 1): ("e9197f7a9416f031", 3707),
    ("diffusion_masks", 1): ("3f4674e105a64231", 2438),
}


def _binary_samples(name: str, info: DatasetInfo, tmp_path: Path) -> torch.Tensor:
    """Eight masks of a generator trained a few steps on disks (channel 2 mirrored), seed 3."""
    cls = GENERATORS[name][0]
    if name == "diffusion_masks":
        params = cls.Params(steps=3, batch_size=4, widths=[8, 8], norm_groups=4, sampling_steps=3, log_every=1)
    else:
        params = cls.Params(**{**checks.TINY_GENERATOR, **({"n_critic": 2} if name == "wgan_gp" else {})})
    torch.manual_seed(0)
    model = cls(params, info)
    masks = checks.disks(8).repeat(1, info.mask_channels, 1, 1)
    if info.mask_channels == 2:
        masks[:, 1] = masks[:, 1].flip(-1)
    model.fit(masks, checks.cpu_trainer(tmp_path))
    return model.sample(8, checks.seeded(3))


@pytest.mark.parametrize(("name", "channels"), list(BINARY_REFERENCE))
def test_binary_masks_are_bit_for_bit_what_they_were(name: str, channels: int, tmp_path: Path) -> None:
    samples = _binary_samples(name, DatasetInfo(1, channels, (SIZE, SIZE)), tmp_path)
    digest = hashlib.sha256(samples.to(torch.uint8).numpy().tobytes()).hexdigest()[:16]
    assert (digest, int(samples.sum())) == BINARY_REFERENCE[(name, channels)]


def test_a_one_class_table_stays_on_the_binary_path(tmp_path: Path) -> None:
    one = LabelTable.of(["background", "vessel"])
    labelled = DatasetInfo(1, 1, (SIZE, SIZE), labels=one)
    model = _build(GENERATORS, "dcgan", steps=1, info=labelled)
    assert model.generator_channels == 1 and not model.class_logits
    assert torch.equal(_binary_samples("dcgan", labelled, tmp_path / "a"),
                       _binary_samples("dcgan", DatasetInfo(1, 1, (SIZE, SIZE)), tmp_path / "b"))


# ---------------------------------------------------------------------------- Stage II
@pytest.mark.parametrize("name", TRANSLATORS)
def test_translator_renders_one_hot_k_class_maps(name: str, tmp_path: Path) -> None:
    pairs = toy_pairs(6, SIZE)
    t = _build(TRANSLATORS, name, steps=3)
    t.fit(pairs, checks.cpu_trainer(tmp_path))
    masks = pairs.masks[:3]
    images = t.translate(masks, checks.seeded(1))
    assert images.shape == (3, 1, SIZE, SIZE)
    assert torch.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    assert torch.equal(images, t.translate(masks, checks.seeded(1)))
    # the class matters, not only the foreground: the same shapes with classes 1 and 2 swapped
    swapped = masks[:, [1, 0, 2]]
    assert not torch.equal(images, t.translate(swapped, checks.seeded(1)))
    with pytest.raises(UserError, match="mask"):
        t.translate(masks[:, :1], checks.seeded(1))


@pytest.mark.parametrize("name", TRANSLATORS)
def test_translator_resumes_k_class_training(name: str, tmp_path: Path) -> None:
    pairs = toy_pairs(4, SIZE)
    straight, resumed = checks.fit_straight_and_resumed(
        lambda steps: _build(TRANSLATORS, name, steps), pairs, tmp_path, steps=4, every=2, resumed_seed=99,
    )
    checks.assert_same_losses(tmp_path)
    assert torch.equal(straight.translate(pairs.masks, checks.seeded(2)),
                       resumed.translate(pairs.masks, checks.seeded(2)))


# ---------------------------------------------------------------------------- diffusion clean-ups
def test_diffusion_masks_refuse_a_second_cut_on_class_maps() -> None:
    params = DiffusionMaskGenerator.Params(**DIFFUSION, hysteresis_low=-0.5)
    with pytest.raises(UserError, match=r"hysteresis_low \(-0.5\) is a second cut for binary masks.*3 exclusive"):
        DiffusionMaskGenerator(params, INFO)


def test_diffusion_masks_clear_small_pieces_per_class(tmp_path: Path) -> None:
    raw_model = _build(GENERATORS, "diffusion_masks", 2)
    cleaned_model = _build(GENERATORS, "diffusion_masks", 2)
    cleaned_model.params = cleaned_model.params.model_copy(update={"min_piece_pixels": 6})
    raw = raw_model.sample(4, checks.seeded(3))
    cleaned = cleaned_model.sample(4, checks.seeded(3))
    sizes = checks.piece_sizes(cleaned)
    assert sizes and min(sizes) >= 6
    assert torch.all(cleaned <= raw) and cleaned.sum() < raw.sum()  # the untrained model's speckle went
