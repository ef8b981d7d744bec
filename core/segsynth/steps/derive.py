"""Stage II's training pairs: the recipe's own, another data set's, or that set with derived masks.

With ``stage2_data.derive_masks`` a segmenter trained on ``data`` (or loaded from a given
checkpoint) predicts the masks of the ``stage2_data`` images: the paper's way of training Stage
II on MESSIDOR, which has no vessel annotations. The masks are written to the run folder's
``derived`` masks with a provenance file (which segmenter, trained on what, which checkpoint,
threshold), so that anyone using the Stage-II model can tell its training masks were predicted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from segsynth import distributed
from segsynth.checkpoint import sha256_file
from segsynth.errors import UserError
from segsynth.files import atomic_write_bytes
from segsynth.folders import DERIVE_TASK, RunState, json_bytes
from segsynth.imageio import read_mask_png, write_mask_png
from segsynth.labels import most_probable
from segsynth.interfaces import DatasetInfo, PairSet
from segsynth.steps.components import Components, load_checkpoint_file


def stage2_pairs(parts: Components, state: RunState, info: DatasetInfo, train: PairSet,
                 skipped: list[str], log: Callable[[str], None]) -> PairSet:
    """Stage II's training pairs: the recipe's own, or ``stage2_data`` (masks derived if asked),
    keeping only those inside their field of view when ``stage2_data.min_fov`` asks."""
    block = parts.recipe.stage2_data
    if block is None:
        return train
    pairs = train if block.name is None else _other_pairs(parts, state, info, train, skipped, log)
    return inside_fov(pairs, block.min_fov, log) if block.min_fov > 0 else pairs


def inside_fov(pairs: PairSet, min_fov: float, log: Callable[[str], None]) -> PairSet:
    """The pairs whose field of view covers at least ``min_fov`` of the sample."""
    if pairs.fovs is None:
        raise UserError(
            f"stage2_data.min_fov is {min_fov:g} but Stage II's training pairs have no field of "
            "view: set preprocess.fov_from_threshold or name fov files in the data set, or remove "
            "stage2_data.min_fov."
        )
    share = (pairs.fovs > 0.5).flatten(1).double().mean(dim=1)
    keep = torch.nonzero(share >= min_fov - 1e-9).flatten()
    if len(keep) == 0:
        raise UserError(
            f"stage2_data.min_fov is {min_fov:g} but none of Stage II's {len(pairs)} training pairs "
            f"has that much field of view (the most any has is {float(share.max()):.3f}); lower it."
        )
    log(f"stage2: trains on the {len(keep)} of {len(pairs)} pairs whose field of view covers at "
        f"least {min_fov:.0%} of the sample (stage2_data.min_fov)")
    index = keep.tolist()
    return PairSet(images=pairs.images[keep], masks=pairs.masks[keep], fovs=pairs.fovs[keep],
                   ids=[pairs.ids[i] for i in index])


def _other_pairs(parts: Components, state: RunState, info: DatasetInfo, train: PairSet,
                 skipped: list[str], log: Callable[[str], None]) -> PairSet:
    """The pairs of the ``stage2_data`` data set, masks derived when it asks."""
    block = parts.recipe.stage2_data
    assert block is not None and block.name is not None
    entry = parts.registry.get("dataset", block.name, "stage2_data -> name")
    adapter = entry.cls(parts.loaded.stage2_data_params)  # type: ignore[call-arg]
    other: DatasetInfo = adapter.info()  # type: ignore[attr-defined]
    if other.size != info.size or other.image_channels != info.image_channels:
        raise UserError(
            f"stage2_data {block.name!r} yields {other.image_channels}-channel "
            f"{other.size[0]}x{other.size[1]} images but data {parts.recipe.data.name!r} yields "
            f"{info.image_channels}-channel {info.size[0]}x{info.size[1]}; set both datasets' "
            "preprocessing to the same size and channels."
        )
    pairs = adapter.load("train")  # type: ignore[attr-defined]
    parts.check_split(pairs, other, "train")
    if block.derive_masks is None:
        return pairs
    return derive_masks(parts, state, info, train, pairs, skipped, log)


def derive_masks(parts: Components, state: RunState, info: DatasetInfo, labelled: PairSet,
                 target: PairSet, skipped: list[str], log: Callable[[str], None]) -> PairSet:
    """Train (or load) a segmenter on the labelled data and predict masks for ``target``."""
    block = parts.recipe.stage2_data
    assert block is not None and block.derive_masks is not None
    folder = parts.folder
    done = state.finished("derive_masks") and folder.provenance.exists()
    if distributed.broadcast_object(done):
        skipped.append("derive_masks")
        masks = torch.stack([read_mask_png(folder.derived_mask(i), info) for i in target.ids])
        return PairSet(images=target.images, masks=masks, fovs=target.fovs, ids=target.ids)
    t0 = time.perf_counter()
    trainer = parts.trainer(DERIVE_TASK)
    segmenter = parts.component("segmenter", block.derive_masks.segmenter.name,
                                parts.loaded.segmenter_params, info, 5)
    segmenter.to(trainer.device)
    checkpoint = parts.loaded.segmenter_checkpoint()
    if checkpoint is not None:
        load_checkpoint_file(checkpoint, segmenter.state(), trainer.device)
        source = f"loaded from {checkpoint}"
    else:
        segmenter.fit(labelled, trainer)
        checkpoint = trainer.store.final_path
        source = f"trained on {parts.recipe.data.name!r} train split ({len(labelled)} pairs)"
    probabilities = segmenter.predict(target.images, trainer)
    masks = (probabilities >= block.derive_masks.threshold).float()
    if info.labels is not None:  # K classes: each pixel to its most probable class, background included
        masks = most_probable(probabilities.float())
    if target.fovs is not None:
        masks = masks * target.fovs
    result = PairSet(images=target.images, masks=masks, fovs=target.fovs, ids=target.ids)
    if not distributed.is_main():  # every process predicted the same masks; rank 0 writes them
        return result
    for sample_id, mask in zip(target.ids, masks, strict=True):
        write_mask_png(folder.derived_mask(sample_id), mask, info.labels)
    provenance = {
        "dataset": block.name,
        "segmenter": block.derive_masks.segmenter.name,
        "segmenter_params": parts.loaded.segmenter_params.model_dump(mode="json")
        if parts.loaded.segmenter_params else {},
        "segmenter_source": source,
        "segmenter_checkpoint_sha256": sha256_file(checkpoint),
        "threshold": block.derive_masks.threshold,
        "count": len(target),
        "mean_foreground": float(masks.mean()),
    }
    atomic_write_bytes(folder.provenance, json_bytes(provenance))
    state.mark("derive_masks", time.perf_counter() - t0, count=len(target))
    log(f"derive_masks: {len(target)} masks for {block.name!r} ({source})")
    return result
