"""torch.compile in the trainer: same losses, unchanged checkpoints, eager fallback, dispatch."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from segsynth import Trainer, TrainerSettings, compiling
from segsynth.errors import UserError
from segsynth.pipeline import Pipeline, RunOptions
from segsynth.plugins import get_registry
from segsynth.recipe import TrainerBlock, load_recipe


def _net() -> nn.Module:
    """Conv, batch norm, activation: the pattern the plugins' networks repeat.

    The first conv has no bias: batch norm cancels it, so its gradient is rounding noise that
    Adam would blow up into steps that differ between any two implementations.
    """
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 1, 3, padding=1), nn.Flatten(), nn.Tanh(),
    )


def _fit(path: Path, compile: str, steps: int = 6, precision: str = "fp32") -> tuple[list[float], nn.Module]:
    """Train ``_net`` through a real Trainer; return the losses and the trained module."""
    net = _net()
    trainer = Trainer(path, TrainerSettings(device="cpu", progress=False, checkpoint_every=0,
                                            precision=precision, compile=compile))
    return _run(trainer, net, steps, finish=True), net


@pytest.fixture
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the per-process probe result and the warnings already given."""
    monkeypatch.setattr(compiling, "_probe_results", {})
    monkeypatch.setattr(compiling, "_warned", set())


@pytest.fixture
def counting_compile(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace torch.compile by a pass-through that counts calls of what it compiled."""
    calls: list[int] = []

    def fake_compile(fn: Any, **_: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return fn(*args, **kwargs)
        return run

    monkeypatch.setattr(compiling, "_probe_results", {"cpu": ""})
    monkeypatch.setattr(torch, "compile", fake_compile)
    return calls


def test_compiled_training_matches_eager_and_writes_the_same_checkpoint_keys(tmp_path):
    eager_losses, eager_net = _fit(tmp_path / "eager", "off")
    counters = torch._dynamo.utils.counters
    frames_before = counters["frames"]["ok"]
    compiled_losses, compiled_net = _fit(tmp_path / "compiled", "on")
    assert compiling.is_compiled(compiled_net)
    assert counters["frames"]["ok"] > frames_before  # dynamo really compiled the forward
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-6)
    for a, b in zip(eager_net.state_dict().values(), compiled_net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
    # the compiled run's final checkpoint loads into a plain module, keys unchanged
    plain = _net()
    saved = torch.load(tmp_path / "compiled" / "checkpoints" / "final.pt", weights_only=True)
    assert set(saved["state"]["net"]) == set(plain.state_dict())
    trainer = Trainer(tmp_path / "compiled", TrainerSettings(device="cpu", progress=False))
    assert trainer.load_final({"net": plain, "opt": torch.optim.Adam(plain.parameters())})
    for key, value in compiled_net.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[key], value)


def test_an_uncompiled_checkpoint_resumes_in_a_compiled_run(tmp_path, counting_compile):
    straight, _ = _fit(tmp_path / "a", "off", steps=6)
    settings = dict(device="cpu", progress=False, checkpoint_every=3, precision="fp32")  # as _fit's
    net = _net()
    trainer = Trainer(tmp_path / "b", TrainerSettings(**settings, compile="off"))
    _run(trainer, net, 4)  # "killed" after step 4, newest checkpoint at step 3
    net = _net()
    trainer = Trainer(tmp_path / "b", TrainerSettings(**settings, compile="on"), resume=True)
    losses = _run(trainer, net, 6)
    assert compiling.is_compiled(net) and counting_compile  # the resumed steps ran compiled
    assert losses == pytest.approx(straight[3:], rel=1e-5)


def _run(trainer: Trainer, net: nn.Module, steps: int, finish: bool = False) -> list[float]:
    """Train (or resume) ``net`` up to ``steps`` through ``trainer``; the losses of the steps run."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    trainer.setup(net)
    state = {"net": net, "opt": opt}
    start = trainer.resume(state)
    losses = []
    for step in trainer.steps(start, steps, "t"):
        x = torch.randn(4, 2, 8, 8)
        with trainer.autocast():
            loss = (net(x).float() - x[:, :1].flatten(1)).pow(2).mean()
        trainer.backward(loss)
        trainer.step(opt)
        losses.append(trainer.log(step, loss=loss)["loss"])
        trainer.checkpoint(step, state)
    if finish:
        trainer.finish(state, steps)
    return losses


def _compile_that_raises(message: str) -> Any:
    """A stand-in for ``torch.compile`` whose compiled functions raise ``message`` when run."""
    def compile_(fn: Any, **_: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(message)
        return run
    return compile_


def test_no_working_compiler_falls_back_to_eager_with_one_warning(tmp_path, monkeypatch, fresh_probe):
    monkeypatch.setattr(torch, "compile", _compile_that_raises("InvalidCxxCompiler: no working C++ compiler found"))
    eager_losses, _ = _fit(tmp_path / "eager", "off")
    with pytest.warns(compiling.CompileFallbackWarning) as caught:
        losses, net = _fit(tmp_path / "fallback", "on")
        trainer = Trainer(tmp_path / "x", TrainerSettings(device="cpu", compile="on"))
        trainer.setup(_net())  # a second network: no second warning
    assert len(caught) == 1
    assert "no working C++ compiler" in str(caught[0].message)
    assert not compiling.is_compiled(net)
    assert losses == eager_losses


def test_a_compiled_forward_that_fails_on_first_use_trains_eagerly(tmp_path, monkeypatch, fresh_probe):
    monkeypatch.setattr(compiling, "_probe_results", {"cpu": ""})  # the probe passed
    failing = _compile_that_raises("BackendCompilerFailed: inductor could not lower an operator")
    monkeypatch.setattr(torch, "compile", failing)
    eager_losses, _ = _fit(tmp_path / "eager", "off")
    with pytest.warns(compiling.CompileFallbackWarning, match="Sequential") as caught:
        losses, net = _fit(tmp_path / "fallback", "on")
    assert len(caught) == 1
    assert not compiling.is_compiled(net)
    assert losses == eager_losses


def _fit_with_penalty(path: Path, compile: str, steps: int = 4) -> list[float]:
    """A critic trained with an R1-style gradient penalty: a double backward through the net."""
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    trainer = Trainer(path, TrainerSettings(device="cpu", progress=False, checkpoint_every=0,
                                            compile=compile))
    trainer.setup(net)
    start = trainer.resume({"net": net, "opt": opt})
    losses = []
    for step in trainer.steps(start, steps, "t"):
        real = torch.randn(4, 2, 8, 8)
        score = net(real).mean()
        x = real.detach().requires_grad_(True)  # the penalty's pass comes last, as in DCGAN's R1
        (grad,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
        loss = score + grad.square().sum() / 4
        trainer.backward(loss)
        trainer.step(opt)
        losses.append(trainer.log(step, loss=loss)["loss"])
    return losses


def test_gradient_penalties_run_eagerly_and_train_like_eager(tmp_path):
    eager = _fit_with_penalty(tmp_path / "eager", "off")
    compiled = _fit_with_penalty(tmp_path / "compiled", "on")  # would raise on double backward
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-6)


def test_inputs_that_lead_back_to_data_requiring_grad_run_eagerly(counting_compile):
    critic = compiling.compile_for_training(_net())
    maker = nn.Conv2d(2, 2, 1)  # stands in for a generator: its output leads back to parameters
    x = torch.randn(2, 2, 8, 8)
    critic(maker(x))
    assert len(counting_compile) == 1
    leaf = x.clone().requires_grad_(True)
    critic(leaf)  # R1 on real samples
    critic(leaf.flip(-1) * 0.5)  # ... after a differentiable augmentation
    assert len(counting_compile) == 1


def test_a_bug_in_forward_is_raised_not_hidden_by_the_fallback(counting_compile):
    net = compiling.compile_for_training(_net())
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="channels"):
        warnings.simplefilter("ignore")
        net(torch.randn(4, 5, 8, 8))  # 5 channels where the first conv expects 2


def test_only_training_passes_with_gradients_run_compiled(counting_compile):
    net = compiling.compile_for_training(_net())
    x = torch.randn(2, 2, 8, 8)
    net(x)
    assert len(counting_compile) == 1
    with torch.no_grad():
        net(x)  # e.g. batch-norm recalibration
    net.eval()
    net(x)  # sampling
    with torch.inference_mode():
        net(x)
    assert len(counting_compile) == 1
    net.train()
    net(x)
    assert len(counting_compile) == 2
    assert compiling.compile_for_training(net).forward is net.forward  # set up twice: wrapped once
    compiling.uncompiled(net)
    net(x)
    assert len(counting_compile) == 2 and not compiling.is_compiled(net)


def test_an_ema_copy_of_a_compiled_module_runs_its_own_weights(counting_compile):
    net = compiling.compile_for_training(_net())
    ema = AveragedModel(net)
    twin = copy.deepcopy(net)
    with torch.no_grad():
        for p in twin.parameters():
            p.zero_()
    x = torch.randn(2, 2, 8, 8)
    assert not torch.equal(twin(x), net(x))  # the copy does not run the original's weights
    assert set(ema.module.state_dict()) == set(_net().state_dict())


def test_modules_without_trainable_parameters_are_left_eager(counting_compile):
    augment = nn.Sequential(nn.Identity())
    assert not compiling.is_compiled(compiling.compile_for_training(augment))


def test_auto_compiles_on_cuda_only_and_bad_values_are_user_errors():
    assert compiling.resolve_compile("auto", torch.device("cuda")) is True
    assert compiling.resolve_compile("auto", torch.device("cpu")) is False
    assert compiling.resolve_compile("auto", torch.device("mps")) is False
    assert compiling.resolve_compile("on", torch.device("cpu")) is True
    assert compiling.resolve_compile(True, torch.device("cpu")) is True
    assert compiling.resolve_compile("off", torch.device("cuda")) is False
    with pytest.raises(UserError, match="trainer.compile 'sometimes'"):
        compiling.resolve_compile("sometimes", torch.device("cpu"))


@pytest.mark.parametrize(("override", "expected"), [("on", True), ("off", False), ("auto", "auto")])
def test_the_recipe_setting_reaches_the_trainer(toy_plugin, write_recipe, tmp_path, override, expected):
    loaded = load_recipe(write_recipe(), get_registry(), [f"trainer.compile={override}"])
    pipeline = Pipeline(loaded, get_registry(), RunOptions(out=tmp_path / "run", progress=False))
    assert pipeline.settings.compile == expected  # YAML reads on/off as booleans


def test_recipe_accepts_yaml_on_off_and_auto():
    assert TrainerBlock().compile == "auto"
    assert TrainerBlock(compile=True).compile is True  # YAML `compile: on` arrives as True
    assert TrainerBlock(compile="off").compile == "off"
    with pytest.raises(ValueError):
        TrainerBlock(compile="sometimes")
