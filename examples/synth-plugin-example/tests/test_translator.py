"""Tests of ``example_residual``: network, params, learning, rendering, checkpoints, resuming."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segsynth import DatasetInfo, PairSet, Trainer, TrainerSettings, Translator, UserError
from segsynth_example.dataset import ShapesDataset
from segsynth_example.network import (
    ResidualBlock,
    ResidualNet,
    dilation_schedule,
    init_weights,
    receptive_field,
)
from segsynth_example.translator import ResidualTranslator

P = ResidualTranslator.Params


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny convolutions run fastest on one thread, and a shared 2-core box stays responsive."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _trainer(path: Path, every: int = 0, resume: bool = False, seed: int = 0) -> Trainer:
    settings = TrainerSettings(device="cpu", progress=False, checkpoint_every=every, seed=seed)
    return Trainer(path, settings, resume=resume)


def _pairs(n: int, size: int = 32, channels: int = 1) -> PairSet:
    return ShapesDataset(ShapesDataset.Params(size=size, channels=channels, n_train=n)).load("train")


def _translator(size: int = 32, channels: int = 1, **params: object) -> ResidualTranslator:
    base: dict[str, object] = {"width": 8, "blocks": 2, "log_every": 1}
    base.update(params)
    return ResidualTranslator(P(**base), DatasetInfo(channels, 1, (size, size)))


def _l1(t: ResidualTranslator, pairs: PairSet) -> float:
    return float(F.l1_loss(t.translate(pairs.masks, torch.Generator()), pairs.images))


def _losses(path: Path) -> list[dict[str, str]]:
    with (path / "losses.csv").open() as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- class and params
def test_is_a_translator_with_name_and_description() -> None:
    assert issubclass(ResidualTranslator, Translator)
    assert ResidualTranslator.name == "example_residual"
    assert ResidualTranslator.description


def test_every_param_is_documented() -> None:
    for name, field in P.model_fields.items():
        assert field.description, f"{name} has no description"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_dilation": 3}, "power of two"),
        ({"ssim_window": 6}, "must be odd"),
        ({"width": 2}, "greater than or equal to 4"),
        ({"steps": 0}, "greater than or equal to 1"),
        ({"ssim_weight": -1.0}, "greater than or equal to 0"),
        ({"lr": 0.0}, "greater than 0"),
        ({"lambda_l1": 1.0}, "Extra inputs are not permitted"),
    ],
)
def test_params_validation_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        P(**params)


# ----------------------------------------------------------------------------- network
@pytest.mark.parametrize("size", [(16, 16), (32, 32), (24, 40)])
@pytest.mark.parametrize("channels", [1, 3])
def test_network_keeps_the_size_and_outputs_open_unit_interval(size: tuple[int, int], channels: int) -> None:
    net = ResidualNet(1, channels, width=8, blocks=3, max_dilation=4)
    out = net((torch.rand(2, 1, *size) > 0.5).float())
    assert out.shape == (2, channels, *size)
    assert out.min() > 0 and out.max() < 1


def test_dilations_cycle_and_receptive_field() -> None:
    assert dilation_schedule(6, 4) == [1, 2, 4, 1, 2, 4]
    assert dilation_schedule(3, 1) == [1, 1, 1]
    # stem 3x3 (+2), blocks with d = 1, 2, 4, 8 (+2d for the dilated conv, +2 for the plain one)
    net = ResidualNet(1, 1, width=8, blocks=4, max_dilation=8)
    assert receptive_field(net) == 1 + 2 + sum(2 * d + 2 for d in (1, 2, 4, 8))


def test_initialised_blocks_are_the_identity_and_init_is_seeded() -> None:
    net = ResidualNet(1, 1, width=8, blocks=2)
    init_weights(net, torch.Generator().manual_seed(5))
    x = torch.randn(2, 8, 12, 12)
    for block in net.blocks:
        assert isinstance(block, ResidualBlock)
        assert torch.equal(block(x), torch.relu(x))
    other = ResidualNet(1, 1, width=8, blocks=2)
    init_weights(other, torch.Generator().manual_seed(5))
    for a, b in zip(net.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- learning
def test_learns_one_fixed_pair(tmp_path: Path) -> None:
    # Without texture and noise the image is a function of the mask, so L1 can approach 0.
    params = ShapesDataset.Params(size=32, n_train=1, texture=0.0, noise=0.0)
    pairs = ShapesDataset(params).load("train")
    t = _translator(steps=40, batch_size=1, flip=False, width=16, lr=3e-3)
    before = _l1(t, pairs)  # the constructor's weights are the ones fit() starts from
    t.fit(pairs, _trainer(tmp_path))
    after = _l1(t, pairs)
    assert after < 0.25 * before, (before, after)
    rows = _losses(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    first, last = rows[0], rows[-1]
    assert float(last["l1"]) < 0.5 * float(first["l1"])
    assert float(last["ssim"]) < float(first["ssim"])
    # loss is the weighted sum the docs promise
    for r in rows:
        assert float(r["loss"]) == pytest.approx(float(r["l1"]) + 0.2 * float(r["ssim"]), rel=1e-5)


def test_without_ssim_only_l1_is_logged(tmp_path: Path) -> None:
    t = _translator(steps=2, ssim_weight=0.0)
    t.fit(_pairs(2), _trainer(tmp_path))
    rows = _losses(tmp_path)
    assert list(rows[0]) == ["step", "loss", "l1"]
    assert rows[-1]["loss"] == rows[-1]["l1"]


def test_rgb_fit_and_translate(tmp_path: Path) -> None:
    pairs = _pairs(3, size=16, channels=3)
    t = _translator(16, channels=3, steps=3, batch_size=2)
    t.fit(pairs, _trainer(tmp_path))
    out = t.translate(pairs.masks, torch.Generator())
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.min() >= 0 and out.max() <= 1


def test_weights_depend_on_the_run_seed_only(tmp_path: Path) -> None:
    pairs = _pairs(2)
    a, b, c = (_translator(steps=3, batch_size=2) for _ in range(3))
    a.fit(pairs, _trainer(tmp_path / "a"))
    torch.manual_seed(999)  # whatever ran before fit() must not matter
    b.fit(pairs, _trainer(tmp_path / "b"))
    c.fit(pairs, _trainer(tmp_path / "c", seed=1))
    masks = pairs.masks
    assert torch.equal(a.translate(masks, torch.Generator()), b.translate(masks, torch.Generator()))
    assert not torch.equal(a.translate(masks, torch.Generator()), c.translate(masks, torch.Generator()))


def test_fit_rejects_data_that_do_not_match_the_info(tmp_path: Path) -> None:
    t = _translator(steps=1)
    rgb = _pairs(2, channels=3)
    with pytest.raises(UserError, match=r"images shaped \(N, 1, H, W\)"):
        t.fit(rgb, _trainer(tmp_path))
    empty = PairSet(images=torch.zeros(0, 1, 32, 32), masks=torch.zeros(0, 1, 32, 32))
    with pytest.raises(UserError, match="empty"):
        t.fit(empty, _trainer(tmp_path))


# ----------------------------------------------------------------------------- rendering
def test_translate_is_deterministic_and_batch_independent() -> None:
    t = _translator(translate_batch_size=2)
    masks = _pairs(5).masks
    a = t.translate(masks, torch.Generator().manual_seed(1))
    b = t.translate(masks, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    alone = t.translate(masks[3:4], torch.Generator())
    torch.testing.assert_close(alone, a[3:4], rtol=0, atol=1e-6)


def test_translate_rejects_wrong_masks_and_handles_empty_batches() -> None:
    t = _translator()
    with pytest.raises(UserError, match=r"masks shaped \(N, 1, H, W\)"):
        t.translate(torch.zeros(2, 2, 32, 32), torch.Generator())
    assert t.translate(torch.zeros(0, 1, 32, 32), torch.Generator()).shape == (0, 1, 32, 32)


# ----------------------------------------------------------------------------- checkpoints
def test_final_checkpoint_reloads_to_identical_outputs(tmp_path: Path) -> None:
    pairs = _pairs(3)
    t = _translator(steps=4, batch_size=2)
    t.fit(pairs, _trainer(tmp_path))
    fresh = _translator(steps=4, batch_size=2)
    trained = t.translate(pairs.masks, torch.Generator())
    assert not torch.equal(fresh.translate(pairs.masks, torch.Generator()), trained)
    assert _trainer(tmp_path).load_final(fresh.state())
    assert torch.equal(fresh.translate(pairs.masks, torch.Generator()), trained)


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    n = 3
    pairs = _pairs(4)
    straight = _translator(steps=2 * n, batch_size=2)
    straight.fit(pairs, _trainer(tmp_path / "straight", every=n))

    first = _translator(steps=n, batch_size=2)
    first.fit(pairs, _trainer(tmp_path / "resumed", every=n))
    torch.manual_seed(1234)  # whatever runs in between must not matter
    second = _translator(steps=2 * n, batch_size=2)
    second.fit(pairs, _trainer(tmp_path / "resumed", every=n, resume=True))

    for name in ("net", "opt"):
        a, b = straight.state()[name].state_dict(), second.state()[name].state_dict()
        if name == "net":
            assert a.keys() == b.keys()
            for key in a:
                assert torch.equal(a[key], b[key]), f"net.{key} differs"
        else:
            for key, state in a["state"].items():
                for field, value in state.items():
                    assert torch.equal(value, b["state"][key][field]), f"opt {key}.{field} differs"
    assert [int(r["step"]) for r in _losses(tmp_path / "resumed")] == list(range(1, 2 * n + 1))
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
