"""Tests of the diffusion plugin: ``diffusion_masks`` (Stage I) and ``diffusion_translator`` (Stage II).

Tiny U-Nets (widths 8 and 16) on 32 px toy data, two DDIM steps: registration and parameters,
seeded sampling and rendering, checkpoints that reload the same outputs, a resumed run equal to
an uninterrupted one, bf16 autocast, the error without diffusers, and the quickstart-diffusion
recipe end to end at toy size.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("diffusers")

import gan_checks as checks  # noqa: E402
from segsynth import DatasetInfo, MaskGenerator, Translator, Trainer, TrainerSettings, UserError  # noqa: E402
from segsynth.cli import app  # noqa: E402
from segsynth_diffusion.denoiser import EXTRA  # noqa: E402
from segsynth_diffusion.masks import DiffusionMaskGenerator  # noqa: E402
from segsynth_diffusion.translator import DiffusionTranslator  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY: dict[str, Any] = {
    "widths": [8, 16], "norm_groups": 4, "batch_size": 2, "sampling_steps": 2, "log_every": 1, "steps": 3,
}
MP = DiffusionMaskGenerator.Params
TP = DiffusionTranslator.Params
tiny = checks.params_maker(MP, **TINY, sample_batch_size=4)
build = checks.seeded_builder(DiffusionMaskGenerator)


def _translator(image_channels: int = 1, **changes: Any) -> DiffusionTranslator:
    return DiffusionTranslator(TP(**{**TINY, **changes}), DatasetInfo(image_channels, 1, (32, 32)))


# ----------------------------------------------------------------------------- registration, params
def test_plugin_registers_both_components() -> None:
    checks.check_registration(
        "diffusion", "segsynth_register_mask_generators", DiffusionMaskGenerator, MaskGenerator, "diffusion_masks"
    )
    checks.check_registration(
        "diffusion", "segsynth_register_translators", DiffusionTranslator, Translator, "diffusion_translator"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"widths": [12, 16], "norm_groups": 8}, "must divide every width, but not 12"),
        ({"sampling_steps": 50, "train_timesteps": 20}, "cannot exceed train_timesteps"),
        ({"widths": []}, "widths"),
        ({"prediction": "sample"}, "prediction"),
        ({"noise_schedule": "sigmoid"}, "noise_schedule"),
        ({"steps": 0}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"ema_decay": 1.0}, "ema_decay must be in"),
        ({"threshold": 1.0}, "threshold"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_params_reject_what_cannot_run(params: dict[str, Any], message: str) -> None:
    checks.check_rejected(MP, params, message)


def test_a_size_the_unet_cannot_halve_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"divisible by 4, but the samples are 34x34; use at most 2 widths"):
        DiffusionMaskGenerator(MP(widths=[8, 16, 16], norm_groups=4), DatasetInfo(1, 1, (34, 34)))


def test_without_diffusers_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'segsynth\[diffusion\]'") as caught:
        _translator()
    assert EXTRA == "segsynth[diffusion]" and "diffusers" in str(caught.value)


# ----------------------------------------------------------------------------- Stage I
def test_mask_sampling_is_binary_seeded_and_leaves_the_global_rng(tmp_path: Path) -> None:
    model = build(tiny(), DatasetInfo(image_channels=3, mask_channels=2, size=(32, 32)))
    rng_before = torch.get_rng_state()
    a = model.sample(5, checks.seeded(11))
    assert torch.equal(torch.get_rng_state(), rng_before)  # only the given generator is used
    assert a.shape == (5, 2, 32, 32) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}
    assert torch.equal(a, model.sample(5, checks.seeded(11)))  # same seed, same tensors
    assert not torch.equal(a, model.sample(5, checks.seeded(12)))
    assert model.sample(0, checks.seeded(1)).shape == (0, 2, 32, 32)
    assert model.denoiser.unet.training  # the mode is restored after sampling


def test_threshold_cuts_the_denoised_sample() -> None:
    model = build(tiny())
    raw = model.sample_raw(4, checks.seeded(0))
    assert raw.min() >= -1 and raw.max() <= 1  # DDIM clips its clean-sample estimate to [-1, 1]
    cut = build(tiny(threshold=0.3)).sample(4, checks.seeded(0))
    assert torch.equal(cut, (raw > 0.3).float())


def test_hysteresis_and_piece_clean_up_apply_to_the_same_denoised_sample() -> None:
    from segsynth.gan import hysteresis_cut, remove_small_pieces

    raw = build(tiny()).sample_raw(4, checks.seeded(0))
    joined = build(tiny(hysteresis_low=-0.4)).sample(4, checks.seeded(0))
    assert torch.equal(joined, hysteresis_cut(raw, 0.0, -0.4))
    assert joined.sum() >= (raw > 0).sum()  # hysteresis only adds pixels to the single cut
    cleaned = build(tiny(hysteresis_low=-0.4, min_piece_pixels=5)).sample(4, checks.seeded(0))
    assert torch.equal(cleaned, remove_small_pieces(joined, 5))
    with pytest.raises(ValueError, match="must be below threshold"):
        tiny(hysteresis_low=0.1)


@pytest.mark.parametrize(
    "check",
    [checks.check_fit_rejects_wrong_masks, checks.check_final_checkpoint_reloads_sampler],
    ids=lambda check: check.__name__,
)
def test_shared_mask_generator_checks(check: Any, tmp_path: Path) -> None:
    check(build, tiny, tmp_path)


def test_mask_generator_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: DiffusionMaskGenerator(tiny(steps=steps), checks.INFO32),
        checks.disks(4), tmp_path, steps=4, every=2, resumed_seed=99,
    )
    checks.assert_same_state(straight, second, ("unet", "ema"), ("opt",))
    checks.assert_same_losses(tmp_path)
    assert torch.equal(straight.sample(3, checks.seeded(5)), second.sample(3, checks.seeded(5)))


def test_initial_weights_come_from_the_run_seed_not_the_global_rng(tmp_path: Path) -> None:
    """Built under different global seeds, two models train to the same weights from one run seed."""
    models = []
    for global_seed in (1, 2):
        model = build(tiny(steps=1), seed=global_seed)
        torch.manual_seed(0)  # the trainer's stream (batches, noise levels, noise)
        model.fit(checks.disks(4), checks.cpu_trainer(tmp_path / str(global_seed)))
        models.append(model)
    checks.assert_same_state(*models, ("unet", "ema"))


def test_training_lowers_the_denoising_loss_on_fixed_noise(tmp_path: Path) -> None:
    """The loss on a fixed batch (fixed noise levels and noise) falls after a short fit."""
    model = build(tiny(steps=40, batch_size=4, lr=3e-3, log_every=40, ema_decay=0.0))
    masks = checks.disks(4) * 2 - 1
    trainer = checks.cpu_trainer(tmp_path)

    def fixed_loss() -> float:
        torch.manual_seed(123)
        net, opt = model.denoiser.unet, model.denoiser.opt
        before = [p.detach().clone() for p in net.parameters()]
        loss = float(model.denoiser.train_step(masks, None, trainer))
        with torch.no_grad():  # undo that step: only its loss was wanted
            for p, b in zip(net.parameters(), before):
                p.copy_(b)
        opt.state.clear()
        return loss

    untrained = fixed_loss()
    model.fit(checks.disks(4), checks.cpu_trainer(tmp_path / "fit"))
    assert fixed_loss() < 0.7 * untrained


def test_without_ema_samples_come_from_the_live_unet(tmp_path: Path) -> None:
    model = build(tiny(ema_decay=0.0))
    assert "ema" not in model.state() and model.denoiser.sampling_network() is model.denoiser.unet
    model.fit(checks.disks(4), checks.cpu_trainer(tmp_path))
    assert set(torch.unique(model.sample(2, checks.seeded(0))).tolist()) <= {0.0, 1.0}


# ----------------------------------------------------------------------------- Stage II
def test_rendering_is_seeded_and_rejects_wrong_masks() -> None:
    torch.manual_seed(0)
    t = _translator()
    masks = checks.bar_pairs(3, 32).masks
    images = checks.check_translate_is_seeded(t, masks)
    assert images.min() >= 0 and images.max() <= 1 and images.dtype == torch.float32
    checks.check_translate_rejects_wrong_masks(t)


def test_the_mask_steers_the_rendering() -> None:
    """The same start noise under two masks gives two images: the condition reaches the U-Net."""
    torch.manual_seed(0)
    t = _translator()
    masks = checks.bar_pairs(2, 32).masks
    swapped = masks.flip(0)
    assert not torch.equal(t.translate(masks, checks.seeded(3)), t.translate(swapped, checks.seeded(3)))


def test_clip_sample_is_what_the_sampler_clips_with() -> None:
    """With a U-Net whose outputs are large the clean-sample estimates leave [-1, 1]: clipping
    them (the default) and not clipping render different images from the same noise, and the
    scheduler gets the recipe's choice."""
    from segsynth_diffusion.denoiser import schedule_config

    assert schedule_config(TP(**TINY))["clip_sample"] is True
    assert schedule_config(TP(**TINY, clip_sample=False))["clip_sample"] is False
    torch.manual_seed(0)
    clipped, free = _translator(), _translator(clip_sample=False)
    free.denoiser.unet.load_state_dict(clipped.denoiser.unet.state_dict())
    for t in (clipped, free):
        with torch.no_grad():
            t.denoiser.unet.conv_out.weight.mul_(200)
    masks = checks.bar_pairs(2, 32).masks
    a, b = clipped.translate(masks, checks.seeded(7)), free.translate(masks, checks.seeded(7))
    assert not torch.equal(a, b)
    assert torch.equal(b, free.translate(masks, checks.seeded(7)))  # still seeded


def test_translator_final_checkpoint_reloads(tmp_path: Path) -> None:
    checks.check_final_checkpoint_reloads_translator(lambda: _translator(steps=2), tmp_path)


def test_translator_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    straight, second = checks.fit_straight_and_resumed(
        lambda steps: _translator(steps=steps), checks.bar_pairs(4, 32), tmp_path, steps=4, every=2, resumed_seed=1234,
    )
    checks.assert_same_state(straight, second, ("unet", "ema"), ("opt",))
    checks.assert_same_losses(tmp_path)
    masks = checks.bar_pairs(2, 32).masks
    assert torch.equal(straight.translate(masks, checks.seeded(4)), second.translate(masks, checks.seeded(4)))


@pytest.mark.parametrize(
    "changes",
    [
        {"prediction": "epsilon", "noise_schedule": "linear", "flip": False},
        {"attention": True, "dropout": 0.1, "layers_per_block": 2},
    ],
    ids=["epsilon-linear", "attention-dropout"],
)
def test_translator_variants_train(changes: dict[str, Any], tmp_path: Path) -> None:
    checks.check_translator_variant_trains(_translator(3, steps=2, **changes), 2, tmp_path)


def test_bf16_autocast_trains_with_finite_losses(tmp_path: Path) -> None:
    t = _translator(steps=2)
    settings = TrainerSettings(device="cpu", progress=False, checkpoint_every=0, precision="bf16")
    t.fit(checks.bar_pairs(3, 32), Trainer(tmp_path, settings))
    checks.finite_losses(tmp_path, 2)
    assert t.translate(checks.bar_pairs(1, 32).masks, checks.seeded(0)).dtype == torch.float32


# ----------------------------------------------------------------------------- in a run
TOY_RUN = [
    "data.params.size=32", "data.params.n_train=4", "data.params.n_test=3",
    *[f"{stage}.params.{key}={value}" for stage in ("stage1", "stage2") for key, value in [
        ("steps", 2), ("batch_size", 2), ("widths", "[8,16]"), ("norm_groups", 4), ("sampling_steps", 2),
    ]],
    "synthesis.count=4", "synthesis.batch_size=2",
    "evaluation.0.params.steps=2", "evaluation.0.params.base_filters=4",
    "trainer.checkpoint_every=0", "trainer.threads=1",
]


def _hashes(folder: Path) -> list[str]:
    with (folder / "manifest.csv").open(newline="") as f:
        return [row["mask_sha256"] + row["image_sha256"] for row in csv.DictReader(f)]


@pytest.mark.filterwarnings("ignore:.*coverage warning")  # 4 toy pairs cannot cover the real masks
def test_quickstart_diffusion_recipe_runs_and_a_seed_reproduces_its_files(tmp_path: Path) -> None:
    """The shipped recipe at toy size: both stages train, pairs are written and evaluated, and
    ``synth sample`` with the run's seed writes the same bytes again."""
    out = tmp_path / "run"
    args = ["run", str(ROOT / "recipes" / "quickstart-diffusion.yaml"), "--out", str(out), "--device", "cpu",
            "--no-progress"]
    for item in TOY_RUN:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["synthetic.f1"] <= 1
    assert (out / "stage1" / "checkpoints" / "final.pt").exists()
    assert (out / "stage2" / "checkpoints" / "final.pt").exists()
    first = _hashes(out / "synthetic")
    assert len(first) == 4
    again = CliRunner().invoke(
        app, ["sample", str(out), "-n", "4", "--seed", "0", "--out", str(tmp_path / "again"), "--device", "cpu",
              "--no-progress"],
    )
    assert again.exit_code == 0, again.output
    assert _hashes(tmp_path / "again") == first  # the run's seed, the run's bytes


@pytest.mark.filterwarnings("ignore:.*coverage warning")  # 4 toy pairs cannot cover the real masks
def test_a_trained_run_samples_with_other_ddim_steps_and_refuses_other_changes(tmp_path: Path) -> None:
    """DDIM steps are a sampling choice: ``synth sample --set`` and a resume before synthesis
    may change them on trained checkpoints; a training parameter may not be changed either way."""
    out = tmp_path / "run"
    args = ["run", str(ROOT / "recipes" / "quickstart-diffusion.yaml"), "--out", str(out), "--device", "cpu",
            "--no-progress", "--until", "stage2"]
    for item in TOY_RUN:
        args += ["--set", item]
    assert CliRunner().invoke(app, args).exit_code == 0
    # a resume before synthesis takes 3 DDIM steps per image instead of the recipe's 2
    resumed = CliRunner().invoke(app, [*args[:-2], "--resume", "--until", "synthesis",
                                       "--set", "stage2.params.sampling_steps=3"])
    assert resumed.exit_code == 0, resumed.output
    recorded = (out / "recipe.resolved.yaml").read_text()
    assert recorded.count("sampling_steps: 3") == 1 and recorded.count("sampling_steps: 2") == 1
    written = _hashes(out / "synthetic")

    def sample(*extra: str) -> Any:
        return CliRunner().invoke(app, ["sample", str(out), "-n", "4", "--seed", "0", "--device", "cpu",
                                        "--no-progress", *extra])

    two = sample("--set", "stage2.params.sampling_steps=2")
    assert two.exit_code == 0, two.output
    folder = out / "samples" / "seed0-n4-stage2-sampling_steps2"  # the setting is in the default name
    other = _hashes(folder)
    assert [h[:64] for h in other] == [h[:64] for h in written]  # the same Stage-I masks
    assert all(a[64:] != b[64:] for a, b in zip(other, written, strict=True))  # other images
    with (folder / "manifest.csv").open(newline="") as f:
        assert next(csv.DictReader(f))["sampling_overrides"] == "stage2.params.sampling_steps=2"
    assert sample().exit_code == 0
    assert _hashes(out / "samples" / "seed0-n4") == written  # the run's own setting, the run's bytes

    training = sample("--set", "stage2.params.lr=0.1")
    assert training.exit_code == 2
    assert "stage2.params.lr is not a sampling-only parameter" in " ".join(training.output.split())
    assert "stage2.params.sampling_steps" in training.output
    late = CliRunner().invoke(app, [*args[:-2], "--resume", "--set", "stage2.params.sampling_steps=4"])
    assert late.exit_code == 2 and "the synthetic pairs are already written" in late.output
