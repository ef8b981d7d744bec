"""Building what a recipe names: the data set, the two stages, evaluators, segmenters, trainers.

Every network is built right after seeding torch with the recipe's seed plus a fixed offset
per role (stage I 1, stage II 2, segmenter 5, evaluator 10+i), so its initial weights are part
of the recipe. ``synth sample`` and ``synth export-model`` rebuild the trained stages here too,
from their final checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

from segsynth import distributed
from segsynth.coverage_sampling import HistogramMatcher
from segsynth.errors import UserError
from segsynth.folders import RunFolder
from segsynth.fov_paste import FieldsOfView, PastedSampler
from segsynth.interfaces import DatasetAdapter, DatasetInfo, PairSet, Translator
from segsynth.plugins import Registry
from segsynth.recipe import LoadedRecipe
from segsynth.steps.synthesis import PairSampler, matched, two_stage_sampler
from segsynth.trainer import Trainer, TrainerSettings


class _Saved(Protocol):
    def save(self, path: Path) -> None: ...


Kept = TypeVar("Kept", bound=_Saved)


class Components:
    """Builds the components and trainers of one run (``folder`` is where trainers work)."""

    def __init__(self, loaded: LoadedRecipe, registry: Registry, folder: RunFolder,
                 settings: TrainerSettings, resume: bool, loggers: list[Any]) -> None:
        self.loaded = loaded
        self.recipe = loaded.recipe
        self.registry = registry
        self.folder = folder
        self.settings = settings
        self.resume = resume
        self.loggers = loggers  # shared with the pipeline, which opens and closes them

    def trainer(self, task: str, local: bool = False) -> Trainer:
        return Trainer(self.folder.task_dir(task), self.settings, resume=self.resume, local=local,
                       loggers=self.loggers, task=task)

    def dataset(self) -> tuple[DatasetAdapter, DatasetInfo]:
        entry = self.registry.get("dataset", self.recipe.data.name, "data -> name")
        adapter = entry.cls(self.loaded.data_params)  # type: ignore[call-arg]
        return adapter, adapter.info()  # type: ignore[attr-defined]

    def component(self, kind: str, name: str, params: Any, info: DatasetInfo, seed_offset: int) -> Any:
        entry = self.registry.get(kind, name)
        torch.manual_seed(self.recipe.seed + seed_offset)  # network init is part of the recipe
        return entry.cls(params, info)

    def stage1(self, info: DatasetInfo) -> Any:
        kind = "pair_generator" if self.loaded.single_stage else "mask_generator"
        return self.component(kind, self.recipe.stage1.name, self.loaded.stage1_params, info, 1)

    def stage2(self, info: DatasetInfo) -> Translator:
        assert self.recipe.stage2 is not None
        return self.component("translator", self.recipe.stage2.name, self.loaded.stage2_params, info, 2)

    def check_split(self, pairs: PairSet, info: DatasetInfo, split: str, name: str | None = None) -> None:
        """Refuse a split that is empty or not of the shape its data set promised."""
        name = name or self.recipe.data.name
        if len(pairs) == 0:
            raise UserError(
                f"dataset {name!r} returned no samples for split {split!r}; "
                "check its params (counts, paths, split lists)."
            )
        expected = (info.image_channels, *info.size)
        if tuple(pairs.images.shape[1:]) != expected or pairs.masks.shape[1] != info.mask_channels:
            raise UserError(
                f"dataset {name!r} promised images of shape {expected} and "
                f"{info.mask_channels}-channel masks but split {split!r} holds images "
                f"{tuple(pairs.images.shape[1:])} and masks {tuple(pairs.masks.shape[1:])}."
            )

    def foreground_matcher(self, train_masks: torch.Tensor | None = None) -> HistogramMatcher | None:
        """The histogram matcher of ``synthesis.match_foreground`` (``None`` when it is off).

        Its targets (bin edges and shares of the real training masks) are kept in the run
        folder (``RunFolder.foreground_match``) so that `synth sample` draws exactly like the
        run without loading the data again.
        """
        block = self.recipe.synthesis.match_foreground
        if block is None:
            return None
        return self._kept(
            self.folder.foreground_match, train_masks, lambda pairs: pairs.masks, HistogramMatcher.load,
            lambda masks: HistogramMatcher.from_masks(masks, block.bins, block.oversample),
        )

    def with_fields_of_view(self, sampler: PairSampler, train_fovs: torch.Tensor | None = None) -> PairSampler:
        """``sampler``, pasting real fields of view onto its pairs when the recipe asks.

        The shapes of the real training fields of view are kept in the run folder
        (``RunFolder.fields_of_view``) so that `synth sample` pastes them without the data.
        """
        fields = self.fields_of_view(train_fovs)
        return sampler if fields is None else PastedSampler(sampler, fields)

    def fields_of_view(self, train_fovs: torch.Tensor | None = None) -> FieldsOfView | None:
        """The real fields of view ``synthesis.fields_of_view`` pastes, or ``None`` when off."""
        synthesis = self.recipe.synthesis
        if not synthesis.fields_of_view:
            return None
        fields = self._kept(self.folder.fields_of_view, train_fovs, self._fovs_of, FieldsOfView.load,
                            lambda fovs: FieldsOfView.from_fovs(fovs, synthesis.fields_of_view_pairing))
        fields.pairing = synthesis.fields_of_view_pairing  # the recipe's, also for a kept older file
        return fields

    def _fovs_of(self, pairs: PairSet) -> torch.Tensor:
        if pairs.fovs is None:
            raise UserError(
                f"synthesis.fields_of_view is on but the data set ({self.recipe.data.name}) gives no "
                "field of view: set preprocess.fov_from_threshold, name fov files, or turn "
                "synthesis.fields_of_view off."
            )
        return pairs.fovs

    def _kept(self, path: Path, given: torch.Tensor | None, part: Callable[[PairSet], torch.Tensor],
              load: Callable[[Path], Kept], build: Callable[[torch.Tensor], Kept]) -> Kept:
        """A synthesis target drawn from the real training data and kept in the run folder.

        During a run it is built from ``given`` (a part of the training pairs) and saved at
        ``path``; `synth sample` reads it back from there, and only a run folder without it
        (an older run) loads the training data again to build it.
        """
        if given is None and path.exists():
            return load(path)
        if given is None:
            adapter, _ = self.dataset()
            given = part(adapter.load("train"))  # type: ignore[attr-defined]
        kept = build(given)
        if distributed.is_main():
            kept.save(path)
        return kept

    def load_finished_sampler(self, info: DatasetInfo) -> PairSampler:
        """Rebuild the trained stages from their final checkpoints (for ``synth sample``)."""
        stage1 = self.stage1(info)
        trainer1 = self.trainer("stage1")
        stage1.to(trainer1.device)
        trainer1.load_final(stage1.state())
        matcher = self.foreground_matcher()
        if self.loaded.single_stage:
            return self.with_fields_of_view(matched(stage1.sample_pairs, matcher))
        translator = self.stage2(info)
        trainer2 = self.trainer("stage2")
        translator.to(trainer2.device)
        trainer2.load_final(translator.state())
        return self.with_fields_of_view(two_stage_sampler(stage1, translator, matcher))


def load_checkpoint_file(path: Path, state: dict[str, Any], device: torch.device) -> None:
    """Load a segsynth checkpoint file into ``state`` (safely; checksum verified if present)."""
    from segsynth.checkpoint import CheckpointStore, unpack_state

    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; fix stage2_data.derive_masks.checkpoint.")
    payload = CheckpointStore(path.parent).read(path)
    try:
        unpack_state(state, payload["state"], device)
    except (KeyError, RuntimeError) as exc:
        raise UserError(
            f"checkpoint {path} does not fit this segmenter ({str(exc).splitlines()[0]}); it was "
            "made by another component or with other params (depth, base_filters)."
        ) from exc
