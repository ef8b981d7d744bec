"""The single-stage baseline ``dcgan_joint``: shapes, learning, determinism, a recipe run."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import segsynth
from segsynth import Trainer, TrainerSettings
from segsynth_dcgan.joint import JointDCGAN


INFO = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(32, 32))


def _pairs(n: int = 8) -> segsynth.PairSet:
    """Bright discs (the mask) on a dark red background: image and mask agree by construction."""
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    g = torch.Generator().manual_seed(0)
    masks = []
    for _ in range(n):
        cy, cx = torch.randint(10, 22, (2,), generator=g)
        masks.append((((yy - cy) ** 2 + (xx - cx) ** 2) <= 36).float())
    m = torch.stack(masks)[:, None]
    images = torch.cat([0.3 + 0.6 * m, 0.1 + 0.8 * m, 0.1 + 0.2 * m], dim=1)
    return segsynth.PairSet(images=images, masks=m)


def _model(**params) -> JointDCGAN:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    defaults = dict(steps=200, batch_size=8, base_filters=16, bn_stat_samples=32, log_every=50)
    return JointDCGAN(JointDCGAN.Params(**{**defaults, **params}), INFO)


def test_generator_makes_mask_plus_image_channels():
    model = _model()
    out = model.generator(torch.randn(2, model.params.nz, 1, 1))
    assert out.shape == (2, 4, 32, 32)
    masks, images = model.sample_pairs(5, torch.Generator().manual_seed(1))
    assert masks.shape == (5, 1, 32, 32) and images.shape == (5, 3, 32, 32)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert images.min() >= 0 and images.max() <= 1


def test_encoder_option_is_refused_by_name():
    with pytest.raises(segsynth.UserError, match="stage1.params.encoder"):
        _model(encoder={"reconstruction": 1.0})


def test_joint_training_learns_masks_and_images_that_agree(tmp_path):
    untrained = _model()
    before = untrained.sample_pairs(32, torch.Generator().manual_seed(2))
    model = _model(steps=400)
    model.fit(_pairs(), Trainer(tmp_path, TrainerSettings(device="cpu", progress=False, checkpoint_every=0)))
    masks, images = model.sample_pairs(32, torch.Generator().manual_seed(2))

    def coherence(masks: torch.Tensor, images: torch.Tensor) -> float:
        """Mean red inside the sampled mask minus outside it (real pairs: 0.9 - 0.3 = 0.6)."""
        inside = (images[:, 0:1] * masks).sum() / masks.sum().clamp(min=1)
        outside = (images[:, 0:1] * (1 - masks)).sum() / (1 - masks).sum().clamp(min=1)
        return float(inside - outside)

    assert 0.01 < masks.mean().item() < 0.3  # discs, neither empty nor flooded
    assert abs(images[:, 1].mean().item() - _pairs().images[:, 1].mean().item()) < 0.1
    assert coherence(masks, images) > 0.15  # measured 0.23 after 400 steps
    assert coherence(*before) < 0.05


def test_sampling_is_deterministic_per_seed():
    model = _model()
    a = model.sample_pairs(4, torch.Generator().manual_seed(3))
    b = model.sample_pairs(4, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_single_stage_quickstart_variant_runs(tmp_path):
    from pathlib import Path

    import yaml

    from segsynth.cli import app

    from segsynth.recipe import read_recipe_data

    recipe = read_recipe_data(Path(__file__).resolve().parents[2] / "recipes" / "quickstart-single.yaml")[0]
    recipe["data"]["params"].update(size=32, n_train=6, n_test=4)
    recipe["stage1"]["params"].update(steps=10, batch_size=4, base_filters=8, bn_stat_samples=8)
    recipe["synthesis"] = {"count": 6, "batch_size": 3}
    recipe["evaluation"] = [{"name": "intensity_kl"}]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--no-progress",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "stage2").exists()
