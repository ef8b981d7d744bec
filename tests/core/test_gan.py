"""Tests of ``segsynth.gan`` and the GAN parameter types of ``segsynth.params``: the pieces the
first-party GAN plugins share, checked on tiny modules on the CPU."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from segsynth import DatasetInfo, UserError
from segsynth.gan import (
    check_pair_shapes,
    ema_decay_at,
    generate_in_batches,
    linear_decay,
    make_ema,
    masks_to_tanh_scale,
    random_pairs,
    recalibrate_batchnorm,
    set_learning_rates,
    straight_through_binarize,
    train_loop,
)
from segsynth.params import AdamBetas, EmaDecay, LearningRate, TanhThreshold


# ---------------------------------------------------------------------------- binarisation
def test_straight_through_forward_is_exactly_binary_and_backward_is_identity() -> None:
    x = torch.tensor([-0.7, -0.1, 0.0, 0.2, 0.9], requires_grad=True)
    y = straight_through_binarize(x, 0.0)
    assert y.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0]
    upstream = torch.tensor([0.5, -1.0, 2.0, 3.0, -4.0])
    y.backward(upstream)
    assert torch.equal(x.grad, upstream)
    assert straight_through_binarize(x, 0.5).tolist() == [-1.0, -1.0, -1.0, -1.0, 1.0]
    half = straight_through_binarize(torch.randn(64, dtype=torch.bfloat16), 0.0)
    assert half.dtype == torch.bfloat16 and set(half.tolist()) <= {-1.0, 1.0}


# ---------------------------------------------------------------------------- weight average
def test_ema_ramps_up_then_holds_the_decay() -> None:
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay_at(0.999, 10_000) == 0.999


def test_ema_update_follows_the_formula() -> None:
    model = nn.Linear(2, 1, bias=False)
    ema = make_ema(model, 0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update_parameters(model)  # the first update copies
    assert torch.equal(ema.module.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update_parameters(model)  # n = 1: decay 2/11, so 1 + (3 - 1) * 9/11
    assert ema.module.weight[0, 0].item() == pytest.approx(1 + 2 * 9 / 11)
    for _ in range(40):  # the ramp passes 0.5: later updates use decay 0.5 exactly
        ema.update_parameters(model)
    before = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.fill_(-5.0)
    ema.update_parameters(model)
    assert torch.allclose(ema.module.weight, 0.5 * before + 0.5 * -5.0)
    assert model.weight[0, 0].item() == -5.0  # the live model is never touched


def _bn_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_recalibrate_batchnorm_measures_the_net_from_seeded_codes() -> None:
    torch.manual_seed(0)
    net = _bn_net()
    recalibrate_batchnorm(net, (3,), 4096, 512, torch.Generator().manual_seed(1))
    bn = net[1]
    with torch.no_grad():
        out = net[0](torch.randn(20000, 3, generator=torch.Generator().manual_seed(2)))
    assert torch.allclose(bn.running_mean, out.mean(0), atol=0.05)
    assert torch.allclose(bn.running_var, out.var(0), rtol=0.1)
    again = _bn_net()
    again.load_state_dict(net.state_dict())
    global_state = torch.get_rng_state()
    recalibrate_batchnorm(again, (3,), 4096, 512, torch.Generator().manual_seed(1))
    assert torch.equal(again[1].running_mean, bn.running_mean)  # reproducible from the generator
    assert torch.equal(torch.get_rng_state(), global_state)  # training's RNG untouched


def test_recalibrate_batchnorm_with_zero_samples_keeps_statistics() -> None:
    net = _bn_net()
    net[1].running_mean.fill_(7.0)
    recalibrate_batchnorm(net, (3,), 0, 8, torch.Generator().manual_seed(0))
    assert torch.equal(net[1].running_mean, torch.full((4,), 7.0))


# ---------------------------------------------------------------------------- sampling
def test_generate_in_batches_is_batch_independent_and_restores_mode() -> None:
    torch.manual_seed(0)
    net = _bn_net()
    net.train()
    net(torch.randn(64, 3))  # give batch norm non-trivial running statistics
    codes = torch.randn(10, 3)
    whole = generate_in_batches(net, codes, 10, (4,))
    pieces = generate_in_batches(net, codes, 3, (4,))
    assert torch.allclose(whole, pieces) and whole.shape == (10, 4)
    assert net.training
    cut = generate_in_batches(net, codes, 4, (4,), lambda out: (out > 0).float())
    assert torch.equal(cut, (whole > 0).float())
    assert generate_in_batches(net, codes[:0], 4, (4,)).shape == (0, 4)


def test_masks_to_tanh_scale_thresholds_and_checks_shape() -> None:
    masks = torch.tensor([0.0, 0.4, 0.6, 1.0]).view(1, 1, 2, 2)
    assert masks_to_tanh_scale(masks, (1, 2, 2), "toy").flatten().tolist() == [-1.0, -1.0, 1.0, 1.0]
    with pytest.raises(UserError, match=r"toy mask generator was built for masks shaped \(N, 1, 2, 2\)"):
        masks_to_tanh_scale(torch.zeros(1, 1, 4, 4), (1, 2, 2), "toy")
    with pytest.raises(UserError, match="N >= 1"):
        masks_to_tanh_scale(torch.zeros(0, 1, 2, 2), (1, 2, 2), "toy")


# ---------------------------------------------------------------------------- training loop
class _FakeTrainer:
    """Records the calls ``train_loop`` makes, resuming at ``start``."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.calls: list[tuple[Any, ...]] = []

    def resume(self, state: dict[str, Any]) -> int:
        self.calls.append(("resume",))
        return self.start

    def steps(self, start: int, total: int, desc: str) -> range:
        self.calls.append(("steps", start, total, desc))
        return range(start + 1, total + 1)

    def log(self, step: int, **losses: Any) -> None:
        self.calls.append(("log", step, losses))

    def checkpoint(self, step: int, state: dict[str, Any]) -> None:
        self.calls.append(("checkpoint", step))

    def finish(self, state: dict[str, Any], total: int) -> None:
        self.calls.append(("finish", total))


def _run_loop(start: int) -> list[tuple[Any, ...]]:
    trainer = _FakeTrainer(start)
    train_loop(
        trainer,  # type: ignore[arg-type]
        {},
        steps=5,
        desc="toy",
        log_every=2,
        train_step=lambda step: trainer.calls.append(("step", step)) or {"loss": float(step)},
        fresh_start=lambda: trainer.calls.append(("fresh",)),
        before_finish=lambda: trainer.calls.append(("before_finish",)),
    )
    return trainer.calls


def test_train_loop_order_logging_and_fresh_start() -> None:
    calls = _run_loop(0)
    assert calls[:3] == [("resume",), ("fresh",), ("steps", 0, 5, "toy")]
    logged = [c[1] for c in calls if c[0] == "log"]
    assert logged == [2, 4, 5]  # every log_every steps and the last
    assert ("log", 4, {"loss": 4.0}) in calls
    assert [c[1] for c in calls if c[0] == "checkpoint"] == [1, 2, 3, 4, 5]
    assert calls[-2:] == [("before_finish",), ("finish", 5)]
    resumed = _run_loop(3)
    assert ("fresh",) not in resumed  # a resumed run keeps its restored weights
    assert [c[1] for c in resumed if c[0] == "step"] == [4, 5]


def test_linear_decay_and_learning_rates() -> None:
    assert [linear_decay(s, 10, 1.0) for s in (1, 10)] == [1.0, 1.0]
    assert linear_decay(5, 10, 0.5) == 1.0
    assert linear_decay(8, 10, 0.5) == pytest.approx(1 - 3 / 6)
    assert 0 < linear_decay(10, 10, 0.5) < linear_decay(9, 10, 0.5)
    params = [nn.Parameter(torch.zeros(1))]
    a, b = torch.optim.Adam(params, lr=1.0), torch.optim.Adam(params, lr=1.0)
    set_learning_rates([(a, 1e-4), (b, 4e-4)], 0.5)
    assert a.param_groups[0]["lr"] == pytest.approx(5e-5) and b.param_groups[0]["lr"] == pytest.approx(2e-4)


def test_random_pairs_keep_pairs_together_and_use_the_global_rng() -> None:
    masks = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 2, 3).clone()
    masks[:, :, :, 0] = -1  # a left column, to see mirroring
    images = masks * 10
    torch.manual_seed(3)
    mask, image = random_pairs(masks, images, 32, flip=True)
    assert torch.equal(image, mask * 10)  # mask and image of a pair move together
    assert mask.shape == (32, 1, 2, 3)
    flipped = mask[:, 0, 0, -1] == -1
    assert flipped.any() and (~flipped).any()
    torch.manual_seed(3)
    index = torch.randint(6, (32,))
    assert torch.equal(mask[:, 0, 0, 1], index.float())  # indices are the first CPU draw
    torch.manual_seed(3)
    plain, _ = random_pairs(masks, images, 32, flip=False)
    assert (plain[:, 0, 0, 0] == -1).all()


def test_check_pair_shapes_names_the_component() -> None:
    info = DatasetInfo(image_channels=3, mask_channels=1, size=(8, 8))
    check_pair_shapes("toy", info, torch.zeros(2, 1, 8, 8), torch.zeros(2, 3, 8, 8))
    check_pair_shapes("toy", info, torch.zeros(0, 1, 8, 8), None)  # nothing to render is fine
    with pytest.raises(UserError, match=r"toy was built for masks shaped \(N, 1, 8, 8\)"):
        check_pair_shapes("toy", info, torch.zeros(2, 2, 8, 8), None)
    with pytest.raises(UserError, match=r"toy was built for images shaped \(N, 3, 8, 8\)"):
        check_pair_shapes("toy", info, torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    with pytest.raises(UserError, match="cannot train on an empty set"):
        check_pair_shapes("toy", info, torch.zeros(0, 1, 8, 8), torch.zeros(0, 3, 8, 8))


# ---------------------------------------------------------------------------- parameter types
class _GanParams(BaseModel):
    lr: LearningRate = 2e-4
    betas: AdamBetas = (0.5, 0.999)
    ema_decay: EmaDecay = 0.999
    threshold: TanhThreshold = 0.0


def test_parameter_types_accept_valid_values() -> None:
    p = _GanParams(lr=1e-3, betas=(0.0, 0.9), ema_decay=0.0, threshold=-0.99)
    assert (p.lr, p.betas, p.ema_decay, p.threshold) == (1e-3, (0.0, 0.9), 0.0, -0.99)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": 0.0}, "lr must be a positive learning rate"),
        ({"lr": -1e-4}, "lr must be a positive learning rate"),
        ({"betas": (0.5, 1.0)}, r"betas must both lie in \[0, 1\)"),
        ({"betas": (-0.1, 0.9)}, r"betas must both lie in \[0, 1\)"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ({"ema_decay": -0.1}, r"ema_decay must be in \[0, 1\)"),
        ({"threshold": 1.0}, r"threshold is on the generator's tanh scale and must be in \(-1, 1\)"),
        ({"threshold": -1.0}, r"threshold is on the generator's tanh scale"),
    ],
)
def test_parameter_types_reject_bad_values_clearly(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        _GanParams(**changes)
    assert str(next(iter(changes.values()))) in str(info.value)  # the bad value is quoted


# ---------------------------------------------------------------------------- against collapse
def test_minibatch_std_is_zero_for_a_collapsed_batch_and_positive_otherwise() -> None:
    from segsynth.gan import MinibatchStd

    layer = MinibatchStd(group_size=4)
    same = torch.randn(1, 3, 4, 4).repeat(8, 1, 1, 1)
    out = layer(same)
    assert out.shape == (8, 4, 4, 4)
    assert out[:, 3].abs().max() < 1e-3
    varied = layer(torch.randn(8, 3, 4, 4))
    assert varied[:, 3].min() > 0.3
    # the groups are [0, 2, 4, 6] and [1, 3, 5, 7]: one constant group, one varied
    mixed = torch.randn(8, 3, 4, 4)
    mixed[0::2] = mixed[0]
    feature = layer(mixed)[:, 3, 0, 0]
    assert feature[0::2].max() < 1e-3 and feature[1::2].min() > 0.3
    assert layer(torch.randn(6, 3, 4, 4)).shape == (6, 4, 4, 4)  # 6 % 4: one group of 6


def test_mode_seeking_ratio_is_small_for_collapse() -> None:
    from segsynth.gan import mode_seeking_ratio

    codes = torch.randn(8, 16)
    collapsed = torch.ones(8, 1, 8, 8)
    assert float(mode_seeking_ratio(collapsed, codes)) == 0.0
    varied = torch.randn(8, 1, 8, 8)
    expected = (varied[:4] - varied[4:]).abs().mean() / (codes[:4] - codes[4:]).abs().mean()
    assert torch.isclose(mode_seeking_ratio(varied, codes), expected)


def test_remove_small_pieces_keeps_only_pieces_at_least_the_size() -> None:
    from segsynth.gan import remove_small_pieces

    masks = torch.zeros(2, 1, 16, 16)
    masks[0, 0, 1:4, 1:4] = 1  # 9 pixels
    masks[0, 0, 10, 10] = 1  # 1 pixel
    masks[0, 0, 12, 12] = 1  # touches the next one diagonally: one 8-connected piece of 2
    masks[0, 0, 13, 13] = 1
    masks[1, 0, 5:7, 5:7] = 1  # 4 pixels
    out = remove_small_pieces(masks, 3)
    assert out[0, 0, 1:4, 1:4].sum() == 9 and out[0, 0, 10, 10] == 0 and out[0, 0, 12:14, 12:14].sum() == 0
    assert out[1].sum() == 4
    assert torch.equal(remove_small_pieces(masks, 0), masks)
    assert torch.equal(remove_small_pieces(masks, 2)[0, 0, 12:14, 12:14], masks[0, 0, 12:14, 12:14])


def test_hysteresis_cut_keeps_faint_pixels_only_where_they_join_confident_ones() -> None:
    from segsynth.gan import hysteresis_cut

    raw = -torch.ones(2, 1, 8, 16)
    raw[0, 0, 3, 0:6] = 0.8    # a confident stretch of vessel,
    raw[0, 0, 3, 6:8] = -0.3   # a faint dip (under the cut at 0),
    raw[0, 0, 3, 8:14] = 0.7   # and confident vessel again: one vessel
    raw[0, 0, 6, 2] = -0.3     # a faint speck joined to nothing
    raw[0, 0, 7, 14] = 0.5     # a confident speck
    raw[1, 0, 1, 1] = -0.3     # a second sample with a faint speck only
    single = (raw > 0).float()
    cut = hysteresis_cut(raw, 0.0, -0.5)
    assert cut[0, 0, 3, 0:14].sum() == 14  # the dip is kept: one piece instead of two
    assert cut[0, 0, 6, 2] == 0 and cut[0, 0, 7, 14] == 1 and cut[1].sum() == 0
    assert torch.equal(cut - single, ((raw > -0.5) & (raw <= 0)).float() * cut)  # only adds to the single cut
    assert cut.sum() - single.sum() == 2
    # diagonal neighbours join (8-connectivity); a low cut at or above the high one is the single cut
    diagonal = -torch.ones(1, 1, 4, 4)
    diagonal[0, 0, 0, 0], diagonal[0, 0, 1, 1] = 0.9, -0.2
    assert hysteresis_cut(diagonal, 0.0, -0.5)[0, 0, 1, 1] == 1
    assert torch.equal(hysteresis_cut(raw, 0.0, 0.0), single)


def test_random_geometry_keeps_masks_binary_and_is_identity_when_off() -> None:
    from segsynth.gan import random_geometry

    masks = -torch.ones(16, 1, 32, 32)
    masks[:, :, 4:10, 2:30] = 1
    assert random_geometry(masks, False, False, 0.0, 0.0) is masks
    torch.manual_seed(0)
    flipped = random_geometry(masks, True, False, 0.0, 0.0)
    mirrored = masks.flip(-1)
    assert all(torch.equal(f, m) or torch.equal(f, o) for f, m, o in zip(flipped, mirrored, masks))
    assert any(torch.equal(f, m) for f, m in zip(flipped, mirrored))
    turned = random_geometry(masks, True, True, 30.0, 0.2)
    assert set(turned.unique().tolist()) <= {-1.0, 1.0}
    assert not torch.equal(turned, masks)
    fraction = (turned > 0).float().mean()
    assert abs(float(fraction) - float((masks > 0).float().mean())) < 0.06


def test_pair_overlap_is_one_for_identical_halves_and_zero_for_disjoint() -> None:
    from segsynth.gan import pair_overlap

    a = -torch.ones(4, 1, 8, 8)
    a[:, :, :4] = 1
    assert torch.isclose(pair_overlap(a), torch.tensor(1.0))
    b = a.clone()
    b[2:] = -a[2:]  # second half: the complement of the first
    assert float(pair_overlap(b)) == 0.0
    bigger = torch.ones(4, 1, 8, 8)  # growing the masks raises the overlap: no escape that way
    assert float(pair_overlap(bigger)) >= float(pair_overlap(b))
