"""``precision: auto`` and ``channels_last: auto``: the CPU fast path is the default exactly where
the CPU has native bf16, and a recipe's explicit choice always wins."""

from __future__ import annotations

import pytest
import torch

from segsynth.errors import UserError
from segsynth.trainer import Trainer, TrainerSettings, resolve_channels_last, resolve_precision

CPU = torch.device("cpu")


def _native_bf16(monkeypatch, present: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: present, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_cpu_follows_its_native_bf16_units(monkeypatch, native, expected):
    _native_bf16(monkeypatch, native)
    assert resolve_precision("auto", CPU) == expected


def test_amx_alone_counts_as_native_bf16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert resolve_precision("auto", CPU) == "bf16"


def test_a_torch_without_the_probes_keeps_fp32(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert resolve_precision("auto", CPU) == "fp32"


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_an_explicit_precision_is_kept_whatever_the_cpu(monkeypatch, name):
    _native_bf16(monkeypatch, True)
    assert resolve_precision(name, CPU) == name
    _native_bf16(monkeypatch, False)
    assert resolve_precision(name, CPU) == name


def test_an_unknown_precision_is_a_user_error():
    with pytest.raises(UserError, match="fp64"):
        resolve_precision("fp64", CPU)


@pytest.mark.parametrize(
    ("setting", "device", "precision", "expected"),
    [
        ("auto", "cpu", "bf16", True),    # the CPU fast path
        ("auto", "cpu", "fp32", False),
        ("auto", "cuda", "bf16", False),  # unmeasured on GPUs: default layout
        ("auto", "mps", "fp32", False),
        (True, "cpu", "fp32", True),      # explicit wins
        (False, "cpu", "bf16", False),
        (True, "mps", "fp32", False),     # not on MPS, as before
    ],
)
def test_channels_last_auto_goes_with_bf16_on_a_cpu(setting, device, precision, expected):
    assert resolve_channels_last(setting, torch.device(device), precision) is expected


@pytest.mark.parametrize(("native", "precision", "layout"), [(True, "bf16", True), (False, "fp32", False)])
def test_a_default_trainer_sets_up_the_fast_path_only_on_native_bf16(
    tmp_path, monkeypatch, native, precision, layout
):
    _native_bf16(monkeypatch, native)
    trainer = Trainer(tmp_path, TrainerSettings(device="cpu", progress=False))
    assert (trainer.precision, trainer.channels_last) == (precision, layout)
    conv = trainer.setup(torch.nn.Conv2d(3, 4, 3))
    batch = trainer.to_device(torch.zeros(2, 3, 8, 8))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is layout
    assert batch.is_contiguous(memory_format=torch.channels_last) is layout
    with trainer.autocast():
        out = conv(batch)
    assert out.dtype == (torch.bfloat16 if native else torch.float32)


@pytest.fixture
def fresh_bf16_warning(monkeypatch):
    """The emulated-bf16 warning is once per process; each test starts as a new process would."""
    import segsynth.trainer as trainer_module
    monkeypatch.setattr(trainer_module, "_emulated_bf16_warned", False)


@pytest.mark.parametrize(("native", "requested", "warns"), [
    (False, "bf16", True),   # emulated: a recipe tuned on a bf16 CPU would run for hours
    (True, "bf16", False),   # the CPU has the units: the fast path, no warning
    (False, "auto", False),  # auto already stays fp32 there
    (False, "fp32", False),
])
def test_explicit_bf16_on_a_cpu_without_bf16_units_warns_once_and_says_what_to_set(
    tmp_path, monkeypatch, fresh_bf16_warning, native, requested, warns
):
    from segsynth.trainer import EmulatedBf16Warning

    import warnings

    _native_bf16(monkeypatch, native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("a", "b"):  # a run makes many trainers: one warning, not one per trainer
            trainer = Trainer(tmp_path / name, TrainerSettings(device="cpu", progress=False, precision=requested))
    warnings_seen = [w for w in caught if issubclass(w.category, EmulatedBf16Warning)]
    assert len(warnings_seen) == (1 if warns else 0)
    assert trainer.precision == ("fp32" if requested == "auto" else requested)  # explicit is still obeyed
    if warns:
        text = str(warnings_seen[0].message)
        assert "trainer.precision=auto" in text and "no native bf16" in text and "slower than fp32" in text


def test_recipe_validation_warns_about_emulated_bf16_and_the_shipped_cpu_recipes_do_not_ask_for_it(
    monkeypatch, fresh_bf16_warning
):
    from pathlib import Path

    from segsynth.plugins import get_registry
    from segsynth.recipe import load_recipe, machine_warnings

    _native_bf16(monkeypatch, False)
    recipes = Path(__file__).resolve().parents[2] / "recipes"
    flagged = {path.name for path in recipes.glob("*.yaml")
               if any("no native bf16" in note for note in machine_warnings(load_recipe(path, get_registry())))}
    # the GPU recipe asks for bf16 on purpose; its device is cuda, which this CPU machine lacks,
    # so only the device note applies to it; no CPU recipe may force emulated bf16
    assert flagged == set()
    loaded = load_recipe(recipes / "quickstart.yaml", get_registry(), ["trainer.precision=bf16"])
    assert any("no native bf16" in note for note in machine_warnings(loaded))
