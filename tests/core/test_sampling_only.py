"""Sampling-only parameters: what a trained run may still change (``segsynth.params.SAMPLING_ONLY``)."""

from __future__ import annotations

import pytest
from pydantic import Field

import segsynth
from segsynth.cli import params_yaml
from segsynth.errors import UserError
from segsynth.params import SAMPLING_ONLY, GanGeneratorParams, is_sampling_only, sampling_fields
from segsynth.recipe_docs import _table
from segsynth.resume_check import Change, check_resume, refusal


class _Params(segsynth.Params):
    steps: int = Field(10, description="Training steps.")
    sampling_steps: int = Field(20, json_schema_extra=SAMPLING_ONLY, description="DDIM steps.")


def test_marked_fields_are_found_on_classes_and_instances() -> None:
    assert sampling_fields(_Params) == {"sampling_steps"}
    assert sampling_fields(_Params()) == {"sampling_steps"}
    assert not is_sampling_only(_Params.model_fields["steps"])
    # the GAN mask generators' clean-up runs after sampling; their threshold also shapes training
    assert sampling_fields(GanGeneratorParams) == {"min_piece_pixels"}


def test_both_diffusion_components_mark_their_sampler() -> None:
    from segsynth_diffusion.masks import DiffusionMaskGenerator
    from segsynth_diffusion.translator import DiffusionTranslator

    assert sampling_fields(DiffusionMaskGenerator.Params) == {
        "sampling_steps", "clip_sample", "threshold", "hysteresis_low", "min_piece_pixels", "sample_batch_size"}
    assert sampling_fields(DiffusionTranslator.Params) == {"sampling_steps", "clip_sample", "translate_batch_size"}


def test_the_mark_is_shown_where_people_read_parameters() -> None:
    shown = params_yaml("x", _Params)
    assert "sampling_steps: 20  # [sampling-only" in shown
    assert "steps: 10  # Training steps." in shown
    rows = _table(_Params)
    assert "*Sampling-only*" in next(r for r in rows if "`sampling_steps`" in r)
    assert "Sampling-only" not in next(r for r in rows if r.startswith("| `steps`"))


@pytest.mark.parametrize(("synthesis_done", "allowed"), [(False, True), (True, False)])
def test_resume_may_change_sampling_fields_until_the_pairs_are_written(synthesis_done: bool, allowed: bool) -> None:
    change = Change("stage2.params.sampling_steps", 16, 32)
    sampling = {"stage2": frozenset({"sampling_steps"})}

    def finished(step: str) -> bool:
        return step in ("stage1", "stage2") or (step == "synthesis" and synthesis_done)

    why = refusal(change, finished, sampling)
    assert (why is None) == allowed
    if not allowed:
        assert why == "the synthetic pairs are already written"
    # without the mark the same change is one the checkpoints cannot follow
    assert refusal(change, finished, {}) == "it changes what the existing checkpoints or outputs mean"
    # and the mark of one stage does not open the other stage's field of the same name
    assert refusal(Change("stage1.params.sampling_steps", 16, 32), finished, sampling) is not None


def test_refused_resume_names_sampling_only_parameters_as_changeable() -> None:
    old = {"stage1": {"name": "m", "params": {"lr": 0.1, "sampling_steps": 8}}}
    new = {"stage1": {"name": "m", "params": {"lr": 0.2, "sampling_steps": 16}}}
    with pytest.raises(UserError) as refused:
        check_resume(old, new, lambda step: step == "stage1", "RUN", {"stage1": frozenset({"sampling_steps"})})
    message = str(refused.value)
    assert "lr: 0.1 -> 0.2" in message
    assert "sampling_steps" not in message.split("\n", 1)[1].split("Undo")[0]  # only lr is refused
    assert "sampling-only parameters" in message
    accepted = check_resume(old, {"stage1": {**new["stage1"], "params": {"lr": 0.1, "sampling_steps": 16}}},
                            lambda step: step == "stage1", "RUN", {"stage1": frozenset({"sampling_steps"})})
    assert [c.path for c in accepted] == ["stage1.params.sampling_steps"]
