"""Tests of the SPADE Stage-II translator: modulation layer, networks, losses, params, learning, rendering, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gan_checks as checks
from segsynth import DatasetInfo, PairSet, Translator, UserError
from segsynth.params import DiscriminatorAugment
from segsynth_spade.augment import TripletAugment
from segsynth_spade.discriminator import MultiscaleDiscriminator, PatchDiscriminator, split_batch
from segsynth_spade.generator import SPADEGenerator, spade_resolutions
from segsynth_spade.losses import discriminator_hinge, feature_matching, generator_hinge
from segsynth_spade.spade import SPADE, resize_mask
from segsynth_spade.translator import SpadeTranslator

P = SpadeTranslator.Params


def _translator(size: int = 32, image_channels: int = 1, **params: object) -> SpadeTranslator:
    base: dict[str, object] = {"base_filters": 4, "spade_hidden": 8, "batch_size": 2, "log_every": 1}
    base.update(params)
    return SpadeTranslator(P(**base), DatasetInfo(image_channels, 1, (size, size)))


# ----------------------------------------------------------------------------- registration
def test_plugin_registers_the_translator() -> None:
    checks.check_registration("spade", "segsynth_register_translators", SpadeTranslator, Translator, "spade")


# ----------------------------------------------------------------------------- SPADE layer
def test_spade_output_depends_on_the_mask() -> None:
    torch.manual_seed(0)
    layer = SPADE(6, 1, hidden=8, norm="instance")
    with torch.no_grad():  # the 0.02 init makes gamma/beta tiny: give them a visible size
        layer.shared[0].weight.normal_(0, 0.5)
        layer.modulation.weight.normal_(0, 0.5)
    x = torch.randn(2, 6, 8, 8)
    empty = torch.zeros(2, 1, 32, 32)
    vessel = empty.clone()
    vessel[:, :, :, 10:13] = 1.0
    a, b = layer(x, empty), layer(x, vessel)
    assert a.shape == b.shape == x.shape
    assert (a - b).abs().max() > 0.1
    # the change is local: the vessel covers columns 2-3 of the 8x8 grid, and the modulation
    # net's two 3x3 convs reach two columns further, so columns 6-7 are untouched
    assert torch.equal(a[..., 6:], b[..., 6:])
    assert not torch.equal(a[..., 2], b[..., 2])


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_zero_modulation_is_plain_parameter_free_normalisation(norm: str) -> None:
    torch.manual_seed(1)
    layer = SPADE(5, 2, hidden=4, norm=norm)  # type: ignore[arg-type]
    with torch.no_grad():
        layer.modulation.weight.zero_()
        layer.modulation.bias.zero_()
    x = torch.randn(3, 5, 8, 8) * 4 + 2
    mask = (torch.rand(3, 2, 16, 16) > 0.5).float()
    out = layer(x, mask)
    dims = (0, 2, 3) if norm == "batch" else (2, 3)
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    assert torch.allclose(out, (x - mean) / torch.sqrt(var + 1e-5), atol=1e-5)
    assert not any(p.requires_grad for p in layer.norm.parameters())  # no affine of its own


def test_resize_mask_keeps_thin_structures_as_a_density() -> None:
    mask = torch.zeros(1, 1, 8, 8)
    mask[0, 0, :, 3] = 1.0  # a one-pixel vessel
    small = resize_mask(mask, (2, 2))
    assert torch.allclose(small, torch.tensor([[[[0.25, 0.0], [0.25, 0.0]]]]))
    assert resize_mask(mask, (8, 8)) is mask
    assert torch.equal(resize_mask(small, (4, 4))[0, 0, 0], torch.tensor([0.25, 0.25, 0.0, 0.0]))


# ----------------------------------------------------------------------------- networks
def test_resolutions_follow_the_image_size() -> None:
    assert spade_resolutions((32, 32)) == [4, 8, 16, 32]
    assert spade_resolutions((64, 64)) == [4, 8, 16, 32, 64]
    assert spade_resolutions((256, 256)) == [8, 16, 32, 64, 128, 256]  # the paper's layout
    assert spade_resolutions((1024, 1024)) == [32, 64, 128, 256, 512, 1024]


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_and_ranges_across_resolutions(size: int) -> None:
    t = _translator(size, image_channels=3)
    g = t.generator
    assert len(g.blocks) == len(spade_resolutions((size, size)))
    masks = (torch.rand(2, 1, size, size) > 0.7).float()
    raw = g(masks)
    assert raw.shape == (2, 3, size, size)
    assert raw.min() >= -1 and raw.max() <= 1
    widths = [b.conv_1.out_channels for b in g.blocks]
    assert widths[-1] == 4 and widths[0] == 4 * min(size // g.start, 16)
    out = t.translate(masks, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, size, size) and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    features = t.discriminator(torch.cat([masks, out * 2 - 1], dim=1))
    assert len(features) == 2  # two scales by default
    assert [len(f) for f in features] == [5, 5]  # 4 blocks + logits per scale
    assert features[0][-1].shape[:2] == (2, 1)
    assert features[1][-1].shape[-1] < features[0][-1].shape[-1]  # the half-size scale


def test_every_normalisation_of_the_generator_is_mask_modulated_and_convs_are_spectral() -> None:
    g = SPADEGenerator(1, 3, (32, 32), base_filters=4, hidden=8)
    norms = [m for m in g.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))]
    spades = [m for m in g.modules() if isinstance(m, SPADE)]
    assert norms and len(norms) == len(spades)
    assert all(not n.affine for n in norms)
    for block in g.blocks:
        for conv in (block.conv_0, block.conv_1):
            assert hasattr(conv, "parametrizations")  # spectral norm
    plain = SPADEGenerator(1, 3, (32, 32), base_filters=4, hidden=8, spectral=False)
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())


def test_multiscale_discriminator_scales_and_features() -> None:
    d = MultiscaleDiscriminator(4, num_discriminators=3, base_filters=4, n_layers=3)
    outputs = d(torch.randn(2, 4, 64, 64))
    assert len(outputs) == 3
    assert all(len(f) == 4 for f in outputs)  # 3 blocks + logits
    # padding 2: a stride-2 conv maps s -> s // 2 + 1, a stride-1 conv s -> s + 1
    assert [f[-1].shape[-1] for f in outputs] == [19, 11, 7]
    assert [f.shape[1] for f in outputs[0]] == [4, 8, 16, 1]
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(c, "parametrizations") for c in convs)
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in d.modules()) == 3 * 2
    single = PatchDiscriminator(4, base_filters=4, n_layers=1)
    assert [f.shape[-1] for f in single(torch.randn(1, 4, 32, 32))] == [17, 18]


def test_split_batch_undoes_batching() -> None:
    d = MultiscaleDiscriminator(3, num_discriminators=2, base_filters=4, n_layers=2, spectral=False)
    a, b = torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32)
    head, tail = split_batch(d(torch.cat([a, b])), 2)
    alone = d(a)
    for fs_batched, fs_alone in zip(head, alone):
        for x, y in zip(fs_batched, fs_alone):
            assert torch.allclose(x, y, atol=1e-6)  # instance norm: per-sample, batching is free
    assert tail[0][0].shape[0] == 3


@pytest.mark.parametrize("size", [(48, 48), (64, 32), (16, 16), (2048, 2048)])
def test_unsupported_size_is_a_user_error(size: tuple[int, int]) -> None:
    with pytest.raises(UserError, match="32 and 1024") as caught:
        SpadeTranslator(P(base_filters=4), DatasetInfo(1, 1, size))
    assert f"{size[0]}x{size[1]}" in str(caught.value)


def test_too_many_discriminator_scales_is_a_user_error() -> None:
    with pytest.raises(UserError, match="num_discriminators: 2 or fewer"):
        _translator(32, num_discriminators=3)
    assert len(_translator(64, num_discriminators=3).discriminator.scales) == 3


# ----------------------------------------------------------------------------- losses
def test_hinge_and_feature_matching_values() -> None:
    def outs(*logits: float) -> list[list[torch.Tensor]]:
        return [[torch.ones(1, 2, 2, 2), torch.full((1, 1, 2, 2), v)] for v in logits]

    assert discriminator_hinge(outs(0.0, 0.0), outs(0.0, 0.0)).item() == pytest.approx(2.0)
    assert discriminator_hinge(outs(2.0, 1.0), outs(-3.0, -1.0)).item() == 0.0
    assert discriminator_hinge(outs(0.5, 1.0), outs(0.0, -1.0)).item() == pytest.approx((0.5 + 1.0 + 0.0 + 0.0) / 2)
    assert generator_hinge(outs(1.0, 3.0)).item() == pytest.approx(-2.0)
    real = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2)]] * 2
    fake_feats = [torch.ones(1, 2, 4, 4, requires_grad=True), torch.full((1, 3, 2, 2), 2.0), torch.ones(1, 1, 2, 2)]
    fake = [fake_feats, [torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2), torch.full((1, 1, 2, 2), 9.0)]]
    # scale 1: |1| + |2| summed over layers (logits excluded); scale 2: 0; mean over scales
    fm = feature_matching(real, fake)
    assert fm.item() == pytest.approx(1.5)
    fm.backward()
    assert fake_feats[0].grad is not None and fake_feats[0].grad.abs().sum() > 0


def test_feature_matching_does_not_train_on_real_features() -> None:
    real_feat = torch.ones(1, 2, 4, 4, requires_grad=True)
    fake_feat = torch.zeros(1, 2, 4, 4, requires_grad=True)
    logit = torch.zeros(1, 1, 2, 2)
    feature_matching([[real_feat, logit]], [[fake_feat, logit]]).backward()
    assert real_feat.grad is None and fake_feat.grad is not None


def test_triplet_augment_gives_real_and_fake_the_same_transform() -> None:
    torch.manual_seed(3)
    mask = (torch.rand(6, 1, 32, 32) > 0.5).float()
    image = torch.rand(6, 2, 32, 32) * 2 - 1
    fake = image.clone().requires_grad_(True)
    aug = TripletAugment(DiscriminatorAugment())
    real_out, fake_out = aug(torch.cat([mask, image], 1), torch.cat([mask, fake], 1))
    assert real_out.shape == fake_out.shape == (6, 3, 32, 32)
    assert torch.equal(real_out, fake_out.detach())  # identical inputs: identical outputs
    assert not torch.equal(real_out[:, 1:], image)
    assert set(torch.unique(real_out[:, 0]).tolist()) <= {0.0, 1.0}  # masks stay binary
    assert not real_out.requires_grad  # D's loss on reals must not reach the generator
    fake_out[:, 1:].sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert TripletAugment(DiscriminatorAugment(enabled=False))(mask, image) == (mask, image)


# ----------------------------------------------------------------------------- params
@pytest.mark.parametrize(
    ("params", "message"),
    [
        *checks.TRANSLATOR_PARAM_ERRORS,
        ({"lambda_fm": -1.0}, "lambda_fm"),
        ({"num_discriminators": 0}, "num_discriminators"),
        ({"z_dim": -1}, "z_dim"),
        ({"spade_hidden": 0}, "spade_hidden"),
        ({"lr_d": 0.0}, "lr_d"),
        ({"lambda_feat": 10}, "lambda_feat"),
    ],
)
def test_params_validation_errors(params: dict[str, object], message: str) -> None:
    checks.check_rejected(P, params, message)


def test_params_defaults_follow_the_paper() -> None:
    p = P()
    assert (p.lr, p.lr_d, p.betas) == (1e-4, 4e-4, (0.0, 0.9))  # TTUR
    assert (p.lambda_fm, p.lambda_l1, p.num_discriminators, p.disc_layers) == (10.0, 0.0, 2, 4)
    assert (p.norm, p.spectral_norm, p.spade_hidden, p.z_dim) == ("batch", True, 128, 0)
    assert (p.steps, p.batch_size, p.base_filters, p.log_every, p.translate_batch_size) == (2000, 4, 64, 10, 16)
    assert not p.augment.enabled and P(augment={"enabled": True}).augment == DiscriminatorAugment()
    t = _translator(32)
    assert t.opt_g.param_groups[0]["betas"] == (0.0, 0.9)
    assert (t.opt_g.param_groups[0]["lr"], t.opt_d.param_groups[0]["lr"]) == (1e-4, 4e-4)


def test_old_spellings_still_work_with_a_warning() -> None:
    checks.check_old_translator_spellings(P, (0.0, 0.9))
    with pytest.warns(DeprecationWarning, match=r"lr_g -> lr: 0.001"):
        assert P(lr_g=1e-3).lr == 1e-3
    checks.check_rejected(P, {"lr_g": 1e-3, "lr": 1e-3}, "write only lr")


# ----------------------------------------------------------------------------- learning
def test_learns_one_fixed_pair_from_feature_matching_alone(tmp_path: Path) -> None:
    pair = checks.bar_pairs(1, 32, seed=1)
    t = _translator(32, steps=150, base_filters=8, spade_hidden=16, flip=False, log_every=10)
    before = F.l1_loss(t.translate(pair.masks, torch.Generator()), pair.images).item()
    t.fit(pair, checks.cpu_trainer(tmp_path))
    after = F.l1_loss(t.translate(pair.masks, torch.Generator()), pair.images).item()
    assert before > 0.2  # an untrained generator renders flat grey
    assert after < 0.25 * before, (before, after)  # measured 0.265 -> 0.035 (lambda_l1 = 0)
    rows = checks.read_losses(tmp_path)
    assert set(rows[0]) == {"step", "d_loss", "g_gan", "g_fm", "g_l1"}
    assert [int(r["step"]) for r in rows] == list(range(10, 151, 10))
    assert float(rows[-1]["g_fm"]) < float(rows[0]["g_fm"])


def test_discriminator_gradients_do_not_leak_from_the_generator_step(tmp_path: Path) -> None:
    pairs = checks.bar_pairs(2, 32)
    checks.check_generator_step_leaves_discriminator(_translator(32), pairs.masks, pairs.images * 2 - 1, tmp_path)


def test_initial_weights_depend_on_the_run_seed_only(tmp_path: Path) -> None:
    pairs = checks.bar_pairs(2, 32)
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # different construction-time weights
        t = _translator(32, steps=1)
        t.fit(pairs, checks.cpu_trainer(tmp_path / str(seed)))
        nets.append(t)
    for name in ("generator", "discriminator"):
        a, b = nets[0].state()[name].state_dict(), nets[1].state()[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize(
    "changes",
    [
        {"norm": "instance", "batch_size": 1},
        {"spectral_norm": False, "lambda_l1": 5.0},
        {"z_dim": 8, "augment": {"enabled": True}, "num_discriminators": 1, "disc_layers": 2},
    ],
    ids=["instance", "no_sn+l1", "z+augment"],
)
def test_variants_train(tmp_path: Path, changes: dict[str, object]) -> None:
    checks.check_translator_variant_trains(_translator(32, image_channels=3, steps=3, **changes), 3, tmp_path)


def test_learning_rates_decay_linearly_after_their_start(tmp_path: Path) -> None:
    t = _translator(32, steps=6, lr=1e-3, lr_d=2e-3, lr_decay_start=0.5)
    checks.check_learning_rates_decay(t, tmp_path, 1e-3, 2e-3)


# ----------------------------------------------------------------------------- rendering
def test_translate_with_noise_is_seeded_by_the_generator() -> None:
    t = _translator(32, z_dim=8, translate_batch_size=3)
    with torch.no_grad():  # make z visible in an untrained net
        t.generator.project.weight.normal_(0, 1.0)
    masks = checks.bar_pairs(5, 32).masks
    a = checks.check_translate_is_seeded(t, masks)
    # chunking does not change the codes each mask gets
    t.params.translate_batch_size = 16
    assert torch.allclose(t.translate(masks, torch.Generator().manual_seed(7)), a, atol=1e-6)


def test_translate_without_noise_is_deterministic_and_batch_independent() -> None:
    t = _translator(32)
    masks = checks.bar_pairs(4, 32).masks
    a = t.translate(masks, torch.Generator().manual_seed(1))
    b = t.translate(masks, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    # batch norm uses running statistics: one mask renders the same alone or in a batch
    assert torch.allclose(t.translate(masks[:1], torch.Generator()), a[:1], atol=1e-6)
    assert t.generator.training  # rendering leaves the training mode as it was


def test_translate_rejects_wrong_masks_and_handles_none() -> None:
    t = _translator(32)
    checks.check_translate_rejects_wrong_masks(t)
    with pytest.raises(UserError, match="images shaped"):
        t.fit(PairSet(images=torch.zeros(2, 3, 32, 32), masks=torch.zeros(2, 1, 32, 32)), checks.cpu_trainer(Path("/nonexistent")))


# ----------------------------------------------------------------------------- checkpoints
def test_final_checkpoint_reloads_to_identical_outputs(tmp_path: Path) -> None:
    checks.check_final_checkpoint_reloads_translator(lambda: _translator(32, steps=4, z_dim=4), tmp_path)


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    n = 3
    settings: dict[str, object] = {"augment": {"enabled": True}, "flip": True, "z_dim": 4}
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: _translator(32, steps=steps, **settings),
        checks.bar_pairs(4, 32), tmp_path, steps=2 * n, every=n, resumed_seed=1234,
    )
    assert any("_u" in key for key in straight.generator.state_dict())  # spectral-norm vectors are compared
    assert any("_u" in key for key in straight.discriminator.state_dict())
    checks.assert_same_state(straight, second, ("generator", "discriminator"))
    assert torch.equal(
        straight.opt_d.state_dict()["state"][0]["exp_avg_sq"], second.opt_d.state_dict()["state"][0]["exp_avg_sq"]
    )
    checks.assert_same_losses(tmp_path)


def test_a_run_started_with_old_spellings_resumes(tmp_path: Path) -> None:
    """A run folder whose recipe.resolved.yaml has the old spellings (written before the rename)
    resumes with today's recipe: the renamed keys are not changes the checkpoints cannot follow."""
    import yaml

    from segsynth.folders import RunFolder
    from segsynth.plugins import get_registry
    from segsynth.recipe import load_recipe
    from segsynth.resume_check import check_run_folder

    root = Path(__file__).resolve().parents[2]
    resolved = load_recipe(root / "recipes" / "quickstart-spade.yaml", get_registry()).resolved()
    old = yaml.safe_load(yaml.safe_dump(resolved))
    params = old["stage2"]["params"]
    params["beta1"], params["beta2"] = params.pop("betas")
    params["lr_g"] = params.pop("lr")
    params["augment"] = []
    folder = RunFolder(tmp_path)
    folder.resolved_recipe.write_text(yaml.safe_dump(old))
    assert check_run_folder(folder, resolved) == []
    params["lr_g"] = 1.0e-3  # a real change is still refused
    folder.resolved_recipe.write_text(yaml.safe_dump(old))
    with pytest.raises(UserError, match="stage2 -> params -> lr: 0.001") as refused:
        check_run_folder(folder, resolved)
    assert "beta" not in str(refused.value)  # the renamed keys are not listed as changes
